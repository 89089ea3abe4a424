"""Retention: which parts of the archive are old enough to delete, and deleting only those.

``keep_days`` counts calendar days *including today*: with ``keep_days=7`` and today
2025-01-10, the date folders 2025-01-04 ... 2025-01-10 stay and 2025-01-03 and older go. A
day is judged by the date in the name (date folders, incident stamps, run ids that start with
a date) and otherwise by the file's modification time in UTC. Names that are neither are never
deleted: retention must not remove what it does not understand.

Planning and applying are separate so ``--dry-run`` can print the plan, and so the checks in
:func:`apply_prune` stand between any computed path and ``rmtree``. Run both under the run
lock, so a concurrent harvest does not write into a folder being removed.

Pruning also moves the *retention watermark* (:func:`harvester.archive.state.record_watermark`,
before the first deletion): the plan says through which day, :attr:`PrunePlan.pruned_through`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from harvester.errors import StorageError

__all__ = ["PrunePlan", "apply_prune", "plan_prune"]

_DATE_FOLDER = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T\d{6}Z")
# Run ids that start with a date: "2025-01-02..." or "20250102T030405Z...". Either form is
# unambiguous, unlike bare digits, which a random hex id can start with.
_LEADING_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?!\d)|(\d{4})(\d{2})(\d{2})T\d{6}Z")


@dataclass(slots=True)
class PrunePlan:
    """What :func:`apply_prune` will delete, and how many bytes that frees."""

    root: Path
    #: The newest day this retention removes: the watermark it records.
    pruned_through: date
    folders: list[Path] = field(default_factory=list)
    run_files: list[Path] = field(default_factory=list)
    incidents: list[Path] = field(default_factory=list)
    bytes: int = 0

    @property
    def empty(self) -> bool:
        return not (self.folders or self.run_files or self.incidents)


def _date(match: re.Match[str] | None) -> date | None:
    if match is None:
        return None
    year, month, day = (g for g in match.groups() if g is not None)
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _size(path: Path) -> int:
    """Bytes below ``path`` (or of it), never following symlinks."""
    st = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _real_dirs(parent: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]


def plan_prune(root: Path, keep_days: int, today: date, *, incidents: bool = False) -> PrunePlan:
    """List what is older than the ``keep_days`` most recent days (today included)."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1 (today), got {keep_days}")
    cutoff = today - timedelta(days=keep_days - 1)
    plan = PrunePlan(root=root, pruned_through=cutoff - timedelta(days=1))

    for path in _real_dirs(root):
        day = _date(_DATE_FOLDER.fullmatch(path.name))
        if day is not None and day < cutoff:
            plan.folders.append(path)

    try:
        runs = sorted(os.scandir(root / "runs"), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        runs = []
    for item in runs:
        if not item.name.endswith(".json") or not item.is_file(follow_symlinks=False):
            continue
        day = _date(_LEADING_DATE.match(item.name))
        if day is None:
            day = datetime.fromtimestamp(item.stat(follow_symlinks=False).st_mtime, UTC).date()
        if day < cutoff:
            plan.run_files.append(Path(item.path))

    if incidents:
        for path in _real_dirs(root / "incidents"):
            day = _date(_STAMP.match(path.name))
            if day is not None and day < cutoff:
                plan.incidents.append(path)

    plan.bytes = sum(_size(p) for p in (*plan.folders, *plan.run_files, *plan.incidents))
    return plan


def _check(path: Path, parent: Path, root: Path) -> None:
    """Refuse anything that is not a direct, real child of the expected archive folder."""
    if path.parent != parent or path.is_symlink() or path.name in {".state", ".locks"}:
        raise StorageError(f"refusing to prune {path}: not a direct child of {parent}")
    if os.path.realpath(path.parent) != os.path.realpath(parent):
        raise StorageError(f"refusing to prune {path}: it resolves outside {root}")


def apply_prune(plan: PrunePlan) -> None:
    """Delete what the plan lists; every path is checked before the first deletion."""
    root = plan.root
    for path in plan.folders:
        _check(path, root, root)
        if not _DATE_FOLDER.fullmatch(path.name):
            raise StorageError(f"refusing to prune {path}: not a date folder")
    for path in plan.run_files:
        _check(path, root / "runs", root)
    for path in plan.incidents:
        _check(path, root / "incidents", root)

    for path in (*plan.folders, *plan.incidents):
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot prune {path}: {exc.strerror or exc}") from exc
    for path in plan.run_files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot prune {path}: {exc.strerror or exc}") from exc
