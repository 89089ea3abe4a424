"""What start-up remembers so that it need not re-read an old archive every night.

Every run that holds the run lock first sweeps the leftovers of killed runs
(:func:`~harvester.archive.ownership.remove_orphans`) and reconciles every manifest
(:meth:`~harvester.archive.manifest_writer.ManifestWriter.reconcile_all`). Done in full, both
read the whole archive, so start-up grew with the archive's age (a year of nights: hundreds of
thousands of names walked, every manifest line parsed) while the night's work stays the same.
Two small records in ``.state/`` let them look only where something could have changed:

**The sweep record** (``.state/sweep.json``): the day of the last sweep, and for each manifest
folder the sweep walked and found clean (no leftover it could not remove, no unreadable folder,
no file a live peer held), that folder's own directory signature (inode, mtime, ctime). A later
sweep walks a folder again when (:func:`must_sweep`):

* the record is missing, unreadable, of another version, or its checksum does not match (a
  hand-edited record): then *every* folder is walked, as on the first run;
* the folder is not in the record, or its directory changed since (any entry created, removed
  or renamed at its top level changes mtime and ctime; ctime cannot be set back by ``touch`` or
  a restore, so a folder put back from a backup counts as changed). This catches every write of
  ours at a folder's top level (manifests, lock files, a regenerated sha256 list's temporary);
* it is a date folder of a day a run could still write into. A payload is nested below its day
  folder (``<day>/<project>/<instance>/<group>/``), so its ``.part`` does not change the day
  folder's signature; but a nightly run writes payloads only into the days it may download,
  today and DCS's 7 days before (:func:`harvester.plan.select_downloads` keeps only those), by
  its own clock at its start. So every day from ``min(last sweep's day, today) - 7 - MARGIN``
  on is walked; the margin covers a run that was already going when the last sweep ran (one
  started up to ``MARGIN_DAYS`` before it) and clocks of shards that disagree by as much. The
  ``NEWEST_WALKED`` newest date folders by name are walked too, whatever the clock says;
* it is an incident bundle that is not finished (no ``summary.json``: a ``collect`` may still be
  writing into it, or was killed). A ``collect`` writes nested files only into the bundle it
  created and ends by writing ``summary.json``, so only unfinished bundles (few: a killed or
  failed ``collect`` leaves one) are walked every time.

A record is written (atomically, like every state file) only at the end of a sweep that got
through the whole listing; an interrupted sweep leaves the previous record, which stays true.

**The intact-manifest record** (``.state/intact-manifests.json``): for each manifest folder last
found intact (ends on a whole line, sha256 list agrees), the signatures (inode, size, mtime,
ctime) of its ``manifest.jsonl`` and ``manifest-sha256.txt``. Reconciliation reads a folder
again only when either file's signature moved, or the folder is not in the record: an append,
a truncation, a replaced file all change them, and ctime cannot be put back by hand.

Both records are advice, never authority: a deleted or damaged record means "check everything".
``harvester run --full-check`` and ``verify --repair`` ignore them and check everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from harvester.archive.files import write_bytes_atomic
from harvester.archive.paths import MANIFEST_NAME, SHA_LIST_NAME, is_date_name
from harvester.plan import RETENTION_DAYS

__all__ = [
    "INTACT_STATE",
    "MARGIN_DAYS",
    "NEWEST_WALKED",
    "SWEEP_STATE",
    "DirSig",
    "FileSig",
    "ManifestSigs",
    "SweepRecord",
    "intact_from_json",
    "intact_to_json",
    "load_intact",
    "load_sweep",
    "manifest_sigs",
    "must_sweep",
    "save_intact",
    "save_sweep",
    "sweep_from_json",
    "sweep_to_json",
]

_log = logging.getLogger(__name__)

SWEEP_STATE = ".state/sweep.json"
INTACT_STATE = ".state/intact-manifests.json"
#: Days beyond a run's own write window that a later sweep still walks (see the module doc).
#: Two days: a nightly run lasts hours (its links live 24 h), shards' clocks agree within NTP.
MARGIN_DAYS = 2
#: How many of the newest date folders (by name) a sweep always walks, whatever the clock says:
#: one run's write window (today and DCS's 7 days before).
NEWEST_WALKED = RETENTION_DAYS + 1
_VERSION = 1


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True, slots=True)
class DirSig:
    """A directory's own identity and last change: new entries, removals, renames, a restore."""

    ino: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> DirSig:
        return cls(st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class FileSig:
    """A file's identity, size and last change: any write, truncation or replacement moves it."""

    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileSig:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


ManifestSigs = tuple[FileSig, FileSig]  # (manifest.jsonl, manifest-sha256.txt)


def manifest_sigs(folder: Path) -> ManifestSigs | None:
    """The signatures of a folder's two manifest files; None when either is not a regular file."""
    try:
        manifest = os.stat(folder / MANIFEST_NAME, follow_symlinks=False)
        sha = os.stat(folder / SHA_LIST_NAME, follow_symlinks=False)
    except OSError:
        return None
    if not (stat.S_ISREG(manifest.st_mode) and stat.S_ISREG(sha.st_mode)):
        return None
    return FileSig.of(manifest), FileSig.of(sha)


# --------------------------------------------------------------------------- the sweep rule (pure)


@dataclass(frozen=True, slots=True)
class SweepRecord:
    """The folders a sweep found clean, as their directories were when it walked them."""

    swept_on: date
    folders: Mapping[str, DirSig]

    def walk_from(self, today: date) -> date:
        """The oldest date folder still walked whatever its signature (see the module doc)."""
        return min(self.swept_on, today) - timedelta(days=RETENTION_DAYS + MARGIN_DAYS)


def must_sweep(
    name: str,
    sig: DirSig,
    record: SweepRecord | None,
    today: date,
    *,
    newest: bool = False,
    finished: bool = False,
) -> bool:
    """Whether the sweep must walk manifest folder ``name`` (a date folder or a bundle).

    ``newest``: a date folder among the :data:`NEWEST_WALKED` newest by name (walked whatever
    the clock says: the days the latest run wrote are among them even if its clock was not
    ours). ``finished``: for a bundle, whether its ``summary.json`` exists (``collect`` is done).
    """
    if record is None or record.folders.get(name) != sig:
        return True
    if is_date_name(name):
        return newest or date.fromisoformat(name) >= record.walk_from(today)
    return not finished


# --------------------------------------------------------------------------- the records as JSON (pure)


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a checksum of itself, so a hand edit reads as "no record"."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**body, "checksum": hashlib.sha256(canonical).hexdigest()}


def _verified(data: object, kind: str) -> dict[str, Any]:
    """The body of a record whose version, kind and checksum hold; ValueError otherwise."""
    if not isinstance(data, dict):
        raise ValueError("not an object")
    body = {k: v for k, v in data.items() if k != "checksum"}
    if body.get("version") != _VERSION or body.get("kind") != kind:
        raise ValueError("another version or kind")
    if _checked(body).get("checksum") != data.get("checksum"):
        raise ValueError("checksum mismatch (edited by hand?)")
    return body


def _ints(value: object, n: int) -> list[int]:
    if not isinstance(value, list) or len(value) != n or not all(type(v) is int for v in value):
        raise ValueError(f"expected {n} integers")
    return value


def sweep_to_json(record: SweepRecord) -> dict[str, Any]:
    return _checked(
        {
            "version": _VERSION,
            "kind": "sweep",
            "meaning": "manifest folders the last orphan sweep found clean; delete to sweep everything",
            "swept_on": record.swept_on.isoformat(),
            "folders": {n: [s.ino, s.mtime_ns, s.ctime_ns] for n, s in sorted(record.folders.items())},
        }
    )


def sweep_from_json(data: object) -> SweepRecord:
    """The record, or ValueError/TypeError for anything but a record this version wrote."""
    body = _verified(data, "sweep")
    folders = body["folders"]
    if not isinstance(folders, dict):
        raise ValueError("folders is not an object")
    return SweepRecord(
        date.fromisoformat(str(body["swept_on"])),
        {str(n): DirSig(*_ints(v, 3)) for n, v in folders.items()},
    )


def intact_to_json(folders: Mapping[str, ManifestSigs]) -> dict[str, Any]:
    def sig(s: FileSig) -> list[int]:
        return [s.ino, s.size, s.mtime_ns, s.ctime_ns]

    return _checked(
        {
            "version": _VERSION,
            "kind": "intact-manifests",
            "meaning": "manifests last found intact; delete to reconcile every folder",
            "folders": {n: [sig(m), sig(s)] for n, (m, s) in sorted(folders.items())},
        }
    )


def intact_from_json(data: object) -> dict[str, ManifestSigs]:
    body = _verified(data, "intact-manifests")
    folders = body["folders"]
    if not isinstance(folders, dict):
        raise ValueError("folders is not an object")
    out: dict[str, ManifestSigs] = {}
    for name, pair in folders.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("expected two signatures")
        out[str(name)] = (FileSig(*_ints(pair[0], 4)), FileSig(*_ints(pair[1], 4)))
    return out


# --------------------------------------------------------------------------- reading and writing


def _state_dir(root: Path, *, create: bool) -> Path | None:
    """``<root>/.state`` if it is a real directory (never through a link); None otherwise."""
    path = root / ".state"
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return path if stat.S_ISDIR(mode) else None


def _load(root: Path, relpath: str) -> object | None:
    """The JSON of a state file; None when absent, unreadable or not JSON (logged)."""
    if _state_dir(root, create=False) is None:
        return None
    path = root / relpath
    try:
        data: object = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        _log.warning("state.startup_record_unreadable", extra={"path": str(path), "error": str(exc)})
        return None
    return data


def _save(root: Path, relpath: str, data: dict[str, Any]) -> None:
    """Write a record atomically; a failure is logged: the cost is a full check next time."""
    path = root / relpath
    try:
        if _state_dir(root, create=True) is None:
            raise OSError(f"{root / '.state'} is not a folder")
        write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode())
    except OSError as exc:
        _log.warning("state.startup_record_not_saved", extra={"path": str(path), "error": str(exc)})


def _rejected(root: Path, relpath: str, exc: Exception) -> None:
    _log.warning(
        "state.startup_record_ignored",
        extra={"path": str(root / relpath), "error": str(exc), "consequence": "everything is checked"},
    )


def load_sweep(root: Path) -> SweepRecord | None:
    """The last sweep's record; None (sweep everything) when there is none we can trust."""
    data = _load(root, SWEEP_STATE)
    if data is None:
        return None
    try:
        return sweep_from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        _rejected(root, SWEEP_STATE, exc)
        return None


def save_sweep(root: Path, record: SweepRecord) -> None:
    _save(root, SWEEP_STATE, sweep_to_json(record))


def load_intact(root: Path) -> dict[str, ManifestSigs]:
    """The manifests last found intact; empty (reconcile everything) when there is no record."""
    data = _load(root, INTACT_STATE)
    if data is None:
        return {}
    try:
        return intact_from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        _rejected(root, INTACT_STATE, exc)
        return {}


def save_intact(root: Path, folders: Mapping[str, ManifestSigs]) -> None:
    _save(root, INTACT_STATE, intact_to_json(folders))
