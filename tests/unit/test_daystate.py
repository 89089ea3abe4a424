"""The pending-day memory in .state/: round trip, shard-safe merge, legacy migration."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from harvester import plan
from harvester.archive.state import STATE_PATH, PendingDays
from harvester.archive.store import Archive
from harvester.models import ArchiveKey

TODAY = date(2025, 3, 10)


def key(instance: str, n: int, ip: str = "10.0.0.1") -> ArchiveKey:
    return ArchiveKey("p", instance, "group-0", ip, TODAY - timedelta(days=n))


def record(k: ArchiveKey, **kw: object) -> plan.PendingDay:
    return plan.PendingDay(k, since=TODAY, **kw)  # type: ignore[arg-type]


def test_records_survive_a_round_trip(tmp_path: Path) -> None:
    """Every field of a record is written and read back unchanged."""
    store = PendingDays(Archive(tmp_path))
    r = record(key("i", 2), collections=3, evidence=frozenset({TODAY}), final=True, reason="why")
    store.save_sync({("p", "i"): {r.key: r}}, TODAY)
    assert PendingDays(Archive(tmp_path)).load() == {r.key: r}
    assert json.loads((tmp_path / STATE_PATH).read_text())["migrated_legacy"] is True


def test_a_save_replaces_only_the_instances_this_run_worked_on(tmp_path: Path) -> None:
    """Two shards saving in turn keep each other's records; an instance's old records are replaced."""
    store = PendingDays(Archive(tmp_path))
    a1, a2, b1 = record(key("a", 1)), record(key("a", 2)), record(key("b", 1))
    store.save_sync({("p", "a"): {a1.key: a1, a2.key: a2}}, TODAY)
    store.save_sync({("p", "b"): {b1.key: b1}}, TODAY)
    store.save_sync({("p", "a"): {a2.key: a2}}, TODAY)
    assert set(PendingDays(Archive(tmp_path)).load()) == {a2.key, b1.key}


def test_records_of_long_gone_days_are_forgotten(tmp_path: Path) -> None:
    """A record no run touches any more (instance removed) is dropped once far outside the window."""
    store = PendingDays(Archive(tmp_path))
    old = record(key("gone", 60))
    store.save_sync({("p", "gone"): {old.key: old}}, TODAY)
    fresh = record(key("a", 1))
    store.save_sync({("p", "a"): {fresh.key: fresh}}, TODAY)
    assert set(store.load()) == {fresh.key}


def test_a_damaged_state_file_is_survived(tmp_path: Path) -> None:
    """An unreadable state file loses the memory (days get collected again), never the run."""
    (tmp_path / ".state").mkdir()
    (tmp_path / STATE_PATH).write_text("{not json")
    store = PendingDays(Archive(tmp_path))
    assert store.load() == {}
    r = record(key("i", 1))
    store.save_sync({("p", "i"): {r.key: r}}, TODAY)
    assert store.load() == {r.key: r}


def test_legacy_quiet_days_count_as_one_night_of_evidence(tmp_path: Path) -> None:
    """Days the old version took as quiet are pending again, with one night of evidence, once."""
    legacy = tmp_path / ".state" / "empty-days.jsonl"
    legacy.parent.mkdir()
    k = key("i", 3)
    line = {"project_id": "p", "instance_id": "i", "group_name": "group-0", "replication_ip": "10.0.0.1"}
    legacy.write_text(json.dumps({**line, "day": k.day.isoformat()}) + "\n")
    night = TODAY - timedelta(days=1)
    stamp = datetime(night.year, night.month, night.day, 2, 30, tzinfo=UTC).timestamp()
    os.utime(legacy, (stamp, stamp))

    store = PendingDays(Archive(tmp_path))
    got = store.load()[k]
    assert (got.evidence, got.final, got.collections) == (frozenset({night}), False, 1)
    assert not plan.note_missing(got, k, night, covered=True, evidence=True, reason="").final
    assert plan.note_missing(got, k, TODAY, covered=True, evidence=True, reason="").final

    # Saved once (even by a run that worked on another instance), never migrated again: a day
    # that was dropped from the state since does not come back from the old file.
    other = record(key("x", 1))
    store.save_sync({("p", "x"): {other.key: other}}, TODAY)
    assert k in store.load()
    store.save_sync({("p", "i"): {}}, TODAY)
    assert k not in store.load()
    assert legacy.exists()
