"""The run's archive index: the same answers as the whole-archive read, from the days that matter."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from harvester.archive.index import ArchiveIndex, archived_keys
from harvester.archive.manifest import ManifestEntry
from harvester.models import ArchiveKey, Replica, Target
from tests.unit.test_manifest import entry

TODAY = date(2025, 3, 20)
WINDOW = [TODAY - timedelta(days=n) for n in range(8)]  # today and the 7 complete days
OLD = TODAY - timedelta(days=40)
TARGET = Target("prod", "p-1", "eu-de", "i-1", "redis-a", "cluster")
SINGLE = Target("prod", "p-1", "eu-de", "i-2", "redis-b", "single")


def put(root: Path, key: ArchiveKey, body: bytes = b"payload", *, downloaded: date | None = None) -> Path:
    """Archive one file as the writer does: the payload, then its manifest line with its mtime."""
    day = key.day.isoformat()
    rel = f"{key.instance_id}/{key.group_name or 'single'}/{key.replication_ip or 'node'}.log"
    path = root / day / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    line = replace(
        entry(rel, body, ip=key.replication_ip, day=day),
        project_id=key.project_id,
        instance_id=key.instance_id,
        group_name=key.group_name,
        downloaded_at=f"{(downloaded or key.day + timedelta(days=1)).isoformat()}T01:00:00+00:00",
        mtime_ns=path.stat().st_mtime_ns,
    )
    with (root / day / "manifest.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line.to_json() + "\n")
    return path


def key(day: date, ip: str = "10.0.0.1", group: str = "group-0", instance: str = "i-1") -> ArchiveKey:
    return ArchiveKey("p-1", instance, group, ip, day)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def test_every_key_answers_as_the_whole_archive_read_does(root: Path) -> None:
    """For the days it read, the index holds exactly the keys archived_keys finds, no more."""
    keys = [key(d, ip) for d in WINDOW[1:6] for ip in ("10.0.0.1", "10.0.0.2")]
    keys += [key(d, "", "", "i-2") for d in WINDOW[2:4]]
    for k in keys:
        put(root, k)
    (root / WINDOW[1].isoformat() / "i-1/group-0/10.0.0.2.log").unlink()  # gone: not archived
    index = ArchiveIndex.build(root, days=WINDOW)
    everything = archived_keys(root)
    assert len(everything) == len(keys) - 1
    for k in [*keys, key(WINDOW[6]), key(WINDOW[1], "10.0.0.9")]:
        assert (k in index) == (k in everything), k
    assert len(index) == len(everything)


def test_a_replicas_days_are_one_lookup_and_a_single_node_owns_its_instance(root: Path) -> None:
    """days_for follows Replica.owns: a replica its group and IP's days, a single node all of its instance."""
    for k in (key(WINDOW[1]), key(WINDOW[2]), key(WINDOW[3], "10.0.0.2"), key(WINDOW[4], "", "", "i-2")):
        put(root, k)
    index = ArchiveIndex.build(root, days=WINDOW)
    first = Replica(TARGET, "group-0", "10.0.0.1", "r-1")
    second = Replica(TARGET, "group-0", "10.0.0.2", "r-2")
    other = Replica(TARGET, "group-1", "10.0.0.1", "r-3")
    assert index.days_for(first) == {WINDOW[1], WINDOW[2]}
    assert index.days_for(second) == {WINDOW[3]}
    assert index.days_for(other) == set()
    assert index.days_of("p-1", "i-1", "group-0", "10.0.0.1") == {WINDOW[1], WINDOW[2]}
    assert index.instance_days("p-1", "i-1") == {WINDOW[1], WINDOW[2], WINDOW[3]}
    assert index.days_for(Replica(SINGLE, "", "", None)) == {WINDOW[4]}
    unknown = Target("prod", "p-1", "eu-de", "i-9", "x", "single")
    assert index.days_for(Replica(unknown, "", "", None)) == set()


def test_only_the_given_days_are_read_and_another_day_is_read_when_asked(root: Path) -> None:
    """A day outside the build's days is not read up front, yet a lookup of it still finds its keys."""
    put(root, key(WINDOW[1]))
    old = put(root, key(OLD))
    kept = key(OLD - timedelta(days=1))
    put(root, kept)
    index = ArchiveIndex.build(root, days=WINDOW)
    assert index.loaded_days == frozenset(WINDOW)
    assert index.days_of("p-1", "i-1", "group-0", "10.0.0.1") == {WINDOW[1]}
    old.unlink()  # after the build: had the folder been read then, the key would still count
    assert key(OLD) not in index
    assert kept in index  # read on demand
    assert index.loaded_days == frozenset([*WINDOW, OLD, kept.day])
    assert key(TODAY - timedelta(days=100)) not in index  # no folder: nothing, no error


def test_without_days_every_folder_is_read(root: Path) -> None:
    """build(days=None) reads the whole archive, like archived_keys."""
    for k in (key(WINDOW[1]), key(OLD)):
        put(root, k)
    index = ArchiveIndex.build(root)
    assert index.loaded_days == frozenset({WINDOW[1], OLD})
    assert index.days_of("p-1", "i-1", "group-0", "10.0.0.1") == {WINDOW[1], OLD}


def test_a_changed_file_is_rehashed_and_not_archived(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The trust rule is archived_keys': a file whose mtime moved and bytes changed is fetched again."""
    changed = put(root, key(WINDOW[1]), b"payload" * 10)
    touched = put(root, key(WINDOW[1], "10.0.0.2"), b"payload" * 10)
    changed.write_bytes(b"PAYLOAD" * 10)
    os.utime(changed, ns=(1, 1))
    os.utime(touched, ns=(1, 1))
    with caplog.at_level(logging.INFO):
        index = ArchiveIndex.build(root, days=WINDOW, recheck_since=WINDOW[-1])
    assert key(WINDOW[1]) not in index
    assert key(WINDOW[1], "10.0.0.2") in index
    warned = [r for r in caplog.records if r.getMessage() == "manifest.archived_file_changed"]
    assert len(warned) == 1


def test_days_before_recheck_since_are_trusted_on_size(root: Path) -> None:
    """An old day read on demand is not re-hashed: DCS cannot give it back anyway."""
    path = put(root, key(OLD), b"payload" * 10)
    path.write_bytes(b"PAYLOAD" * 10)
    os.utime(path, ns=(1, 1))
    index = ArchiveIndex.build(root, days=WINDOW, recheck_since=WINDOW[-1])
    assert key(OLD) in index
    assert key(OLD) not in ArchiveIndex.build(root, days=[OLD], recheck_since=OLD)


def test_partial_copies_and_incident_bundles_do_not_count(root: Path) -> None:
    """A copy downloaded on its own day (still growing) is not archived; nor is an incident copy."""
    put(root, key(WINDOW[1]), downloaded=WINDOW[1])
    bundle = root / "incidents" / "20250319T030405Z-oom"
    bundle.mkdir(parents=True)
    body = b"incident"
    (bundle / "a.log").write_bytes(body)
    mtime = (bundle / "a.log").stat().st_mtime_ns
    line = replace(entry("a.log", body, day=WINDOW[1].isoformat()), mtime_ns=mtime)
    (bundle / "manifest.jsonl").write_text(line.to_json() + "\n", encoding="utf-8")
    index = ArchiveIndex.build(root, days=WINDOW)
    assert key(WINDOW[1]) not in index
    assert len(index) == 0


def test_discarded_keys_are_not_archived_even_on_days_read_later(root: Path) -> None:
    """verify --repair's keys count as missing, in the days read at build and in those read later."""
    for k in (key(WINDOW[1]), key(WINDOW[2]), key(OLD)):
        put(root, k)
    index = ArchiveIndex.build(root, days=WINDOW)
    index -= frozenset({key(WINDOW[1]), key(OLD)})
    assert key(WINDOW[1]) not in index
    assert key(WINDOW[2]) in index
    assert key(OLD) not in index
    assert index.days_of("p-1", "i-1", "group-0", "10.0.0.1") == {WINDOW[2]}


def test_an_instance_has_a_day_when_any_of_its_replicas_has_it(root: Path) -> None:
    """A pending record without a replica (a single node's) is done once any file of its day is."""
    put(root, key(WINDOW[1], "10.0.0.2"))
    put(root, key(OLD, "", "", "i-2"))
    index = ArchiveIndex.build(root, days=WINDOW)
    assert index.instance_has_day("p-1", "i-1", WINDOW[1])
    assert not index.instance_has_day("p-1", "i-1", WINDOW[2])
    assert not index.instance_has_day("p-1", "i-9", WINDOW[1])
    assert index.instance_has_day("p-1", "i-2", OLD)  # read on demand


def test_an_instances_keys_come_sorted_by_day_group_and_replica(root: Path) -> None:
    """keys_of_instance lists one instance's keys of the asked days, oldest first, other instances not."""
    ks = [key(WINDOW[1], "10.0.0.2"), key(WINDOW[2], "10.0.0.1", "group-1"), key(WINDOW[2]), key(WINDOW[1])]
    for k in [*ks, key(WINDOW[1], instance="i-3"), key(OLD)]:
        put(root, k)
    index = ArchiveIndex.build(root, days=WINDOW)
    expected = sorted(ks, key=lambda k: (k.day, k.group_name, k.replication_ip))
    assert index.keys_of_instance("p-1", "i-1", WINDOW[1:]) == expected
    assert index.keys_of_instance("p-1", "i-1", [WINDOW[2]]) == [k for k in expected if k.day == WINDOW[2]]
    assert index.keys_of_instance("p-1", "i-1", [OLD]) == [key(OLD)]  # read on demand
    assert index.keys_of_instance("p-1", "i-9", WINDOW) == []


def test_an_archive_that_does_not_exist_holds_nothing(tmp_path: Path) -> None:
    """No root yet: every lookup says "not archived", and nothing else is asked of a key."""
    index = ArchiveIndex.build(tmp_path / "none", days=WINDOW)
    assert key(WINDOW[1]) not in index
    assert "2025-03-19" not in index
    assert len(index) == 0
    assert index.days_for(Replica(TARGET, "group-0", "10.0.0.1", "r-1")) == set()


def test_a_manifest_line_with_a_foreign_sha_is_still_a_size_and_mtime_check(root: Path) -> None:
    """The index reads manifest lines as written: a wrong sha256 alone is verify's to find, not the run's."""
    path = put(root, key(WINDOW[1]))
    manifest = root / WINDOW[1].isoformat() / "manifest.jsonl"
    line = ManifestEntry.from_json(manifest.read_bytes().strip())
    manifest.write_text(replace(line, sha256=hashlib.sha256(b"other").hexdigest()).to_json() + "\n")
    assert path.exists()
    assert key(WINDOW[1]) in ArchiveIndex.build(root, days=WINDOW)
