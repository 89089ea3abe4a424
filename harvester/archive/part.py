"""The payload writer: one file in progress, written to its ``.part``, hashed and counted.

A payload grows as the hidden ``.<final name>.harvester.part`` beside its final name, created
exclusively and flocked for its whole life (see :mod:`~harvester.archive.locks`); only
:meth:`PartWriter.commit` fsyncs it, renames it over the final name and fsyncs the folder, so a
final name always holds complete, durable bytes. Leaving the block without a commit (an error,
a cancel) removes the ``.part``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

import anyio
import anyio.to_thread

from harvester.archive.files import fsync_dir, write_all
from harvester.archive.locks import Sweep, create_locked, remove_if_orphan
from harvester.archive.oserror import storage_error
from harvester.archive.paths import part_name
from harvester.errors import FolderNotWritableError, PartBusyError, StorageError
from harvester.models import ArchivedFile

__all__ = ["PartWriter", "create_part", "open_part"]

_log = logging.getLogger(__name__)


class _State(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    CLOSED = "closed"


class PartWriter:
    """One payload in progress: bytes go to ``<final>.part``, hashed and counted as they pass.

    Hashing happens in the worker thread next to the write: hashlib releases the GIL for large
    buffers, so the event loop never pays for it, and nothing but the caller's chunk is held.
    """

    __slots__ = ("_fd", "_final", "_hash", "_part", "_relpath", "_state", "bytes_written")

    def __init__(self, fd: int, part: Path, final: Path, relpath: PurePosixPath) -> None:
        self._fd = fd
        self._part = part
        self._final = final
        self._relpath = relpath
        self._hash = hashlib.sha256()
        self._state = _State.OPEN
        self.bytes_written = 0

    @property
    def path(self) -> Path:
        """The final path the payload will have after :meth:`commit`."""
        return self._final

    def _require_open(self, what: str) -> None:
        if self._state is not _State.OPEN:
            raise StorageError(f"cannot {what} {self._part}: the writer is {self._state.value}")

    async def write(self, chunk: bytes) -> None:
        self._require_open("write to")
        if chunk:
            await anyio.to_thread.run_sync(self._write_sync, chunk)

    def _write_sync(self, chunk: bytes) -> None:
        try:
            self._write_fd(chunk)
        except OSError as exc:
            raise storage_error(f"cannot write {self._part}", exc) from exc
        self._hash.update(chunk)
        self.bytes_written += len(chunk)

    def _write_fd(self, chunk: bytes) -> None:
        """The one raw write; a seam for tests that need a full disk."""
        write_all(self._fd, chunk)

    async def reset(self) -> None:
        """Start over from byte 0, so a restarted download is neither doubled nor mis-hashed."""
        self._require_open("reset")
        await anyio.to_thread.run_sync(self._reset_sync)

    def _reset_sync(self) -> None:
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise storage_error(f"cannot truncate {self._part}", exc) from exc
        self._hash = hashlib.sha256()
        self.bytes_written = 0

    async def commit(self) -> ArchivedFile:
        """Make the payload final; only now does its name exist (the crash rule).

        If the caller is cancelled while this runs, the worker thread still finishes: the file
        is then final but the caller never records it, and the next run downloads it again.
        """
        self._require_open("commit")
        return await anyio.to_thread.run_sync(self._commit_sync)

    def _commit_sync(self) -> ArchivedFile:
        try:
            os.fsync(self._fd)
            # Rename while still holding the flock: a sweeping peer cannot take the .part away
            # between our fsync and our rename.
            os.replace(self._part, self._final)
        except OSError as exc:
            raise storage_error(f"cannot commit {self._final}", exc) from exc
        self._state = _State.COMMITTED
        os.close(self._fd)
        try:
            fsync_dir(self._final.parent)
        except OSError as exc:
            raise storage_error(f"cannot sync directory of {self._final}", exc) from exc
        return ArchivedFile(self._relpath.as_posix(), self.bytes_written, self._hash.hexdigest())

    def _discard(self) -> None:
        """Drop an uncommitted part; never raises, because it runs while another error unwinds."""
        if self._state is _State.OPEN:
            try:
                os.unlink(self._part)  # still under our flock, so it is certainly ours
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.warning("storage.part_not_removed", extra={"path": str(self._part), "error": str(exc)})
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._state = _State.CLOSED


def create_part(final: Path, relpath: PurePosixPath, writer_class: type[PartWriter]) -> PartWriter:
    """Create the locked ``.part`` of ``final`` (blocking); a dead run's leftover is taken over.

    A ``.part`` another live process holds raises :class:`~harvester.errors.PartBusyError`.
    """
    part = final.with_name(part_name(final.name))
    for _ in range(3):
        try:
            return writer_class(create_locked(part), part, final, relpath)
        except FileExistsError:
            # A leftover from a killed run (take it over) or a live writer (refuse).
            try:
                sweep = remove_if_orphan(part)
            except OSError as exc:
                raise storage_error(f"cannot replace {part}", exc, denied=FolderNotWritableError) from exc
            if sweep is Sweep.BUSY:
                raise PartBusyError(f"{part} is being written by another process") from None
        except OSError as exc:
            raise storage_error(f"cannot create {part}", exc, denied=FolderNotWritableError) from exc
    raise StorageError(f"cannot create {part}: it keeps reappearing")


@asynccontextmanager
async def open_part(create: Callable[[], PartWriter]) -> AsyncIterator[PartWriter]:
    """Run ``create`` in a worker thread, yield the writer, and drop its ``.part`` unless committed."""
    # Shielded: if we were cancelled while the thread created the .part, we would lose the
    # writer and leak its descriptor and file. The body's first await sees the cancel.
    with anyio.CancelScope(shield=True):
        writer = await anyio.to_thread.run_sync(create)
    try:
        yield writer
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer._discard)
