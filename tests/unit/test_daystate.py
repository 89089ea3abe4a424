"""The pending-day memory in .state/: round trip, shard-safe merge, legacy migration."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from harvester import plan
from harvester.archive.state import STATE_PATH, PendingDays
from harvester.archive.store import Archive
from harvester.errors import StorageError
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


def test_the_state_file_is_one_json_document_with_a_record_per_line(tmp_path: Path) -> None:
    """The streamed state file is the same JSON document as ever, sorted, one record per line."""
    store = PendingDays(Archive(tmp_path))
    rs = [record(key(inst, n), reason="ça va") for inst in ("b", "a") for n in (3, 1)]
    store.save_sync({("p", "a"): {r.key: r for r in rs[2:]}, ("p", "b"): {r.key: r for r in rs[:2]}}, TODAY)
    text = (tmp_path / STATE_PATH).read_text()
    data = json.loads(text)
    assert (data["version"], data["migrated_legacy"]) == (1, True)
    assert [(d["instance_id"], d["day"]) for d in data["days"]] == [
        (i, (TODAY - timedelta(days=n)).isoformat()) for i in ("a", "b") for n in (3, 1)
    ]
    assert data["days"][0]["reason"] == "ça va"
    assert len(text.splitlines()) == 2 + len(rs)
    assert store.load() == {r.key: r for r in rs}


def test_a_state_file_written_by_an_earlier_version_is_read(tmp_path: Path) -> None:
    """The indented document earlier versions wrote, keys in any order, loads record for record."""
    k1, k2 = key("i", 1), key("i", 2)
    days = [
        {**_key_dict(k), "since": TODAY.isoformat(), "collections": 2, "evidence": [TODAY.isoformat()]}
        | {"final": True, "reason": "quiet"}
        for k in (k1, k2)
    ]
    (tmp_path / ".state").mkdir()
    doc = {"days": days, "version": 1, "migrated_legacy": True}
    (tmp_path / STATE_PATH).write_text(json.dumps(doc, indent=2) + "\n")
    got = PendingDays(Archive(tmp_path)).load()
    assert set(got) == {k1, k2}
    assert (got[k1].collections, got[k1].evidence, got[k1].final, got[k1].reason) == (
        2,
        frozenset({TODAY}),
        True,
        "quiet",
    )


def test_a_state_file_that_is_no_document_loses_only_the_memory(tmp_path: Path) -> None:
    """Valid JSON of the wrong shape, or a document cut short, is read as no records at all."""
    (tmp_path / ".state").mkdir()
    store = PendingDays(Archive(tmp_path))
    r = record(key("i", 1))
    store.save_sync({("p", "i"): {r.key: r}}, TODAY)
    whole = (tmp_path / STATE_PATH).read_text()
    for text in ("[]", '{"version": 1}', '{"days": 3}', whole[: len(whole) // 2], whole + "x"):
        (tmp_path / STATE_PATH).write_text(text)
        assert store.load() == {}, text


def test_a_save_that_fails_midway_leaves_the_previous_state(tmp_path: Path) -> None:
    """A save that fails after part of the new file was written keeps the old file whole, no debris."""
    store = PendingDays(Archive(tmp_path))
    first = record(key("a", 1))
    store.save_sync({("p", "a"): {first.key: first}}, TODAY)
    before = (tmp_path / STATE_PATH).read_bytes()
    # Enough records to pass the writer's 1 MiB buffer before the last one, which cannot be
    # encoded (a lone surrogate: not UTF-8), so part of the new file is on disk when it fails.
    many = {
        r.key: r
        for r in (record(key("a", 1, ip=f"10.0.{n // 250}.{n % 250}"), reason="x" * 300) for n in range(4000))
    }
    bad = record(key("z", 1), reason="\ud800")
    with pytest.raises(StorageError, match="cannot write"):
        store.save_sync({("p", "a"): many, ("p", "z"): {bad.key: bad}}, TODAY)
    assert (tmp_path / STATE_PATH).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / ".state").iterdir()) == [
        ".pending-days.lock",
        "pending-days.json",
    ]
    assert store.load() == {first.key: first}


def _key_dict(k: ArchiveKey) -> dict[str, str]:
    return {
        "project_id": k.project_id,
        "instance_id": k.instance_id,
        "group_name": k.group_name,
        "replication_ip": k.replication_ip,
        "day": k.day.isoformat(),
    }
