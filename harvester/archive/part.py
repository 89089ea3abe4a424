"""The payload writer: one file in progress, streamed to its ``.part``, hashed and counted.

A payload grows as the hidden ``.<final name>.harvester.part`` beside its final name, created
exclusively and flocked for its whole life (see :mod:`~harvester.archive.locks`); only
:meth:`PartWriter.commit` fsyncs it, renames it over the final name and fsyncs the folder, so a
final name always holds complete, durable bytes. Leaving the block without a commit (an error,
a cancel) removes the ``.part``.

Which thread does what, and why (measured with ``bench/bench_part_writer.py``, figures in
``bench/README.md``):

* creating the ``.part`` is one worker-thread call when the block opens, so a busy or refused
  path fails before a byte is fetched, unless the body is known to fit in one batch
  (``defer``): then the commit's one thread call creates, writes, fsyncs and renames, and a
  small file costs ONE hop in all (a refusal then surfaces at the commit, after at most
  :data:`BATCH_BYTES` were fetched, which is cheaper than a hop per file on a good night);
* body chunks are gathered in memory up to :data:`BATCH_BYTES`; a full batch (or a chunk that
  size by itself) is written by one ``aiofiles`` call, whose file object also hashes and counts
  the bytes in that worker thread: sha256 never runs on the event loop, and a body that arrives
  in small network reads is written in large pieces;
* after that first batch, a large body goes to the worker thread :data:`FLUSH_BYTES` at a time,
  as the list of pieces the network delivered (``writelines``): never joined into a new object
  on the event loop, and one thread hop per MiB rather than per network read;
* :meth:`PartWriter.commit` writes what is still gathered, fsyncs and renames in ONE
  worker-thread call (a body that never outgrew its batch is hashed and written there directly,
  with no file object and its fstats), and a committed writer needs no clean-up call: a body of known small
  size costs one thread hop (commit), another small body two (create, commit), where a hop
  per step cost four. A deferred writer whose body outgrows one batch (an encoded body that
  decodes larger) creates its ``.part`` at its first full batch and goes on as usual.

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
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
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

__all__ = ["BATCH_BYTES", "PartWriter", "open_part"]

_log = logging.getLogger(__name__)

#: Body bytes gathered before one write: small bodies wait for the commit's single thread call.
BATCH_BYTES = 256 * 1024
#: A body that outgrew its first batch is large: it goes to the writer thread this much at a
#: time, one thread hop per MiB instead of one per network read (measured in bench/README.md).
FLUSH_BYTES = 1024 * 1024
# The pool aiofiles runs body writes on. Not the loop's default executor: aiohttp resolves host
# names there, and a slow disk must not hold up a DNS lookup. Its idle threads cost nothing.
_WRITE_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="archive-write")


class _DirSyncs:
    """Folder fsyncs shared by payloads renamed into the same folder at the same time.

    A commit must return only once its rename is durable, which takes an fsync of the folder
    that STARTS after the rename. Each commit registers its rename (a ticket) after making it;
    whoever fsyncs next covers every ticket registered before the fsync began, so a commit whose
    rename was covered returns without an fsync of its own, and one that arrived during an fsync
    waits for it to end and then for the next one (its own, or another thread's that began
    later). That is exactly as crash-safe as an fsync per file, with fewer of them when files of
    one replica land together. A failed fsync covers no one: each waiter then tries its own, and
    raises its own error.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirs: dict[Path, _DirState] = {}

    def sync(self, directory: Path) -> None:
        """fsync ``directory`` (or wait for an fsync of it that began after our rename)."""
        with self._cond:
            state = self._dirs.get(directory)
            if state is None:
                state = self._dirs[directory] = _DirState()
            state.renamed += 1
            state.users += 1
            ticket = state.renamed
            try:
                while state.synced < ticket:
                    if state.running:
                        self._cond.wait()
                        continue
                    state.running = True
                    covered = state.renamed  # every rename registered so far is already made
                    self._cond.release()
                    try:
                        fsync_dir(directory)
                    finally:
                        self._cond.acquire()
                        state.running = False
                        self._cond.notify_all()
                    state.synced = max(state.synced, covered)
            finally:
                state.users -= 1
                if state.users == 0:
                    del self._dirs[directory]


@dataclass(slots=True)
class _DirState:
    """One folder's renames registered, renames covered by a finished fsync, and who waits."""

    renamed: int = 0
    synced: int = 0
    running: bool = False
    users: int = 0


_DIR_SYNCS = _DirSyncs()


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
    """One payload in progress; use it through :meth:`Archive.open_part`.

    ``locate`` (blocking, run in a worker thread) checks the path and creates its folders, and
    returns the final path; the ``.part`` beside it is created when the block opens, or, for a
    deferred writer, in the first thread call that needs it (the first full batch, or the commit).
    """

    __slots__ = (
        "_aio",
        "_batch",
        "_batched",
        "_fd",
        "_file",
        "_final",
        "_locate",
        "_part",
        "_relpath",
        "_state",
        "bytes_written",
    )

    def __init__(self, locate: Callable[[], Path], relpath: PurePosixPath) -> None:
        self._locate = locate
        self._relpath = relpath
        self._fd = -1
        self._part: Path | None = None
        self._final: Path | None = None
        self._file: _HashingFile | None = None
        self._aio: AsyncFileIO | None = None
        self._batch: list[bytes] = []
        self._batched = 0
        self._state = _State.OPEN
        #: Bytes accepted so far (the last of them may still wait in the batch).
        self.bytes_written = 0

    @property
    def path(self) -> Path | None:
        """The final path the payload will have after :meth:`commit` (None until it is located)."""
        return self._final

    def _name(self) -> str:
        return str(self._part or self._relpath)

    def _require_open(self, what: str) -> None:
        if self._state is not _State.OPEN:
            raise StorageError(f"cannot {what} {self._name()}: the writer is {self._state.value}")

    def _write_fd(self, chunk: bytes) -> None:
        """The one raw write (in a worker thread); a seam for tests that need a full disk."""
        write_all(self._fd, chunk)

    def _create_sync(self) -> None:
        """Locate the final path and create its locked ``.part`` (blocking); idempotent.

        A ``.part`` another live process holds raises :class:`~harvester.errors.PartBusyError`;
        a dead run's leftover is taken over.
        """
        if self._part is not None:
            return
        final = self._locate()
        part = final.with_name(part_name(final.name))
        fd = _create_locked(part)
        self._fd, self._part, self._final = fd, part, final

    def _open_file(self) -> _HashingFile:
        """The hashing file object a body larger than one batch is streamed through (blocking:
        it creates the ``.part`` first if need be). A body that fits in one batch never needs
        one: the commit writes and hashes it directly."""
        if self._file is None:
            self._create_sync()
            self._file = _HashingFile(self._fd, self._write_fd)
            self._aio = AsyncFileIO(self._file, None, _WRITE_POOL)
        return self._file

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
            if self._aio is None:  # the first batch of a large body (the .part may not exist yet)
                await anyio.to_thread.run_sync(self._open_file)
            assert self._aio is not None
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
        if self._file is None:
            return  # nothing reached the disk yet: nothing to undo, no thread call
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._file.restart)
            except OSError as exc:
                raise storage_error(f"cannot truncate {self._part}", exc) from exc

    async def commit(self) -> ArchivedFile:
        """Make the payload final; only now does its name exist (the crash rule).

        One worker-thread call: for a deferred writer whose body fits in one batch it creates
        the ``.part``, writes, fsyncs, renames and fsyncs the folder, so a small file costs a
        single hop. If the caller is cancelled while this runs, the worker thread still
        finishes: the file is then final but the caller never records it, and the next run
        downloads it again.
        """
        self._require_open("commit")
        return await anyio.to_thread.run_sync(self._commit_sync, self._take_batch())

    def _commit_sync(self, rest: bytes) -> ArchivedFile:
        self._create_sync()
        assert self._part is not None
        assert self._final is not None
        file = self._file
        try:
            if file is None:  # the whole body is in ``rest``: no file object, no extra fstat
                digest, size = hashlib.sha256(rest), len(rest)
                if rest:
                    self._write_fd(rest)
            else:
                if rest:
                    file.write(rest)
                digest, size = file.digest, file.size
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
        self._release()
        # commit returns only once this rename is durable (the manifest line that follows claims
        # the file); files renamed into one folder at once share the fsync (see _DirSyncs).
        try:
            _DIR_SYNCS.sync(self._final.parent)
        except OSError as exc:
            raise storage_error(f"cannot sync directory of {self._final}", exc) from exc
        return ArchivedFile(self._relpath.as_posix(), size, digest.hexdigest())

    async def _close(self) -> None:
        """Drop an uncommitted part (one shielded thread call); a committed one needs none.

        A deferred writer that never created its ``.part`` has nothing on disk to drop.
        """
        if self._state is _State.OPEN and self._part is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._discard)
        self._batch.clear()
        self._state = _State.CLOSED
        self._release()

    def _release(self) -> None:
        """Drop the file objects once the descriptor is closed.

        The hashing file holds ``self._write_fd`` (a bound method, so this writer), and the
        writer holds the file: a reference cycle per downloaded file that only CPython's rare
        full collections free, so at fleet scale they piled up by the tens of MiB (measured in
        bench/README.md). Cutting the cycle here frees the writer, its file objects and its
        paths as soon as the block ends.
        """
        self._file = None
        self._aio = None

    def _discard(self) -> None:
        """Remove the ``.part``; never raises, because it runs while another error unwinds."""
        self._batch.clear()
        if self._part is not None:
            try:
                os.unlink(self._part)  # still under our flock, so it is certainly ours
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.warning("storage.part_not_removed", extra={"path": str(self._part), "error": str(exc)})
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._state = _State.CLOSED
        self._release()


def _create_locked(part: Path) -> int:
    """Create the locked ``part`` (blocking) and return its descriptor; a dead run's leftover is
    taken over, a ``.part`` another live process holds raises
    :class:`~harvester.errors.PartBusyError`.
    """
    for _ in range(3):
        try:
            return create_locked(part)
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
async def open_part(writer: PartWriter, *, defer: bool = False) -> AsyncIterator[PartWriter]:
    """Yield ``writer`` and drop its ``.part`` unless committed.

    Unless ``defer``, the ``.part`` is created first (one worker-thread call), so a busy or
    refused path fails before a byte is fetched. A deferred writer (a body known to fit in one
    batch) creates it inside its commit's single thread call instead; a refusal then surfaces
    from :meth:`PartWriter.commit`, with nothing left on disk, having fetched at most one batch.
    """
    if not defer:
        # Shielded: if we were cancelled while the thread created the .part, we would lose the
        # writer and leak its descriptor and file. The body's first await sees the cancel.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer._create_sync)
    try:
        yield writer
    finally:
        await writer._close()
