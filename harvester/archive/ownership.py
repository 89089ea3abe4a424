"""What in the archive is the harvester's: claiming the root, and sweeping only our leftovers.

The root is claimed before the first write (:func:`claim`): a system folder, or a folder holding
somebody else's files, is refused; a harvester archive carries the marker file
``.harvester-archive``, written on first use (an archive of an earlier version, which holds
nothing but date folders and the harvester's own folders, is adopted and marked).

A killed writer leaves at worst a ``.part`` or ``.harvester-tmp`` file, which
:func:`remove_orphans` deletes on the next run. It removes only names the archive package
produces, and only in the places it writes them (date folders, incident bundles,
``incidents/``, ``runs/``, ``.state/`` and the root's own probe files): the root may be shared
with nothing else, but a stray ``*.part`` of another program is still not ours to delete.
Before the hidden part names, a payload grew as ``<final name>.part``; such leftovers are still
removed inside date folders and bundles, where no payload may end in ``.part``. A leftover
whose flock a live peer holds is left alone (see :mod:`~harvester.archive.locks`).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from harvester.archive.files import write_bytes_atomic
from harvester.archive.locks import Sweep, create_locked, remove_if_orphan
from harvester.archive.oserror import reason, storage_error
from harvester.archive.paths import INCIDENTS, MARKER_NAME, TMP_SUFFIX, is_date_name, is_leftover
from harvester.errors import ArchiveRootError

__all__ = ["check_not_system", "check_writable", "claim", "remove_orphans"]

_log = logging.getLogger(__name__)

# What an archive written by an earlier version (no marker yet) may hold at its top level,
# besides date folders; lost+found is the file system's own, on a root that is a mount point.
_ADOPTABLE_DIRS = frozenset({".state", ".locks", "runs", INCIDENTS, "lost+found"})
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


# --------------------------------------------------------------------------- the root


def _home() -> str | None:
    try:
        return os.path.realpath(Path.home())
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return None


def check_not_system(root: Path) -> None:
    """Refuse a system folder or the home folder itself (resolved: a link to / is caught)."""
    real = os.path.realpath(root)
    home = _home()
    if real in _SYSTEM_DIRS:
        raise ArchiveRootError(
            f"archive root {root} is the system folder {real}: give the harvester a folder "
            "of its own, e.g. /var/lib/dcs-log-harvester/archive"
        )
    if home is not None and real == home:
        raise ArchiveRootError(
            f"archive root {root} is the home folder itself: give the harvester a folder "
            f"of its own, e.g. {home}/dcs-archive"
        )


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


def claim(root: Path, *, write: bool = True) -> None:
    """Refuse a root that is not the harvester's own; mark it as ours on first use.

    Called before anything is written. A system folder (resolved, so a link to ``/`` is
    caught) or the user's home is refused outright. A root carrying the marker is ours. An
    unmarked root is adopted (and marked, when ``write``) only if it does not exist yet, is
    empty, or holds nothing but what an earlier version wrote: date folders, ``runs/``,
    ``.state/``, ``.locks/``, ``incidents/``. Anything else means the operator pointed the
    harvester at somebody else's folder, where its clean-up and ``prune`` have no business.
    """
    check_not_system(root)
    try:
        mode = os.stat(root).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if write:
            _mark(root)
        return
    except OSError as exc:
        raise storage_error(f"cannot read archive root {root}", exc) from exc
    if not stat.S_ISDIR(mode):
        raise ArchiveRootError(f"archive root {root} is not a folder: point archive.root at a folder")
    marker = root / MARKER_NAME
    if os.path.lexists(marker):
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            raise ArchiveRootError(f"{marker} is not a regular file: remove it, then run again")
        return
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise storage_error(f"cannot read archive root {root}", exc) from exc
    foreign = [n for n in names if not _adoptable(root, n)]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ArchiveRootError(
            f"archive root {root} holds files the harvester did not write ({shown}): point "
            f"archive.root at a new or empty folder, or, if it really is a harvester archive, "
            f"create {marker} to adopt it"
        )
    if write:
        _mark(root)
        if names:
            _log.info("storage.archive_adopted", extra={"root": str(root)})


def _mark(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(f"archive root {root} is not writable", exc) from exc
    note = (
        "This folder is a dcs-log-harvester archive. The harvester deletes only its own\n"
        "leftovers here, and prune only date folders, runs/ files and incident bundles.\n"
    )
    marker = root / MARKER_NAME
    try:
        write_bytes_atomic(marker, note.encode())
    except OSError as exc:
        raise storage_error(f"cannot write {marker}", exc) from exc


def check_writable(root: Path) -> None:
    """Fail before any download starts, with one line an operator can act on.

    The probe is held locked while it exists, like every temporary of ours: a shard starting
    at the same moment sweeps unlocked leftovers, and must not take this one for a dead run's.
    """
    probe = root / f".write-probe.{secrets.token_hex(6)}{TMP_SUFFIX}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = create_locked(probe)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
            os.unlink(probe)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(f"archive root {root} is not writable", exc) from exc


# --------------------------------------------------------------------------- leftovers


def _listdir(path: Path) -> list[str]:
    """Names in a real directory (not a link to one); [] when it is absent or unreadable."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return []
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as exc:
        _log.warning("storage.folder_unreadable", extra={"path": str(path), "error": reason(exc)})
        return []


def _candidates(directory: Path, *, recursive: bool, legacy: bool) -> Iterator[Path]:
    """Leftover-looking regular names in ``directory`` (and below it), never following links."""
    if not recursive:
        for name in _listdir(directory):
            if is_leftover(name, legacy=legacy):
                yield directory / name
        return

    def unreadable(exc: OSError) -> None:
        _log.warning("storage.folder_unreadable", extra={"path": str(exc.filename), "error": reason(exc)})

    for dirpath, _dirs, filenames in os.walk(directory, onerror=unreadable):
        for name in filenames:
            if is_leftover(name, legacy=legacy):
                yield Path(dirpath, name)


def _sweep_places(root: Path) -> Iterator[tuple[Path, bool, bool]]:
    """(folder, walk it recursively, legacy ``.part`` names count) for each place we write."""
    yield root, False, False  # write probes, the marker's temporary
    for name in ("runs", ".state", INCIDENTS):
        yield root / name, False, False
    for name in _listdir(root):
        if is_date_name(name):
            yield root / name, True, True
    for name in _listdir(root / INCIDENTS):
        if not name.startswith("."):
            yield root / INCIDENTS / name, True, True


def remove_orphans(root: Path) -> int:
    """Delete leftovers of killed runs; live peers' files, and other programs' files, are kept.

    A leftover that cannot be removed (a read-only old date folder) is logged as a warning: it
    must not stop tonight's run. Returns how many were removed.
    """
    if not os.path.isdir(root) or os.path.islink(root):
        return 0
    removed = 0
    for directory, recursive, legacy in _sweep_places(root):
        for path in _candidates(directory, recursive=recursive, legacy=legacy):
            try:
                outcome = remove_if_orphan(path)
            except OSError as exc:
                _log.warning("storage.orphan_not_removed", extra={"path": str(path), "error": reason(exc)})
                continue
            if outcome is Sweep.REMOVED:
                removed += 1
                _log.info("storage.orphan_removed", extra={"path": str(path)})
    return removed
