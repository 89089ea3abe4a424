"""The payload writer: one file in progress, streamed to its ``.part``, hashed and counted.

A payload grows as the hidden ``.<final name>.harvester.part`` beside its final name, created
exclusively and flocked for its whole life (see :mod:`~harvester.archive.locks`); only
:meth:`PartWriter.commit` fsyncs it, renames it over the final name and fsyncs the folder, so a
final name always holds complete, durable bytes. Leaving the block without a commit (an error,
a cancel) removes the ``.part``.

Which thread does what, and why (measured with ``bench/bench_part_writer.py``, figures in
``bench/README.md``):

* creating the ``.part`` is one worker-thread call when the block opens, so a busy or refused
  path fails before a byte is fetched;
* body chunks are gathered in memory up to :data:`BATCH_BYTES`; a full batch (or a chunk that
  size by itself) is written by one ``aiofiles`` call, whose file object also hashes and counts
  the bytes in that worker thread: sha256 never runs on the event loop, and a body that arrives
  in small network reads is written in large pieces;
* after that first batch, a large body goes to the worker thread :data:`FLUSH_BYTES` at a time,
  as the list of pieces the network delivered (``writelines``): never joined into a new object
  on the event loop, and one thread hop per MiB rather than per network read;
* :meth:`PartWriter.commit` writes what is still gathered, fsyncs and renames in ONE
  worker-thread call, and a committed writer needs no clean-up call: a small body costs two
  thread hops in all (create, commit) where a hop per step cost four.

Every thread call is shielded from cancellation: a cancel waits for the call in flight, so the
descriptor is never closed (and its number reused) under a write that is still running.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from aiofiles.threadpool.binary import AsyncFileIO

from harvester.archive.files import fsync_dir, write_all
from harvester.archive.locks import Sweep, create_locked, remove_if_orphan
from harvester.archive.oserror import storage_error
from harvester.archive.paths import part_name
from harvester.errors import FolderNotWritableError, PartBusyError, StorageError
from harvester.models import ArchivedFile

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["BATCH_BYTES", "PartWriter", "create_part", "open_part"]

_log = logging.getLogger(__name__)

#: Body bytes gathered before one write: small bodies wait for the commit's single thread call.
BATCH_BYTES = 256 * 1024
#: A body that outgrew its first batch is large: it goes to the writer thread this much at a
#: time, one thread hop per MiB instead of one per network read (measured in bench/README.md).
FLUSH_BYTES = 1024 * 1024
# The pool aiofiles runs body writes on. Not the loop's default executor: aiohttp resolves host
# names there, and a slow disk must not hold up a DNS lookup. Its idle threads cost nothing.
_WRITE_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="archive-write")


class _State(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    CLOSED = "closed"


class _HashingFile(io.FileIO):
    """The open ``.part`` as aiofiles drives it: each write lands whole, hashed and counted.

    ``closefd=False``: the :class:`PartWriter` owns the descriptor (and its flock).
    """

    def __init__(self, fd: int, raw_write: Callable[[bytes], None]) -> None:
        super().__init__(fd, "wb", closefd=False)
        self._raw_write = raw_write
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data) if not isinstance(data, bytes) else data
        self._raw_write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        return len(chunk)

    def restart(self) -> None:
        """Empty the file and forget what was hashed (the descriptor stays at byte 0)."""
        os.ftruncate(self.fileno(), 0)
        os.lseek(self.fileno(), 0, os.SEEK_SET)
        self.digest = hashlib.sha256()
        self.size = 0


class PartWriter:
    """One payload in progress; use it through :meth:`Archive.open_part`."""

    __slots__ = (
        "_aio",
        "_batch",
        "_batched",
        "_fd",
        "_file",
        "_final",
        "_part",
        "_relpath",
        "_state",
        "bytes_written",
    )

    def __init__(self, fd: int, part: Path, final: Path, relpath: PurePosixPath) -> None:
        self._fd = fd
        self._part = part
        self._final = final
        self._relpath = relpath
        self._file = _HashingFile(fd, self._write_fd)
        self._aio = AsyncFileIO(self._file, None, _WRITE_POOL)
        self._batch: list[bytes] = []
        self._batched = 0
        self._state = _State.OPEN
        #: Bytes accepted so far (the last of them may still wait in the batch).
        self.bytes_written = 0

    @property
    def path(self) -> Path:
        """The final path the payload will have after :meth:`commit`."""
        return self._final

    def _require_open(self, what: str) -> None:
        if self._state is not _State.OPEN:
            raise StorageError(f"cannot {what} {self._part}: the writer is {self._state.value}")

    def _write_fd(self, chunk: bytes) -> None:
        """The one raw write (in a worker thread); a seam for tests that need a full disk."""
        write_all(self._fd, chunk)

    def _take_batch(self) -> bytes:
        data = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
        self._batch.clear()
        self._batched = 0
        return data

    async def write(self, chunk: bytes) -> None:
        self._require_open("write to")
        if not chunk:
            return
        self._batch.append(chunk)
        self._batched += len(chunk)
        self.bytes_written += len(chunk)
        # The first batch waits for BATCH_BYTES; once part of the body is on disk, FLUSH_BYTES.
        if self._batched < (BATCH_BYTES if self._batched == self.bytes_written else FLUSH_BYTES):
            return
        # The pieces as they came, not joined: that would copy every byte once more on the event
        # loop. writelines hands each to _HashingFile.write, in the worker thread.
        pieces, self._batch, self._batched = self._batch, [], 0
        with anyio.CancelScope(shield=True):
            try:
                await self._aio.writelines(pieces)
            except OSError as exc:
                raise storage_error(f"cannot write {self._part}", exc) from exc

    async def reset(self) -> None:
        """Start over from byte 0, so a restarted download is neither doubled nor mis-hashed."""
        self._require_open("reset")
        self._batch.clear()
        self._batched = 0
        self.bytes_written = 0
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._file.restart)
            except OSError as exc:
                raise storage_error(f"cannot truncate {self._part}", exc) from exc

    async def commit(self) -> ArchivedFile:
        """Make the payload final; only now does its name exist (the crash rule).

        If the caller is cancelled while this runs, the worker thread still finishes: the file
        is then final but the caller never records it, and the next run downloads it again.
        """
        self._require_open("commit")
        return await anyio.to_thread.run_sync(self._commit_sync, self._take_batch())

    def _commit_sync(self, rest: bytes) -> ArchivedFile:
        if rest:
            try:
                self._file.write(rest)
            except OSError as exc:
                raise storage_error(f"cannot write {self._part}", exc) from exc
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
        return ArchivedFile(self._relpath.as_posix(), self._file.size, self._file.digest.hexdigest())

    async def _close(self) -> None:
        """Drop an uncommitted part (one shielded thread call); a committed one needs none."""
        if self._state is _State.OPEN:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._discard)
        self._state = _State.CLOSED

    def _discard(self) -> None:
        """Remove the ``.part``; never raises, because it runs while another error unwinds."""
        self._batch.clear()
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
        await writer._close()
