"""The archive root: the one object through which anything below it is written.

Every write below the root goes through :class:`Archive`, which decides WHERE (safe paths,
no links) and delegates HOW to one module a job:

* payloads: :mod:`~harvester.archive.part` (the ``.part`` writer);
* small files, appends, tarballs: :mod:`~harvester.archive.files` (temp name, fsync, rename);
* flocks and run locks: :mod:`~harvester.archive.locks`;
* claiming the root and sweeping leftovers: :mod:`~harvester.archive.ownership`.

Nothing below the archive root may be a symlink: directories are created and checked one
component at a time, so a planted link can never make a write land outside the manifest
folder (or the root), whatever path the caller hands in.

Errors keep their cause: ENOSPC/EDQUOT raise :class:`~harvester.errors.DiskFullError`, and a
folder refusing the creation of a payload raises
:class:`~harvester.errors.FolderNotWritableError` (that one file fails, other days go on).
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path, PurePosixPath

from harvester.archive import files, locks, ownership
from harvester.archive.locks import LockHolder
from harvester.archive.oserror import reason, storage_error
from harvester.archive.part import BATCH_BYTES, PartWriter, open_part
from harvester.archive.paths import folder_parts, payload_parts, relparts
from harvester.errors import FolderNotWritableError, StorageError

__all__ = ["Archive"]

#: Payload folders remembered as checked (see :meth:`Archive._payload_path`): ~1 KiB each, and a
#: folder's files arrive close together, so the folders of the instances in flight are enough.
_CHECKED_FOLDERS = 1024


def _same_dirs(chain: tuple[tuple[str, int, int], ...]) -> bool:
    """Whether every component is still the directory the walk found (an lstat each: a link,
    a replacement or a removal anywhere on the way shows as another inode, or an error)."""
    for path, dev, ino in chain:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != (dev, ino) or not stat.S_ISDIR(st.st_mode):
            return False
    return True


class Archive:
    """The archive root and every way of writing below it."""

    #: The payload writer class; a seam for tests that inject storage faults.
    writer_class: type[PartWriter] = PartWriter

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Payload folders this Archive has walked and found real: folder parts -> (path, the
        # (path, dev, ino) of every component below the root).
        self._checked: dict[tuple[str, ...], tuple[Path, tuple[tuple[str, int, int], ...]]] = {}

    # --- paths ---------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        """The path of a manifest folder (``2025-01-02`` or ``incidents/<stamp>-<label>``)."""
        return self.root.joinpath(*folder_parts(name))

    def reserve_folder(self, name: str) -> str:
        """Create a new, empty manifest folder; ``<name>-2``, ``-3``... when it is taken.

        Two incident bundles started in the same second with the same label must not share a
        folder (and a manifest); mkdir is the atomic test-and-set that decides.
        """
        for n in range(1, 1000):
            candidate = name if n == 1 else f"{name}-{n}"
            path = self.folder(candidate)
            try:
                self._dirs(relparts(candidate)[:-1], create=True)
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(f"cannot create {path}", exc) from None
            return candidate
        raise StorageError(f"cannot create a folder named like {name!r}: too many exist")

    def _dirs(
        self, parts: tuple[str, ...], *, create: bool, chain: list[tuple[str, int, int]] | None = None
    ) -> Path | None:
        """Walk (and optionally create) directories below the root, refusing any symlink.

        Returns None when ``create`` is false and a directory does not exist yet. ``chain``
        receives (path, device, inode) of each directory walked, as the walk found it.
        """
        current = self.root
        if create and not current.is_dir():
            current.mkdir(parents=True, exist_ok=True)
        for part in parts:
            current = current / part
            # lstat first: nearly every payload's folders exist already, and a mkdir that fails
            # with EEXIST costs a syscall and a Python exception per component per file.
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(current, 0o755)
                except FileExistsError:
                    pass  # made by a peer meanwhile: checked below like any other
                else:
                    files.fsync_dir(current.parent)  # the new entry must survive a power cut too
                st = os.lstat(current)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                raise StorageError(
                    f"refusing to write through symlink {current}: it could lead outside the archive"
                )
            if not stat.S_ISDIR(mode):
                raise StorageError(f"{current} is in the way: it should be a directory")
            if chain is not None:
                chain.append((str(current), st.st_dev, st.st_ino))
        return current

    def _payload_path(self, folder: str, relpath: PurePosixPath, *, create: bool) -> Path | None:
        """The checked path of a payload (its folders walked, and created with ``create``).

        A night writes dozens of files per folder, and the walk (an lstat and a Path per
        component, then two realpaths: ~25 syscalls, each a GIL hand-off in the worker thread)
        cost more CPU than the file itself. So a folder found real is remembered with the inode
        of every component below the root, and a later payload in it costs one lstat per
        component: while each is still the same directory (not a link, not replaced, not
        removed), the walk's verdict stands; anything else is walked again from the root.
        """
        parts = payload_parts(relpath)
        key = (folder, *parts[:-1])
        known = self._checked.get(key)
        if known is not None:
            cached, walked = known
            if _same_dirs(walked):
                return cached / parts[-1]
            self._checked.pop(key, None)
        base = self.folder(folder)
        folder_rel = base.relative_to(self.root).parts
        chain: list[tuple[str, int, int]] = []
        directory = self._dirs(folder_rel + parts[:-1], create=create, chain=chain)
        if directory is None:
            return None
        # Belt and braces: the component walk already refused links, so this only fires if the
        # tree changed under us.
        real_dir, real_base = os.path.realpath(directory), os.path.realpath(base)
        if real_dir != real_base and not real_dir.startswith(real_base + os.sep):
            raise StorageError(f"refusing archive path {str(relpath)!r}: it resolves outside {base}")
        if len(self._checked) >= _CHECKED_FOLDERS:
            self._checked.clear()  # a fleet's folders of one night; the next walks refill it
        self._checked[key] = (directory, tuple(chain))
        return directory / parts[-1]

    def _internal_path(self, relpath: PurePosixPath | str, *, create: bool) -> Path:
        parts = relparts(relpath)
        try:
            directory = self._dirs(parts[:-1], create=create)
        except OSError as exc:
            raise storage_error(f"cannot create directories for {self.root / relpath}", exc) from exc
        if directory is None:
            return self.root.joinpath(*parts)
        return directory / parts[-1]

    # --- the root ------------------------------------------------------------------------

    def claim(self, *, write: bool = True) -> None:
        """Refuse a root that is not the harvester's own; mark it on first use (see ownership)."""
        ownership.claim(self.root, write=write)

    def check_not_system(self) -> None:
        """Refuse a system folder or the home folder itself."""
        ownership.check_not_system(self.root)

    def check_writable(self) -> None:
        """Fail before any download starts, with one line an operator can act on."""
        ownership.check_writable(self.root)

    def remove_orphans(self, *, full: bool = False) -> int:
        """Delete what killed runs left (see ownership); ``full``: walk every folder."""
        return ownership.remove_orphans(self.root, full=full)

    # --- payloads ------------------------------------------------------------------------

    def exists(self, folder: str, relpath: PurePosixPath) -> bool:
        """Whether a final (committed) payload is present; a ``.part`` does not count."""
        path = self._payload_path(folder, relpath, create=False)
        if path is None:
            return False
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode):
            raise StorageError(f"{path} is a symlink: the archive must not contain links")
        return stat.S_ISREG(mode)

    def open_part(
        self, folder: str, relpath: PurePosixPath, *, expected_size: int | None = None
    ) -> AbstractAsyncContextManager[PartWriter]:
        """Start a payload; leaving the block without :meth:`PartWriter.commit` discards it.

        ``expected_size`` (a Content-Length, the length of bytes in hand): when it fits in one
        batch, the ``.part`` is created by the commit's single thread call instead of a thread
        call of its own (see :mod:`~harvester.archive.part`); the path checks are the same,
        they only run later, so a refused path fails the commit instead of the block's start.
        """
        relpath = PurePosixPath(relpath)
        if expected_size is not None:  # refuse a bad name now (pure checks), not after the fetch
            self.folder(folder)
            payload_parts(relpath)
        writer = self.writer_class(functools.partial(self._payload_final, folder, relpath), relpath)
        defer = expected_size is not None and expected_size <= BATCH_BYTES
        return open_part(writer, defer=defer)

    def _payload_final(self, folder: str, relpath: PurePosixPath) -> Path:
        """The checked final path of a payload, its folders created (blocking)."""
        try:
            final = self._payload_path(folder, relpath, create=True)
        except OSError as exc:
            raise storage_error(
                f"cannot create folders for {folder}/{relpath}", exc, denied=FolderNotWritableError
            ) from exc
        assert final is not None  # create=True never returns None
        return final

    # --- small files ---------------------------------------------------------------------

    def write_bytes_atomic(self, path: Path, data: bytes) -> None:
        """Atomically replace any file (inside the archive or not) with ``data``."""
        try:
            files.write_bytes_atomic(path, data)
        except OSError as exc:
            raise storage_error(f"cannot write {path}", exc) from exc

    def write_chunks_atomic(self, relpath: PurePosixPath | str, chunks: Iterable[bytes]) -> Path:
        """Atomically write the pieces of ``chunks`` at ``relpath`` below the root, streamed
        (see :func:`files.write_chunks_atomic`); returns the path."""
        path = self._internal_path(relpath, create=True)
        try:
            files.write_chunks_atomic(path, chunks)
        except OSError as exc:
            raise storage_error(f"cannot write {path}", exc) from exc
        except (TypeError, ValueError) as exc:  # a piece that could not be made (not JSON, not UTF-8)
            raise StorageError(f"cannot write {path}: {exc}") from exc
        return path

    def write_json_atomic(self, relpath: PurePosixPath | str, data: object) -> Path:
        """Atomically write ``data`` as indented JSON at ``relpath`` below the root; returns the path.

        Dates and datetimes become ISO strings, enums their values, dataclasses dicts. The text is
        streamed into the temporary file (:func:`files.json_chunks`), never held whole: a fleet's
        ``runs/<id>.json`` is megabytes at the very end of a run, when memory is at its peak.
        """
        return self.write_chunks_atomic(relpath, files.json_chunks(data))

    def write_tar(self, folder: str) -> Path:
        """``<folder>.tar.gz`` beside a manifest folder, complete or absent."""
        source = self.folder(folder)
        target = source.with_name(source.name + ".tar.gz")
        files.write_tar(source, target)
        return target

    # --- appends under a lock (blocking: call them from a worker thread) ------------------

    @contextmanager
    def exclusive(self, relpath: PurePosixPath | str) -> Iterator[None]:
        """Hold an exclusive flock on the lock file ``relpath`` (blocking), across processes."""
        with locks.exclusive(self._internal_path(relpath, create=True)):
            yield

    def remove_lock_file(self, relpath: PurePosixPath | str) -> None:
        """Delete the lock file of a folder that one process owned from start to end.

        Only for an incident bundle (reserved with :meth:`reserve_folder`, finished): it is a
        record, not a place anyone writes to again, so it keeps no lock file. Shared folders
        keep theirs: unlinking a lock file another process holds would break its flock.
        """
        path = self._internal_path(relpath, create=False)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot remove {path}: {reason(exc)}") from exc

    def repair_tail(self, relpath: PurePosixPath | str) -> int:
        """Cut a torn last line; call it holding the file's :meth:`exclusive` lock."""
        return files.repair_tail(self._internal_path(relpath, create=False))

    def append_durably(self, relpath: PurePosixPath | str, data: bytes) -> int:
        """Append whole lines durably (see :func:`files.append_durably`); returns the old size.

        Call it holding the file's :meth:`exclusive` lock.
        """
        return files.append_durably(self._internal_path(relpath, create=True), data, write=self._write_fd)

    def truncate_to(self, relpath: PurePosixPath | str, size: int) -> None:
        """Cut a file back to ``size``; call it holding the file's :meth:`exclusive` lock."""
        files.truncate_to(self._internal_path(relpath, create=False), size)

    def _write_fd(self, fd: int, data: bytes) -> None:
        """The one raw write of :meth:`append_durably`; a seam for tests that need a full disk."""
        files.write_all(fd, data)

    # --- run locks -----------------------------------------------------------------------

    def run_lock(
        self, name: str, timeout: float, *, shared: bool = False
    ) -> AbstractAsyncContextManager[LockHolder | None]:
        """Hold ``<root>/.locks/<name>.lock`` for a run; waits up to ``timeout`` seconds.

        The block receives the previous holder when it died without releasing the lock (its
        details were still in the file), else None. The file is never deleted: unlinking a
        flock file lets two processes lock two different inodes under one name. ``shared``
        holders (the shards of one sharded run) coexist with each other but not with an
        exclusive holder (an unsharded run of the whole fleet); they leave no details.
        """
        if not name or name.startswith(".") or not all(c.isalnum() or c in "._-" for c in name):
            raise StorageError(f"invalid lock name {name!r}")
        return self._run_lock(name, timeout, shared)

    @asynccontextmanager
    async def _run_lock(self, name: str, timeout: float, shared: bool) -> AsyncIterator[LockHolder | None]:
        path = self._internal_path(PurePosixPath(".locks", f"{name}.lock"), create=True)
        async with locks.hold_run_lock(path, timeout, shared) as stale:
            yield stale
