"""The only module that writes the archive.

Every write follows one protocol, so that a crash (even SIGKILL, even mid-rename) leaves the
archive readable and every final name pointing at complete, durable bytes:

* a payload grows as the hidden ``.<final name>.harvester.part`` beside its final name;
  :meth:`PartWriter.commit` fsyncs it, renames it over the final name and fsyncs the directory;
* small files (run summaries, the manifests' sha256 lists, the metrics file) are written to a
  hidden ``.<name>.<token>.harvester-tmp`` sibling and renamed the same way;
* a killed writer leaves at worst one of those leftovers, which :meth:`Archive.remove_orphans`
  deletes on the next run. It removes only names this module produces, and only in the places
  it writes them (date folders, incident bundles, ``incidents/``, ``runs/``, ``.state/`` and
  the root's own probe files): the root may be shared with nothing else, but a stray
  ``*.part`` of another program is still not ours to delete. Before the hidden part names, a
  payload grew as ``<final name>.part``; such leftovers are still removed inside date folders
  and bundles, where no payload may end in ``.part``.

The root itself is claimed before the first write (:meth:`Archive.claim`): a system folder, or
a folder holding somebody else's files, is refused; a harvester archive carries the marker file
``.harvester-archive``, written on first use (an archive of the previous version, which holds
nothing but date folders and the harvester's own folders, is adopted and marked).

Errors keep their cause: ENOSPC/EDQUOT raise :class:`~harvester.errors.DiskFullError`, and a
folder refusing the creation of a payload raises
:class:`~harvester.errors.FolderNotWritableError` (that one file fails, other days go on).
An append that fails midway is cut back to its previous size, so no manifest line is left torn.

Several shards may share one root (on a shared filesystem), so "leftover" cannot mean "any
``.part`` file": a peer may be writing it right now. Each in-progress file is therefore held
under an exclusive ``flock`` for its whole life. The kernel drops the locks of a dead process,
so a leftover that can be locked is an orphan, and one that cannot is alive and left alone.

Nothing below the archive root may be a symlink: directories are created and checked one
component at a time, so a planted link can never make a write land outside the manifest
folder (or the root), whatever path the planner hands in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import stat
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

import anyio
import anyio.to_thread

from harvester.errors import (
    ArchiveRootError,
    DiskFullError,
    FolderNotWritableError,
    LockError,
    PartBusyError,
    StorageError,
)
from harvester.models import ArchivedFile

__all__ = [
    "LEGACY_PART_SUFFIX",
    "MARKER_NAME",
    "PART_SUFFIX",
    "TMP_SUFFIX",
    "Archive",
    "LockHolder",
    "PartWriter",
    "write_bytes_atomic",
]

_log = logging.getLogger(__name__)

#: A payload in progress is ``.<final name>.harvester.part``: hidden, and unmistakably ours.
PART_SUFFIX = ".harvester.part"
#: What the previous version called it (``<final name>.part``); swept only in manifest folders.
LEGACY_PART_SUFFIX = ".part"
TMP_SUFFIX = ".harvester-tmp"
#: The file that says "this folder is a harvester archive" (written on first use).
MARKER_NAME = ".harvester-archive"
# Top-level names that belong to the harvester itself, never to a manifest folder.
_RESERVED_TOP = frozenset({".state", ".locks", "runs"})
# What an archive written by the previous version (no marker yet) may hold at its top level,
# besides date folders; lost+found is the file system's own, on a root that is a mount point.
_ADOPTABLE_DIRS = frozenset({".state", ".locks", "runs", "incidents", "lost+found"})
# Never an archive root, whatever the config says: resolved paths, so a link to / is caught.
_SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 - a name to refuse, not a place we write
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/spool",
        "/var/tmp",  # noqa: S108
    }
)
_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# Names a payload may not take: they would collide with a manifest folder's own files or be
# mistaken for leftovers by remove_orphans().
_RESERVED_NAMES = frozenset({"manifest.jsonl", "manifest-sha256.txt", ".manifest.lock"})
_LOCK_POLL_SECONDS = 0.1
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _reason(exc: OSError) -> str:
    """One line for an OSError: ``strerror`` without the path noise, else ``str``."""
    return exc.strerror or str(exc).splitlines()[0]


def _error(message: str, exc: OSError, *, denied: type[StorageError] = StorageError) -> StorageError:
    """The StorageError for ``exc``: disk full is its own class, so the engine can tell.

    ``denied`` is the class for a refused write (read-only, permissions): callers that write one
    payload pass :class:`FolderNotWritableError`, so one bad folder fails only its files.
    """
    text = f"{message}: {_reason(exc)}"
    if exc.errno in _FULL_ERRNOS:
        return DiskFullError(f"{message}: disk full ({_reason(exc)})")
    if exc.errno in _DENIED_ERRNOS:
        return denied(text)
    return StorageError(text)


def is_date_name(name: str) -> bool:
    """Whether ``name`` is a date folder's name (``YYYY-MM-DD``, a real date)."""
    if not _DATE_NAME.fullmatch(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def _check_parts(parts: tuple[str, ...], shown: str) -> None:
    if not parts:
        raise StorageError(f"refusing empty archive path {shown!r}")
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise StorageError(f"refusing archive path {shown!r}: component {part!r} is not allowed")


def _relparts(relpath: PurePosixPath | str) -> tuple[str, ...]:
    pure = PurePosixPath(relpath)
    if pure.is_absolute():
        raise StorageError(f"refusing absolute archive path {str(relpath)!r}")
    _check_parts(pure.parts, str(relpath))
    return pure.parts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # rare (signals, odd filesystems): only then pay for a view
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])


def _create_locked(path: Path) -> int:
    """Create ``path`` exclusively and flock it, proving no orphan sweep removed it meanwhile.

    Between ``open(O_EXCL)`` and ``flock`` a concurrent :meth:`Archive.remove_orphans` (another
    shard starting up) could lock and unlink the brand-new file; the inode comparison catches
    that, and we simply create it again.
    """
    for _ in range(5):
        fd = os.open(path, _O_CREATE, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise StorageError(f"cannot create {path}: it keeps being removed by a concurrent cleanup")


class _Sweep(enum.Enum):
    REMOVED = "removed"
    GONE = "gone"  # vanished before we looked: someone renamed or removed it
    BUSY = "busy"  # a live process holds it


def _remove_if_orphan(path: Path) -> _Sweep:
    """Unlink ``path`` only if no live process holds its flock (see the module docstring)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return _Sweep.GONE
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink is not ours to clean; verify() reports it
            return _Sweep.BUSY
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _Sweep.BUSY
        # The writer may have renamed the file to its final name after we opened it: then the
        # inode we hold is a finished payload, and the name (if any) is somebody else's.
        try:
            if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                return _Sweep.GONE
            os.unlink(path)
        except FileNotFoundError:
            return _Sweep.GONE
        return _Sweep.REMOVED
    finally:
        os.close(fd)


def _home() -> str | None:
    try:
        return os.path.realpath(Path.home())
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return None


def _adoptable(root: Path, name: str) -> bool:
    """Whether a top-level entry of an unmarked root is something the harvester wrote."""
    path = root / name
    if name.endswith(TMP_SUFFIX) and name.startswith("."):
        return True  # a killed write probe or marker write
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(mode):
        return False
    return name in _ADOPTABLE_DIRS or is_date_name(name)


def _listdir(path: Path) -> list[str]:
    """Names in a real directory (not a link to one); [] when it is absent or unreadable."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return []
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as exc:
        _log.warning("storage.folder_unreadable", extra={"path": str(path), "error": _reason(exc)})
        return []


def _is_leftover(name: str, *, legacy: bool) -> bool:
    if name.endswith(TMP_SUFFIX) or (name.startswith(".") and name.endswith(PART_SUFFIX)):
        return True
    return legacy and name.endswith(LEGACY_PART_SUFFIX)


def _candidates(directory: Path, *, recursive: bool, legacy: bool) -> Iterator[Path]:
    """Leftover-looking regular names in ``directory`` (and below it), never following links."""
    if not recursive:
        for name in _listdir(directory):
            if _is_leftover(name, legacy=legacy):
                yield directory / name
        return

    def unreadable(exc: OSError) -> None:
        _log.warning("storage.folder_unreadable", extra={"path": str(exc.filename), "error": _reason(exc)})

    for dirpath, _dirs, filenames in os.walk(directory, onerror=unreadable):
        for name in filenames:
            if _is_leftover(name, legacy=legacy):
                yield Path(dirpath, name)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Used for files outside the archive too (the node_exporter metrics file), hence a free
    function. The temporary name does not end in ``.prom``/``.json``, so collectors that glob
    for those never pick up a half-written file, and it is created 0644 (minus umask) rather
    than mkstemp's 0600, so a collector running as another user can read the result.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}"
    fd = _create_locked(tmp)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    _fsync_dir(directory)


def _json_default(value: object) -> object:
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


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds (or last held) a run lock, as written into the lock file."""

    pid: int | None
    host: str
    started_at: str

    def describe(self) -> str:
        pid = "?" if self.pid is None else str(self.pid)
        return f"pid {pid} on host {self.host or '?'} since {self.started_at or '?'}"

    @classmethod
    def parse(cls, raw: bytes) -> LockHolder | None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return cls(None, "", f"unreadable lock contents {text[:80]!r}")
        if not isinstance(data, dict):
            return cls(None, "", f"unreadable lock contents {text[:80]!r}")
        pid = data.get("pid")
        return cls(
            pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            str(data.get("host", "")),
            str(data.get("started_at", "")),
        )


def _read_fd(fd: int) -> bytes:
    return os.pread(fd, 4096, 0)


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
            raise _error(f"cannot write {self._part}", exc) from exc
        self._hash.update(chunk)
        self.bytes_written += len(chunk)

    def _write_fd(self, chunk: bytes) -> None:
        """The one raw write; a seam for tests that need a full disk."""
        _write_all(self._fd, chunk)

    async def reset(self) -> None:
        """Start over from byte 0, so a restarted download is neither doubled nor mis-hashed."""
        self._require_open("reset")
        await anyio.to_thread.run_sync(self._reset_sync)

    def _reset_sync(self) -> None:
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise _error(f"cannot truncate {self._part}", exc) from exc
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
            raise _error(f"cannot commit {self._final}", exc) from exc
        self._state = _State.COMMITTED
        os.close(self._fd)
        try:
            _fsync_dir(self._final.parent)
        except OSError as exc:
            raise _error(f"cannot sync directory of {self._final}", exc) from exc
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


class Archive:
    """The archive root and every way of writing below it."""

    #: The payload writer class; a seam for tests that inject storage faults.
    writer_class: type[PartWriter] = PartWriter

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- paths ---------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        """The path of a manifest folder (``2025-01-02`` or ``incidents/<stamp>-<label>``)."""
        parts = _relparts(name)
        if parts[0] in _RESERVED_TOP or any(p.startswith(".") for p in parts):
            raise StorageError(f"{name!r} cannot be a manifest folder: the name is reserved")
        if parts[0] == "incidents" and len(parts) != 2:
            raise StorageError(f"{name!r} cannot be a manifest folder: bundles are incidents/<name>")
        return self.root.joinpath(*parts)

    def reserve_folder(self, name: str) -> str:
        """Create a new, empty manifest folder; ``<name>-2``, ``-3``... when it is taken.

        Two incident bundles started in the same second with the same label must not share a
        folder (and a manifest); mkdir is the atomic test-and-set that decides.
        """
        for n in range(1, 1000):
            candidate = name if n == 1 else f"{name}-{n}"
            path = self.folder(candidate)
            try:
                self._dirs(_relparts(candidate)[:-1], create=True)
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise _error(f"cannot create {path}", exc) from None
            return candidate
        raise StorageError(f"cannot create a folder named like {name!r}: too many exist")

    def _dirs(self, parts: tuple[str, ...], *, create: bool) -> Path | None:
        """Walk (and optionally create) directories below the root, refusing any symlink.

        Returns None when ``create`` is false and a directory does not exist yet.
        """
        current = self.root
        if create:
            current.mkdir(parents=True, exist_ok=True)
        for part in parts:
            current = current / part
            if create:
                try:
                    os.mkdir(current, 0o755)
                except FileExistsError:
                    pass
                else:
                    _fsync_dir(current.parent)  # the new entry must survive a power cut too
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if create:
                    raise
                return None
            if stat.S_ISLNK(mode):
                raise StorageError(
                    f"refusing to write through symlink {current}: it could lead outside the archive"
                )
            if not stat.S_ISDIR(mode):
                raise StorageError(f"{current} is in the way: it should be a directory")
        return current

    def _payload_path(self, folder: str, relpath: PurePosixPath, *, create: bool) -> Path | None:
        parts = _relparts(relpath)
        name = parts[-1]
        if name in _RESERVED_NAMES or name.endswith((LEGACY_PART_SUFFIX, TMP_SUFFIX)):
            raise StorageError(f"refusing archive path {str(relpath)!r}: {name!r} is a reserved name")
        base = self.folder(folder)
        folder_parts = base.relative_to(self.root).parts
        directory = self._dirs(folder_parts + parts[:-1], create=create)
        if directory is None:
            return None
        # Belt and braces: the component walk already refused links, so this only fires if the
        # tree changed under us.
        real_dir, real_base = os.path.realpath(directory), os.path.realpath(base)
        if real_dir != real_base and not real_dir.startswith(real_base + os.sep):
            raise StorageError(f"refusing archive path {str(relpath)!r}: it resolves outside {base}")
        return directory / name

    def _internal_path(self, relpath: PurePosixPath | str, *, create: bool) -> Path:
        parts = _relparts(relpath)
        try:
            directory = self._dirs(parts[:-1], create=create)
        except OSError as exc:
            raise _error(f"cannot create directories for {self.root / relpath}", exc) from exc
        if directory is None:
            return self.root.joinpath(*parts)
        return directory / parts[-1]

    # --- whole-archive operations --------------------------------------------------------

    def claim(self, *, write: bool = True) -> None:
        """Refuse a root that is not the harvester's own; mark it as ours on first use.

        Called before anything is written. A system folder (resolved, so a link to ``/`` is
        caught) or the user's home is refused outright. A root carrying the marker is ours. An
        unmarked root is adopted (and marked, when ``write``) only if it does not exist yet, is
        empty, or holds nothing but what the previous version wrote: date folders, ``runs/``,
        ``.state/``, ``.locks/``, ``incidents/``. Anything else means the operator pointed the
        harvester at somebody else's folder, where its clean-up and ``prune`` have no business.
        """
        self.check_not_system()
        try:
            mode = os.stat(self.root).st_mode
        except (FileNotFoundError, NotADirectoryError):
            if write:
                self._mark()
            return
        except OSError as exc:
            raise _error(f"cannot read archive root {self.root}", exc) from exc
        if not stat.S_ISDIR(mode):
            raise ArchiveRootError(
                f"archive root {self.root} is not a folder: point archive.root at a folder"
            )
        marker = self.root / MARKER_NAME
        if os.path.lexists(marker):
            if not stat.S_ISREG(os.lstat(marker).st_mode):
                raise ArchiveRootError(f"{marker} is not a regular file: remove it, then run again")
            return
        try:
            names = sorted(os.listdir(self.root))
        except OSError as exc:
            raise _error(f"cannot read archive root {self.root}", exc) from exc
        foreign = [n for n in names if not _adoptable(self.root, n)]
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ArchiveRootError(
                f"archive root {self.root} holds files the harvester did not write ({shown}): point "
                f"archive.root at a new or empty folder, or, if it really is a harvester archive, "
                f"create {marker} to adopt it"
            )
        if write:
            self._mark()
            if names:
                _log.info("storage.archive_adopted", extra={"root": str(self.root)})

    def check_not_system(self) -> None:
        """Refuse a system folder or the home folder itself (resolved: a link to / is caught)."""
        real = os.path.realpath(self.root)
        home = _home()
        if real in _SYSTEM_DIRS:
            raise ArchiveRootError(
                f"archive root {self.root} is the system folder {real}: give the harvester a folder "
                "of its own, e.g. /var/lib/dcs-log-harvester/archive"
            )
        if home is not None and real == home:
            raise ArchiveRootError(
                f"archive root {self.root} is the home folder itself: give the harvester a folder "
                f"of its own, e.g. {home}/dcs-archive"
            )

    def _mark(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _error(f"archive root {self.root} is not writable", exc) from exc
        note = (
            "This folder is a dcs-log-harvester archive. The harvester deletes only its own\n"
            "leftovers here, and prune only date folders, runs/ files and incident bundles.\n"
        )
        self.write_bytes_atomic(self.root / MARKER_NAME, note.encode())

    def check_writable(self) -> None:
        """Fail before any download starts, with one line an operator can act on."""
        probe = self.root / f".write-probe.{secrets.token_hex(6)}{TMP_SUFFIX}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, _O_CREATE, 0o644)
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise _error(f"archive root {self.root} is not writable", exc) from exc

    def remove_orphans(self) -> int:
        """Delete leftovers of killed runs; live peers' files, and other programs' files, are kept.

        Only names :mod:`harvester.storage` produces are candidates (see the module docstring),
        and only where it writes them. A leftover that cannot be removed (a read-only old date
        folder) is logged as a warning: it must not stop tonight's run.
        """
        if not os.path.isdir(self.root) or os.path.islink(self.root):
            return 0
        removed = 0
        for directory, recursive, legacy in self._sweep_places():
            for path in _candidates(directory, recursive=recursive, legacy=legacy):
                try:
                    outcome = _remove_if_orphan(path)
                except OSError as exc:
                    _log.warning(
                        "storage.orphan_not_removed", extra={"path": str(path), "error": _reason(exc)}
                    )
                    continue
                if outcome is _Sweep.REMOVED:
                    removed += 1
                    _log.info("storage.orphan_removed", extra={"path": str(path)})
        return removed

    def _sweep_places(self) -> Iterator[tuple[Path, bool, bool]]:
        """(folder, walk it recursively, legacy ``.part`` names count) for each place we write."""
        yield self.root, False, False  # write probes, the marker's temporary
        for name in ("runs", ".state", "incidents"):
            yield self.root / name, False, False
        for name in _listdir(self.root):
            if is_date_name(name):
                yield self.root / name, True, True
        for name in _listdir(self.root / "incidents"):
            if not name.startswith("."):
                yield self.root / "incidents" / name, True, True

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

    def open_part(self, folder: str, relpath: PurePosixPath) -> AbstractAsyncContextManager[PartWriter]:
        """Start a payload; leaving the block without :meth:`PartWriter.commit` discards it."""
        return self._open_part(folder, relpath)

    @asynccontextmanager
    async def _open_part(self, folder: str, relpath: PurePosixPath) -> AsyncIterator[PartWriter]:
        # Shielded: if we were cancelled while the thread created the .part, we would lose the
        # writer and leak its descriptor and file. The body's first await sees the cancel.
        with anyio.CancelScope(shield=True):
            writer = await anyio.to_thread.run_sync(self._create_part, folder, PurePosixPath(relpath))
        try:
            yield writer
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(writer._discard)

    def _create_part(self, folder: str, relpath: PurePosixPath) -> PartWriter:
        try:
            final = self._payload_path(folder, relpath, create=True)
        except OSError as exc:
            raise _error(
                f"cannot create folders for {folder}/{relpath}", exc, denied=FolderNotWritableError
            ) from exc
        assert final is not None  # create=True never returns None
        part = final.with_name(f".{final.name}{PART_SUFFIX}")
        for _ in range(3):
            try:
                return self.writer_class(_create_locked(part), part, final, relpath)
            except FileExistsError:
                # A leftover from a killed run (take it over) or a live writer (refuse).
                try:
                    sweep = _remove_if_orphan(part)
                except OSError as exc:
                    raise _error(f"cannot replace {part}", exc, denied=FolderNotWritableError) from exc
                if sweep is _Sweep.BUSY:
                    raise PartBusyError(f"{part} is being written by another process") from None
            except OSError as exc:
                raise _error(f"cannot create {part}", exc, denied=FolderNotWritableError) from exc
        raise StorageError(f"cannot create {part}: it keeps reappearing")

    # --- small files ---------------------------------------------------------------------

    def write_bytes_atomic(self, path: Path, data: bytes) -> None:
        """Atomically replace any file (inside the archive or not) with ``data``."""
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise _error(f"cannot write {path}", exc) from exc

    def write_json_atomic(self, relpath: PurePosixPath | str, data: object) -> Path:
        """Atomically write ``data`` as JSON at ``relpath`` below the root; returns the path.

        Dates and datetimes become ISO strings, enums their values, dataclasses dicts.
        """
        path = self._internal_path(relpath, create=True)
        try:
            payload = json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n"
        except (TypeError, ValueError) as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc
        self.write_bytes_atomic(path, payload.encode())
        return path

    # --- primitives for manifest.py (blocking: call them from a worker thread) ------------

    @contextmanager
    def exclusive(self, relpath: PurePosixPath | str) -> Iterator[None]:
        """Hold an exclusive flock on the lock file ``relpath`` (blocking), across processes.

        Every open gets its own lock, so this serialises threads of one process as well.
        """
        path = self._internal_path(relpath, create=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open lock file {path}: {_reason(exc)}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise StorageError(f"cannot lock {path}: {_reason(exc)}") from exc
            yield
        finally:
            os.close(fd)  # closing releases the flock

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
            raise StorageError(f"cannot remove {path}: {_reason(exc)}") from exc

    def repair_tail(self, relpath: PurePosixPath | str) -> int:
        """Cut a torn last line (a crash mid-append) so the next append starts on a fresh line.

        Call it holding the file's :meth:`exclusive` lock. Returns how many bytes were cut.
        """
        path = self._internal_path(relpath, create=False)
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
            raise _error(f"cannot repair {path}", exc) from exc
        _log.warning("storage.torn_line_removed", extra={"path": str(path), "bytes": size - keep})
        return size - keep

    def append_durably(self, relpath: PurePosixPath | str, data: bytes) -> int:
        """Append whole lines with one O_APPEND write and fsync, after repairing a torn tail.

        Call it holding the file's :meth:`exclusive` lock. Returns the file's size before the
        append, for :meth:`truncate_to`. A write or fsync that fails (ENOSPC midway through a
        line) is rolled back to that size, so the file never keeps a torn line; if even the
        rollback fails, the next append's :meth:`repair_tail` cuts it.
        """
        path = self._internal_path(relpath, create=True)
        self.repair_tail(relpath)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _error(f"cannot append to {path}", exc) from exc
        try:
            before = os.fstat(fd).st_size
            try:
                self._write_fd(fd, data)
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, before)
                    os.fsync(fd)
                except OSError as undo:
                    _log.warning(
                        "storage.append_not_rolled_back", extra={"path": str(path), "error": str(undo)}
                    )
                else:
                    _log.warning("storage.append_rolled_back", extra={"path": str(path), "bytes": before})
                raise _error(f"cannot append to {path}", exc) from exc
        except OSError as exc:  # fstat
            raise _error(f"cannot append to {path}", exc) from exc
        finally:
            os.close(fd)
        return before

    def truncate_to(self, relpath: PurePosixPath | str, size: int) -> None:
        """Cut a file back to ``size`` (undo an append whose companion write failed).

        Call it holding the file's :meth:`exclusive` lock.
        """
        path = self._internal_path(relpath, create=False)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _error(f"cannot roll back {path}", exc) from exc

    def _write_fd(self, fd: int, data: bytes) -> None:
        """The one raw write of :meth:`append_durably`; a seam for tests that need a full disk."""
        _write_all(fd, data)

    # --- run locks -----------------------------------------------------------------------

    def write_tar(self, folder: str) -> Path:
        """``<folder>.tar.gz`` beside a manifest folder, complete or absent (temp name, then rename).

        The temporary is locked like every other one, so a peer's orphan sweep leaves it alone.
        """
        source = self.folder(folder)
        target = source.with_name(source.name + ".tar.gz")
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
        try:
            fd = _create_locked(tmp)
        except OSError as exc:
            raise _error(f"cannot write {target}", exc) from None
        try:
            with os.fdopen(os.dup(fd), "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for path in sorted(source.rglob("*")):
                    if path.is_file() and not path.name.startswith(".") and not path.is_symlink():
                        tar.add(path, arcname=f"{source.name}/{path.relative_to(source).as_posix()}")
            os.fsync(fd)
            tmp.replace(target)
            _fsync_dir(target.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _error(f"cannot write {target}", exc) from None
        finally:
            os.close(fd)
        return target

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
        # Shielded steps: a cancel landing mid-thread would otherwise leak the descriptor, or
        # leave our details in the file so the next run reports us as a killed holder.
        with anyio.CancelScope(shield=True):
            fd = await anyio.to_thread.run_sync(_open_lock_file, path)
        try:
            deadline = anyio.current_time() + timeout
            while True:
                with anyio.CancelScope(shield=True):
                    taken, stale = await anyio.to_thread.run_sync(_try_take_lock, fd, path, shared)
                if taken:
                    break
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    holder = LockHolder.parse(await anyio.to_thread.run_sync(_read_fd, fd))
                    who = holder.describe() if holder else "holder unknown"
                    raise LockError(f"another harvester run holds {path} ({who}); waited {timeout:g}s")
                await anyio.sleep(min(_LOCK_POLL_SECONDS, remaining))
        except BaseException:
            os.close(fd)
            raise
        if stale is not None:
            _log.warning(
                "storage.stale_lock_taken_over",
                extra={"path": str(path), "pid": stale.pid, "host": stale.host, "since": stale.started_at},
            )
        try:
            yield stale
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_release_lock, fd, shared)


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {path}: {_reason(exc)}") from exc


def _try_take_lock(fd: int, path: Path, shared: bool = False) -> tuple[bool, LockHolder | None]:
    """Try once; when taken, also return the previous holder if it never released the lock."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False, None
    except OSError as exc:
        raise StorageError(f"cannot lock {path}: {_reason(exc)}") from exc
    if shared:
        return True, None  # several holders: the file keeps the last exclusive holder's note
    # A clean release empties the file, so leftover contents mean the holder was killed.
    stale = LockHolder.parse(_read_fd(fd))
    mine = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
    os.fsync(fd)
    return True, stale


def _release_lock(fd: int, shared: bool = False) -> None:
    if shared:
        os.close(fd)
        return
    try:
        os.ftruncate(fd, 0)
    except OSError as exc:  # the lock is released by close() anyway; only the note stays
        _log.warning("storage.lock_not_cleared", extra={"error": str(exc)})
    finally:
        os.close(fd)
