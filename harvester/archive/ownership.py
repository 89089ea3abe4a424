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
whose flock a live peer holds is left alone (see :mod:`~harvester.archive.locks`). The sweep
walks only the folders where a leftover can have appeared since the last one (the rule and its
record are in :mod:`~harvester.archive.startup_state`), so start-up does not grow with the
archive's age; ``full=True`` walks everything.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from harvester.archive.files import write_bytes_atomic
from harvester.archive.locks import Sweep, create_locked, remove_if_orphan
from harvester.archive.oserror import reason, storage_error
from harvester.archive.paths import INCIDENTS, MARKER_NAME, TMP_SUFFIX, is_date_name, is_leftover
from harvester.archive.startup_state import (
    NEWEST_WALKED,
    DirSig,
    SweepRecord,
    load_sweep,
    must_sweep,
    save_sweep,
)
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


@dataclass(slots=True)
class _Tally:
    """What sweeping one place found: how many leftovers went, and whether it is now clean."""

    removed: int = 0
    clean: bool = True  # False: a folder unreadable, a leftover kept (live peer, cannot remove)


def _listdir(path: Path, tally: _Tally | None = None) -> list[str]:
    """Names in a real directory (not a link to one); [] when it is absent or unreadable."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return []
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as exc:
        _log.warning("storage.folder_unreadable", extra={"path": str(path), "error": reason(exc)})
        if tally is not None:
            tally.clean = False
        return []


def _candidates(directory: Path, *, recursive: bool, legacy: bool, tally: _Tally) -> Iterator[Path]:
    """Leftover-looking regular names in ``directory`` (and below it), never following links."""
    if not recursive:
        for name in _listdir(directory, tally):
            if is_leftover(name, legacy=legacy):
                yield directory / name
        return

    def unreadable(exc: OSError) -> None:
        _log.warning("storage.folder_unreadable", extra={"path": str(exc.filename), "error": reason(exc)})
        tally.clean = False

    for dirpath, _dirs, filenames in os.walk(directory, onerror=unreadable):
        for name in filenames:
            if is_leftover(name, legacy=legacy):
                yield Path(dirpath, name)


def _sweep(directory: Path, *, recursive: bool, legacy: bool) -> _Tally:
    """Remove the orphaned leftovers in one place of ours."""
    tally = _Tally()
    for path in _candidates(directory, recursive=recursive, legacy=legacy, tally=tally):
        try:
            outcome = remove_if_orphan(path)
        except OSError as exc:
            _log.warning("storage.orphan_not_removed", extra={"path": str(path), "error": reason(exc)})
            tally.clean = False
            continue
        if outcome is Sweep.REMOVED:
            tally.removed += 1
            _log.info("storage.orphan_removed", extra={"path": str(path)})
        elif outcome is Sweep.BUSY:
            tally.clean = False  # a live peer's file: it may yet be left behind
    return tally


def _manifest_dirs(root: Path) -> Iterator[tuple[str, Path, DirSig]]:
    """Each date folder and incident bundle (real directories, not links) with its signature."""
    for parent, prefix, wanted in (
        (root, "", is_date_name),
        (root / INCIDENTS, f"{INCIDENTS}/", lambda n: not n.startswith(".")),
    ):
        try:
            with os.scandir(parent) as it:
                entries = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            _log.warning("storage.folder_unreadable", extra={"path": str(parent), "error": reason(exc)})
            continue
        for entry in entries:
            if not wanted(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile (pruned)
            if stat.S_ISDIR(st.st_mode):
                yield prefix + entry.name, Path(entry.path), DirSig.of(st)


def remove_orphans(root: Path, *, full: bool = False, today: date | None = None) -> int:
    """Delete leftovers of killed runs; live peers' files, and other programs' files, are kept.

    Walks only the manifest folders where a leftover can have appeared since the last sweep
    (:func:`~harvester.archive.startup_state.must_sweep`: recent days, changed folders,
    unfinished bundles, everything when there is no trustworthy record or ``full``), so the cost
    does not grow with the archive's age, then records what it found clean. ``today``: the UTC
    day of this sweep (tests pass one). A leftover that cannot be removed (a read-only old date
    folder) is logged as a warning: it must not stop tonight's run, and its folder is walked
    again next time. Returns how many were removed.
    """
    if not os.path.isdir(root) or os.path.islink(root):
        return 0
    today = datetime.now(UTC).date() if today is None else today
    record = None if full else load_sweep(root)
    removed = 0
    # The harvester's own folders, flat: write probes and the marker's temporary at the root,
    # records in runs/ and .state/, tarball temporaries in incidents/. Always, and cheap.
    for directory in (root, root / "runs", root / ".state", root / INCIDENTS):
        removed += _sweep(directory, recursive=False, legacy=False).removed
    clean: dict[str, DirSig] = {}
    walked = skipped = 0
    folders = list(_manifest_dirs(root))
    newest = {name for name, _, _ in folders if is_date_name(name)}
    newest = set(sorted(newest)[-NEWEST_WALKED:])
    for name, path, sig in folders:
        bundle = not is_date_name(name)
        finished = bundle and record is not None and os.path.lexists(path / "summary.json")
        if not must_sweep(name, sig, record, today, newest=name in newest, finished=finished):
            clean[name] = sig
            skipped += 1
            continue
        walked += 1
        tally = _sweep(path, recursive=True, legacy=True)
        removed += tally.removed
        if tally.clean:
            clean[name] = sig  # as it was before the walk: a change during it shows next time
    _log.debug("storage.orphan_sweep", extra={"walked": walked, "skipped": skipped, "full": record is None})
    new = SweepRecord(today, clean)
    if new != record:
        save_sweep(root, new)
    return removed
