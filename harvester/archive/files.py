"""Durable file primitives: atomic replace, whole-line appends, tarballs, hashing.

Blocking functions on absolute paths (call them from a worker thread); which paths they may
touch is decided by :class:`~harvester.archive.store.Archive`. Every one keeps a crash from
leaving a torn file under a final name: a small file is written to a locked
``.<name>.<token>.harvester-tmp`` sibling, fsynced and renamed over its name, and its folder
fsynced; an append that fails midway is cut back to its previous size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import os
import secrets
import tarfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from pathlib import Path, PurePosixPath

from harvester.archive.locks import create_locked
from harvester.archive.oserror import storage_error
from harvester.archive.paths import TMP_SUFFIX

__all__ = [
    "append_durably",
    "fsync_dir",
    "json_chunks",
    "json_default",
    "repair_tail",
    "sha256_file",
    "truncate_to",
    "write_all",
    "write_bytes_atomic",
    "write_chunks_atomic",
    "write_tar",
]

_log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Make a new or renamed entry of ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data``: a short write (signals, odd filesystems) is continued."""
    written = os.write(fd, data)
    if written < len(data):  # rare: only then pay for a view
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Used for files outside the archive too (the node_exporter metrics file, ``--summary-json``,
    the timeline page). The temporary name does not end in ``.prom``/``.json``, so collectors
    that glob for those never pick up a half-written file, and it is created 0644 (minus
    umask) rather than mkstemp's 0600, so a collector running as another user can read it.
    Raises OSError; :meth:`Archive.write_bytes_atomic` turns that into a StorageError.
    """
    write_chunks_atomic(path, (data,))


def write_chunks_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """:func:`write_bytes_atomic` for a body produced piece by piece, never held whole.

    The pieces are gathered up to :data:`_CHUNK` and written to the temporary sibling as they
    come, so a large document (the fleet's pending-day state) costs one buffer, not the whole
    file, plus the objects it is made from. Anything raised while producing or writing a piece
    (a full disk, a value that is not JSON) removes the temporary file and leaves ``path`` as
    it was.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    fd = create_locked(tmp)
    try:
        pending: list[bytes] = []
        size = 0
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= _CHUNK:
                write_all(fd, b"".join(pending) if len(pending) > 1 else pending[0])
                pending.clear()
                size = 0
        if pending:
            write_all(fd, b"".join(pending) if len(pending) > 1 else pending[0])
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    fsync_dir(directory)


def json_chunks(data: object, *, indent: int | None = 2, ensure_ascii: bool = False) -> Iterator[bytes]:
    """``json.dumps(data, ...) + "\\n"`` as UTF-8 pieces of about 64 KiB.

    For :func:`write_chunks_atomic`: the document is never one string plus its bytes (a fleet's
    run summary is megabytes). Same text as ``json.dumps`` with :func:`json_default`; a value
    that is not JSON raises TypeError or ValueError while the pieces are produced.
    """
    encoder = json.JSONEncoder(indent=indent, ensure_ascii=ensure_ascii, default=json_default)
    pieces: list[str] = []
    size = 0
    for piece in encoder.iterencode(data):
        pieces.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(pieces).encode()
            pieces.clear()
            size = 0
    pieces.append("\n")
    yield "".join(pieces).encode()


def json_default(value: object) -> object:
    """JSON for the harvester's records: ISO dates, enum values, dataclasses as dicts."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path | PurePosixPath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def repair_tail(path: Path) -> int:
    """Cut a torn last line (a crash mid-append) so the next append starts on a fresh line.

    Call it holding the file's lock. Returns how many bytes were cut.
    """
    try:
        with open(path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            keep, end = 0, size
            while end > 0:
                start = max(0, end - 4096)
                fh.seek(start)
                newline = fh.read(end - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise storage_error(f"cannot repair {path}", exc) from exc
    _log.warning("storage.torn_line_removed", extra={"path": str(path), "bytes": size - keep})
    return size - keep


def append_durably(path: Path, data: bytes, *, write: Callable[[int, bytes], None] = write_all) -> int:
    """Append whole lines with one O_APPEND write and fsync, after repairing a torn tail.

    Call it holding the file's lock. Returns the file's size before the append, for
    :func:`truncate_to`. A write or fsync that fails (ENOSPC midway through a line) is rolled
    back to that size, so the file never keeps a torn line; if even the rollback fails, the
    next append's :func:`repair_tail` cuts it. ``write`` is the one raw write (a test seam).
    """
    repair_tail(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise storage_error(f"cannot append to {path}", exc) from exc
    try:
        before = os.fstat(fd).st_size
        try:
            write(fd, data)
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, before)
                os.fsync(fd)
            except OSError as undo:
                _log.warning("storage.append_not_rolled_back", extra={"path": str(path), "error": str(undo)})
            else:
                _log.warning("storage.append_rolled_back", extra={"path": str(path), "bytes": before})
            raise storage_error(f"cannot append to {path}", exc) from exc
    except OSError as exc:  # fstat
        raise storage_error(f"cannot append to {path}", exc) from exc
    finally:
        os.close(fd)
    return before


def truncate_to(path: Path, size: int) -> None:
    """Cut a file back to ``size`` (undo an append whose companion write failed)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(f"cannot roll back {path}", exc) from exc


def write_tar(source: Path, target: Path) -> None:
    """``target`` (a .tar.gz of ``source``), complete or absent: temporary name, then rename.

    The temporary is locked like every other one, so a peer's orphan sweep leaves it alone.
    Hidden files and links are left out: the bundle's records, not its lock or leftovers.
    """
    tmp = _tmp_sibling(target)
    try:
        fd = create_locked(tmp)
    except OSError as exc:
        raise storage_error(f"cannot write {target}", exc) from None
    try:
        with os.fdopen(os.dup(fd), "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.name.startswith(".") and not path.is_symlink():
                    tar.add(path, arcname=f"{source.name}/{path.relative_to(source).as_posix()}")
        os.fsync(fd)
        tmp.replace(target)
        fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(f"cannot write {target}", exc) from None
    finally:
        os.close(fd)


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in 1 MiB pieces into one reused buffer."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()
