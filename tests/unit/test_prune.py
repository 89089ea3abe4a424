"""Retention: what is old enough to go, and that nothing else is ever touched."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from harvester.archive.prune import PrunePlan, apply_prune, plan_prune
from harvester.archive.state import RETENTION_STATE, pruned_through, record_watermark
from harvester.errors import StorageError
from harvester.plan import after_watermark

TODAY = date(2025, 1, 10)


def make(root: Path, rel: str, body: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for day in ("2025-01-02", "2025-01-03", "2025-01-04", "2025-01-10"):
        make(root, f"{day}/p/i/g/redis.log", b"12345")
        make(root, f"{day}/manifest.jsonl", b"")
    make(root, "2025-13-01/odd.log")  # not a date: left alone
    make(root, "notes/readme.txt")
    make(root, ".state/empty-days.jsonl")
    make(root, ".locks/nightly.lock")
    make(root, "runs/2025-01-03T010203Z-abc.json")
    make(root, "runs/20250104T010203Z-def.json")
    make(root, "runs/20250103T010203Z-ghi.json")
    old = make(root, "runs/0f3c9a1e-uuid.json")
    stamp = datetime(2025, 1, 1, 12, tzinfo=UTC).timestamp()
    os.utime(old, (stamp, stamp))
    make(root, "incidents/20250101T000000Z-oom/p/a.log")
    make(root, "incidents/20250109T000000Z-latency/p/a.log")
    make(root, "incidents/manual-copy/p/a.log")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)


def test_keep_days_counts_today(root: Path) -> None:
    """keep_days=7 on the 10th keeps the 4th through the 10th and plans to drop older days."""
    plan = plan_prune(root, 7, TODAY)
    assert names(plan.folders, root) == ["2025-01-02", "2025-01-03"]
    assert names(plan.run_files, root) == [
        "runs/0f3c9a1e-uuid.json",  # judged by its mtime, 2025-01-01
        "runs/2025-01-03T010203Z-abc.json",
        "runs/20250103T010203Z-ghi.json",
    ]
    assert plan.incidents == []
    assert plan.bytes == 5 + 5 + 1 + 1 + 1


def test_keep_one_day_keeps_only_today(root: Path) -> None:
    """keep_days=1 keeps just today's folder."""
    assert names(plan_prune(root, 1, TODAY).folders, root) == ["2025-01-02", "2025-01-03", "2025-01-04"]


def test_keep_days_must_keep_today(root: Path) -> None:
    """A retention of zero days is a configuration mistake, not an order to wipe the archive."""
    with pytest.raises(ValueError, match="at least 1"):
        plan_prune(root, 0, TODAY)


def test_incidents_are_pruned_only_when_asked(root: Path) -> None:
    """Incident bundles outlive the nightly retention unless pruning them is requested."""
    plan = plan_prune(root, 7, TODAY, incidents=True)
    assert names(plan.incidents, root) == ["incidents/20250101T000000Z-oom"]


def test_apply_removes_exactly_the_plan(root: Path) -> None:
    """Applying deletes what was planned and keeps state, locks, odd names and recent data."""
    apply_prune(plan_prune(root, 7, TODAY, incidents=True))
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert left == [
        ".locks/nightly.lock",
        ".state/empty-days.jsonl",
        "2025-01-04/manifest.jsonl",
        "2025-01-04/p/i/g/redis.log",
        "2025-01-10/manifest.jsonl",
        "2025-01-10/p/i/g/redis.log",
        "2025-13-01/odd.log",
        "incidents/20250109T000000Z-latency/p/a.log",
        "incidents/manual-copy/p/a.log",
        "notes/readme.txt",
        "runs/20250104T010203Z-def.json",
    ]


def test_apply_twice_is_harmless(root: Path) -> None:
    """A plan applied after someone else pruned the same folders does not fail."""
    plan = plan_prune(root, 7, TODAY)
    apply_prune(plan)
    apply_prune(plan)


def test_a_symlinked_date_folder_is_never_followed(root: Path, tmp_path: Path) -> None:
    """An old date folder that is a link to elsewhere is neither planned nor deleted through."""
    elsewhere = make(tmp_path, "elsewhere/keep.log")
    (root / "2024-12-01").symlink_to(elsewhere.parent)
    plan = plan_prune(root, 7, TODAY)
    assert "2024-12-01" not in names(plan.folders, root)
    apply_prune(plan)
    assert elsewhere.exists()


@pytest.mark.parametrize(
    ("field_name", "rel"),
    [
        ("folders", ".state"),
        ("folders", "../outside"),
        ("folders", "notes"),
        ("run_files", "2025-01-04/x.json"),
    ],
)
def test_apply_refuses_paths_outside_its_places(root: Path, field_name: str, rel: str) -> None:
    """A tampered plan cannot make retention delete state, locks, or anything outside the root."""
    plan = PrunePlan(root=root, pruned_through=TODAY)
    getattr(plan, field_name).append(root / rel)
    with pytest.raises(StorageError, match="refusing"):
        apply_prune(plan)
    assert (root / ".state" / "empty-days.jsonl").exists()


def test_an_empty_root_plans_nothing(tmp_path: Path) -> None:
    """Retention on an archive that does not exist yet is a no-op."""
    plan = plan_prune(tmp_path / "none", 3, TODAY, incidents=True)
    assert plan.empty
    assert plan.bytes == 0


# --------------------------------------------------------------------------- retention watermark


def test_the_plan_knows_the_watermark_it_sets(root: Path) -> None:
    """keep_days=7 on the 10th removes up to the 3rd: that is the watermark to record."""
    assert plan_prune(root, 7, TODAY).pruned_through == date(2025, 1, 3)
    assert plan_prune(root, 1, TODAY).pruned_through == date(2025, 1, 9)


def test_the_watermark_is_recorded_and_never_moves_back(tmp_path: Path) -> None:
    """A later prune with a longer retention cannot invite runs to refill what is gone."""
    root = tmp_path / "archive"
    now = datetime(2025, 1, 10, 12, tzinfo=UTC)
    assert pruned_through(root) is None
    assert record_watermark(root, date(2025, 1, 7), keep_days=3, now=now) == date(2025, 1, 7)
    assert record_watermark(root, date(2024, 12, 12), keep_days=30, now=now) == date(2025, 1, 7)
    assert pruned_through(root) == date(2025, 1, 7)
    state = json.loads((root / RETENTION_STATE).read_text())
    assert state["pruned_through"] == "2025-01-07"
    assert state["keep_days"] == 30
    assert record_watermark(root, date(2025, 1, 8), keep_days=2, now=now) == date(2025, 1, 8)


@pytest.mark.parametrize("content", [b"", b"{", b'{"pruned_through": "soon"}', b"[]", b'{"other": 1}'])
def test_an_unreadable_watermark_is_ignored_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged state file costs at worst a re-collected day, never a lost one."""
    make(tmp_path, RETENTION_STATE, content)
    assert pruned_through(tmp_path) is None
    assert [r.getMessage() for r in caplog.records] == ["prune.watermark_unreadable"]


def test_runs_never_collect_a_day_at_or_before_the_watermark() -> None:
    """The planner's filter: days after the watermark stay, the watermark day and older go."""
    days = [date(2025, 1, d) for d in range(3, 10)]
    assert after_watermark(days, None) == set(days)
    assert after_watermark(days, date(2025, 1, 7)) == {date(2025, 1, 8), date(2025, 1, 9)}
    assert after_watermark(days, date(2025, 1, 31)) == set()
