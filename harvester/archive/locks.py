"""The archive's flocks: files in progress, manifest folders, and whole runs.

Several shards may share one root (on a shared filesystem), so "leftover" cannot mean "any
``.part`` file": a peer may be writing it right now. Each in-progress file is therefore created
and held under an exclusive ``flock`` for its whole life (:func:`create_locked`). The kernel
drops the locks of a dead process, so a leftover that can be locked is an orphan, and one that
cannot is alive and left alone (:func:`remove_if_orphan`).

A run holds ``<root>/.locks/<name>.lock`` (:func:`hold_run_lock`); its file carries the
holder's pid, host and start while it runs and is emptied on release, so contents found when
taking it mean the previous holder was killed. Lock files are never deleted: unlinking a flock
file lets two processes lock two different inodes under one name.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from harvester.archive.oserror import reason
from harvester.errors import LockError, StorageError

__all__ = [
    "O_CREATE",
    "LockHolder",
    "Sweep",
    "create_locked",
    "exclusive",
    "hold_run_lock",
    "remove_if_orphan",
]

_log = logging.getLogger(__name__)

#: How a file of ours is created: new, never through a link, not inherited by children.
O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_POLL_SECONDS = 0.1


# --------------------------------------------------------------------------- files in progress


def create_locked(path: Path) -> int:
    """Create ``path`` exclusively and flock it, proving no orphan sweep removed it meanwhile.

    Between ``open(O_EXCL)`` and ``flock`` a concurrent sweep (another shard starting up) could
    lock and unlink the brand-new file; the inode comparison catches that, and we simply
    create it again.
    """
    for _ in range(5):
        fd = os.open(path, O_CREATE, 0o644)
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


class Sweep(enum.Enum):
    """What :func:`remove_if_orphan` found."""

    REMOVED = "removed"
    GONE = "gone"  # vanished before we looked: someone renamed or removed it
    BUSY = "busy"  # a live process holds it


def remove_if_orphan(path: Path) -> Sweep:
    """Unlink ``path`` only if no live process holds its flock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return Sweep.GONE
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink is not ours to clean; verify() reports it
            return Sweep.BUSY
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Sweep.BUSY
        # The writer may have renamed the file to its final name after we opened it: then the
        # inode we hold is a finished payload, and the name (if any) is somebody else's.
        try:
            if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                return Sweep.GONE
            os.unlink(path)
        except FileNotFoundError:
            return Sweep.GONE
        return Sweep.REMOVED
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- lock files


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {path}: {reason(exc)}") from exc


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the lock file ``path`` (blocking), across processes.

    Every open gets its own lock, so this serialises threads of one process as well.
    """
    fd = _open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise StorageError(f"cannot lock {path}: {reason(exc)}") from exc
        yield
    finally:
        os.close(fd)  # closing releases the flock


# --------------------------------------------------------------------------- run locks


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


@asynccontextmanager
async def hold_run_lock(path: Path, timeout: float, shared: bool) -> AsyncIterator[LockHolder | None]:
    """Hold the run lock file ``path``, waiting up to ``timeout`` seconds; see Archive.run_lock."""
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


def _try_take_lock(fd: int, path: Path, shared: bool = False) -> tuple[bool, LockHolder | None]:
    """Try once; when taken, also return the previous holder if it never released the lock."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False, None
    except OSError as exc:
        raise StorageError(f"cannot lock {path}: {reason(exc)}") from exc
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
