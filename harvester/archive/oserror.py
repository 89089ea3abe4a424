"""How an OSError of the archive becomes a one-line StorageError that keeps its cause.

The engine decides what a failed write means by the error's class: a full disk stops every
remaining download (:class:`~harvester.errors.DiskFullError`), a folder that refuses a payload
fails only that file (:class:`~harvester.errors.FolderNotWritableError`).
"""

from __future__ import annotations

import errno

from harvester.errors import DiskFullError, StorageError

__all__ = ["reason", "storage_error"]

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def reason(exc: OSError) -> str:
    """One line for an OSError: ``strerror`` without the path noise, else ``str``."""
    return exc.strerror or str(exc).splitlines()[0]


def storage_error(message: str, exc: OSError, *, denied: type[StorageError] = StorageError) -> StorageError:
    """The StorageError for ``exc``: disk full is its own class, so the engine can tell.

    ``denied`` is the class for a refused write (read-only, permissions): callers that write one
    payload pass :class:`~harvester.errors.FolderNotWritableError`, so one bad folder fails
    only its files.
    """
    text = f"{message}: {reason(exc)}"
    if exc.errno in _FULL_ERRNOS:
        return DiskFullError(f"{message}: disk full ({reason(exc)})")
    if exc.errno in _DENIED_ERRNOS:
        return denied(text)
    return StorageError(text)
