"""Recording archived files: append each entry, keep the sha256 list derived, reconcile.

An entry is recorded only after its file is final on disk (the crash rule, see
:mod:`~harvester.archive.manifest`). Records to one folder are group-committed: while one batch
is being written (in its worker thread, under the folder's flock), the records that arrive queue
up, and the next batch writes all of them with ONE append + fsync to ``manifest.jsonl`` and one
to ``manifest-sha256.txt``. Every shard sharing the root appends both files under that flock, so
they keep one order; a path recorded again regenerates the list instead.

Why batches and not a timer: a batch forms only from records that arrived while the previous one
was on disk, so a lone record is written at once, and a busy night pays one thread hop, one flock
and two fsyncs per batch instead of per file. Each :meth:`ManifestWriter.record` still returns only
after its own line is durable, and a batch that fails (disk full) fails every record in it, with
its manifest lines taken back so the two files agree.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from harvester.archive.manifest import (
    ManifestEntry,
    Parsed,
    load,
    manifest_folders,
    parse_lines,
    sha_line,
    sha_list,
)
from harvester.archive.paths import MANIFEST_LOCK, MANIFEST_NAME, SHA_LIST_NAME, listed_path
from harvester.archive.startup_state import ManifestSigs, load_intact, manifest_sigs, save_intact
from harvester.archive.store import Archive
from harvester.errors import StorageError

__all__ = ["ManifestWriter", "batch_lines"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Digests:
    """What this process already parsed of one manifest.jsonl, so a record reads only new lines.

    ``tail`` (the last complete line parsed) guards against a recreated file that reuses the
    inode number: if the bytes before ``offset`` are not that line any more, we start over.
    """

    device: int
    inode: int
    offset: int
    tail: bytes
    # hash() of each path recorded: all a record needs to know (append a line, or regenerate
    # the list for a path recorded again). Not the parsed entries: a day folder of a large fleet
    # holds tens of thousands of files, and an entry with its decoded JSON costs ~1.7 KiB each
    # (a path string ~0.2 KiB, its hash ~60 B). A hash collision only makes a new path look
    # recorded, which regenerates the list from the manifest: slower, never wrong.
    paths: set[int]


@dataclass(slots=True, eq=False)
class _Waiter:
    """One record waiting for the batch that writes its line."""

    entry: ManifestEntry
    done: bool = False
    error: StorageError | None = None


@dataclass(slots=True)
class _Queue:
    """The records of one folder not yet taken by a batch."""

    waiting: list[_Waiter] = field(default_factory=list)


class ManifestWriter:
    """Appends entries and keeps each folder's sha256 list derived from its manifest.jsonl.

    Safe across tasks (an anyio lock per folder: one batch in its thread at a time, so tasks
    never park threads on the flock) and across processes sharing the root (the flock on
    ``<folder>/.manifest.lock``).
    """

    def __init__(self, archive: Archive) -> None:
        self._archive = archive
        self._locks: dict[str, anyio.Lock] = {}
        self._queues: dict[str, _Queue] = {}
        self._cache: dict[str, _Digests] = {}

    def queued(self, folder: str) -> int:
        """How many records of ``folder`` wait for the next batch (for tests and benches)."""
        queue = self._queues.get(folder)
        return 0 if queue is None else len(queue.waiting)

    def _task_lock(self, folder: str) -> anyio.Lock:
        lock = self._locks.get(folder)
        if lock is None:
            lock = self._locks[folder] = anyio.Lock(fast_acquire=True)
        return lock

    async def record(self, folder: str, entry: ManifestEntry) -> None:
        """Record a file that is already final on disk (see the crash rule above).

        Returns once this entry's line is durable in both files, or raises the
        :class:`~harvester.errors.StorageError` of the batch it was in. The first record to get
        the folder's lock writes every record queued by then (its own included) in one thread
        call; the others find their line already written. Callers shield the record: a batch in
        its thread always finishes (``to_thread.run_sync`` is not cancellable), and a record
        cancelled before any batch took it is withdrawn from the queue.
        """
        self._archive.folder(folder)  # validate before any thread or lock
        queue = self._queues.get(folder)
        if queue is None:
            queue = self._queues[folder] = _Queue()
        waiter = _Waiter(entry)
        queue.waiting.append(waiter)
        try:
            async with self._task_lock(folder):
                if not waiter.done:
                    await self._write_batch(folder, queue)
        except BaseException:
            if not waiter.done and waiter in queue.waiting:
                queue.waiting.remove(waiter)  # cancelled while waiting: no batch wrote it
            raise
        if waiter.error is not None:
            raise _copy(waiter.error) from waiter.error

    async def _write_batch(self, folder: str, queue: _Queue) -> None:
        """Write every queued record of ``folder`` in one thread call; tell each how it went."""
        batch, queue.waiting = queue.waiting, []
        error: StorageError | None = None
        try:
            await anyio.to_thread.run_sync(self._record_sync, folder, [w.entry for w in batch])
        except StorageError as exc:
            error = exc
        except BaseException as exc:  # a bug: no record of this batch may report success
            error = StorageError(f"cannot record in {folder}: {exc!r}")
            raise
        finally:
            for waiter in batch:
                waiter.done = True
                waiter.error = error

    def _record_sync(self, folder: str, entries: Sequence[ManifestEntry]) -> None:
        """Append the entries, then their sha256 lines; rewrite the list only when a path repeats.

        Rewriting the whole list per file made a night quadratic in files per day folder. Every
        writer (all shards) appends both lines under the folder's flock, so the list stays the
        manifest's paths in first-appearance order; a crash between the two appends leaves the
        list one line behind (still ``sha256sum -c`` clean), and start-up ``reconcile`` fixes it.
        When the sha256 step fails (disk full), the manifest line is taken back too, so the two
        files agree and the error reaches the caller: the file is not archived, and the next run
        fetches it again (the crash rule's case).
        """
        with self._archive.exclusive(f"{folder}/{MANIFEST_LOCK}"):
            entries = [self._with_mtime(folder, entry) for entry in entries]
            exists = (self._archive.folder(folder) / MANIFEST_NAME).exists()
            known: Set[int] = self._refresh(folder) if exists else frozenset()
            lines, sha_lines = batch_lines(entries, known)
            before = self._archive.append_durably(f"{folder}/{MANIFEST_NAME}", lines)
            try:
                self._refresh(folder)
                if sha_lines is None:  # rare (a repair, another shard): read the manifest back in full
                    base = self._archive.folder(folder)
                    manifest = base / MANIFEST_NAME
                    try:
                        listed = sha_list(load(manifest).entries)
                    except OSError as exc:
                        raise StorageError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
                    self._archive.write_bytes_atomic(base / SHA_LIST_NAME, listed)
                else:
                    self._archive.append_durably(f"{folder}/{SHA_LIST_NAME}", sha_lines)
            except StorageError:
                self._cache.pop(folder, None)
                try:
                    self._archive.truncate_to(f"{folder}/{MANIFEST_NAME}", before)
                except StorageError as undo:  # the list lags one line; start-up reconcile fixes it
                    _log.warning(
                        "manifest.line_not_rolled_back", extra={"folder": folder, "error": str(undo)}
                    )
                raise

    def _with_mtime(self, folder: str, entry: ManifestEntry) -> ManifestEntry:
        """The entry with the file's mtime, so later runs notice when the file was touched."""
        if entry.mtime_ns is not None:
            return entry
        path = listed_path(self._archive.folder(folder), entry.path)
        if path is None:
            return entry
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return entry
        if st.st_size != entry.size:
            return entry  # not the file this entry describes: leave mtime out, size decides
        return dataclasses.replace(entry, mtime_ns=st.st_mtime_ns)

    def _refresh(self, folder: str) -> Set[int]:
        """Bring the cached parse of ``folder``'s manifest up to date; call under its flock."""
        manifest = self._archive.folder(folder) / MANIFEST_NAME
        try:
            with open(manifest, "rb") as fh:
                st = os.fstat(fh.fileno())
                cached = self._cache.get(folder)
                if cached is not None and (
                    (cached.device, cached.inode) != (st.st_dev, st.st_ino)
                    or st.st_size < cached.offset
                    or os.pread(fh.fileno(), len(cached.tail), cached.offset - len(cached.tail))
                    != cached.tail
                ):
                    cached = None
                if cached is None:
                    cached = _Digests(st.st_dev, st.st_ino, 0, b"", set())
                fh.seek(cached.offset)
                data = fh.read()
        except OSError as exc:
            raise StorageError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
        fresh = Parsed()
        used = parse_lines(data, fresh)
        if used:
            cached.offset += used
            cached.tail = data[data.rfind(b"\n", 0, used - 1) + 1 : used]
        cached.paths.update(map(hash, fresh.entries))
        self._cache[folder] = cached
        return cached.paths  # read-only view of the cache: no O(n) copy per record

    async def reconcile(self, folder: str) -> bool:
        """Cut a torn tail and regenerate a lagging sha256 list; True if anything changed."""
        changed, _sigs = await self._reconcile_one(folder)
        return changed

    async def _reconcile_one(self, folder: str) -> tuple[bool, ManifestSigs | None]:
        self._archive.folder(folder)
        async with self._task_lock(folder):
            return await anyio.to_thread.run_sync(self._reconcile_sync, folder)

    def _reconcile_sync(self, folder: str) -> tuple[bool, ManifestSigs | None]:
        """Reconcile one folder; also the signatures of its manifest files as found intact."""
        base = self._archive.folder(folder)
        manifest = base / MANIFEST_NAME
        if not manifest.exists():
            return False, None
        # Read-only first: an intact folder (the usual case) needs no lock file, so a folder
        # made read-only after its night costs nothing and is never written to. The signatures
        # are taken before the read: a change after it shows as a changed signature next time.
        before = manifest_sigs(base)
        if _intact(base):
            return False, before
        with self._archive.exclusive(f"{folder}/{MANIFEST_LOCK}"):
            changed = self._archive.repair_tail(f"{folder}/{MANIFEST_NAME}") > 0
            expected = sha_list(load(manifest).entries)
            try:
                current: bytes | None = (base / SHA_LIST_NAME).read_bytes()
            except FileNotFoundError:
                current = None
            if current != expected:
                self._archive.write_bytes_atomic(base / SHA_LIST_NAME, expected)
                _log.warning("manifest.sha_list_regenerated", extra={"folder": folder})
                changed = True
            return changed, manifest_sigs(base)  # under the flock: no writer appends meanwhile

    async def reconcile_all(self, *, full: bool = False) -> list[str]:
        """Run :meth:`reconcile` over every manifest folder; call it once at start-up.

        A folder whose two manifest files are as they were when last found intact (same inode,
        size, mtime and ctime: see :mod:`~harvester.archive.startup_state`) is not read again,
        so start-up does not grow with the archive's age; ``full`` reads every folder. A folder
        that cannot be repaired (read-only, say) is logged as a warning and left as it is:
        readers ignore a torn tail, and it must not stop tonight's new days.
        """
        root = self._archive.root
        folders, recorded, known = await anyio.to_thread.run_sync(_unchanged, root, full)
        changed: list[str] = []
        for folder in folders:
            if folder in known:
                continue
            try:
                repaired, sigs = await self._reconcile_one(folder)
            except StorageError as exc:
                _log.warning("manifest.folder_not_reconciled", extra={"folder": folder, "error": str(exc)})
                continue
            if repaired:
                changed.append(folder)
            if sigs is not None:
                known[folder] = sigs
        if known != recorded:
            await anyio.to_thread.run_sync(save_intact, root, known)
        return changed


def batch_lines(entries: Sequence[ManifestEntry], known: Set[int]) -> tuple[bytes, bytes | None]:
    """The bytes one batch appends: its manifest lines, and its sha256 lines in the same order.

    The sha256 lines are None when a path of the batch is already ``known`` (its ``hash()`` is
    among the paths recorded before; a collision only costs a regenerated list) or appears twice
    in the batch: the later line wins, so the list's line for that path
    changes, and the caller regenerates the whole list instead of appending.
    """
    lines: list[str] = []
    sha: list[str] | None = []
    seen: set[str] = set()
    for entry in entries:
        lines.append(entry.to_json() + "\n")
        if sha is not None:
            if hash(entry.path) in known or entry.path in seen:
                sha = None
            else:
                seen.add(entry.path)
                sha.append(sha_line(entry.path, entry.sha256))
    return "".join(lines).encode(), None if sha is None else "".join(sha).encode()


def _copy(error: StorageError) -> StorageError:
    """A fresh instance of a batch's error for each of its records, so tracebacks stay apart."""
    twin = copy.copy(error)
    twin.__traceback__ = None
    return twin


def _unchanged(root: Path, full: bool) -> tuple[list[str], dict[str, ManifestSigs], dict[str, ManifestSigs]]:
    """Every manifest folder, the record of intact ones, and those still as recorded (blocking)."""
    folders = manifest_folders(root)
    recorded = {} if full else load_intact(root)
    same = {
        folder: sigs
        for folder in folders
        if (sigs := recorded.get(folder)) is not None and manifest_sigs(root / folder) == sigs
    }
    return folders, recorded, same


def _intact(base: Path) -> bool:
    """Whether a folder's manifest ends on a whole line and its sha256 list agrees with it."""
    try:
        data = (base / MANIFEST_NAME).read_bytes()
        current = (base / SHA_LIST_NAME).read_bytes()
    except OSError:
        return False
    if data and not data.endswith(b"\n"):
        return False
    parsed = Parsed()
    parse_lines(data, parsed)
    return current == sha_list(parsed.entries)
