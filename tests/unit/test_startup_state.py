"""Start-up looks only where something can have changed: the sweep rule and its records."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import date, timedelta
from pathlib import Path

import pytest

from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.ownership import remove_orphans
from harvester.archive.startup_state import (
    INTACT_STATE,
    MARGIN_DAYS,
    NEWEST_WALKED,
    SWEEP_STATE,
    DirSig,
    FileSig,
    SweepRecord,
    intact_from_json,
    intact_to_json,
    load_intact,
    load_sweep,
    manifest_sigs,
    must_sweep,
    save_intact,
    save_sweep,
    sweep_from_json,
    sweep_to_json,
)
from harvester.archive.store import Archive
from harvester.plan import RETENTION_DAYS
from tests.unit.test_manifest import archive_file

TODAY = date(2025, 3, 20)
SIG = DirSig(ino=7, mtime_ns=1_000, ctime_ns=2_000)
OLD = (TODAY - timedelta(days=60)).isoformat()
OLD_BUNDLE = "incidents/20250101T120000Z-oom"


def recorded(*names: str, swept_on: date = TODAY) -> SweepRecord:
    return SweepRecord(swept_on, dict.fromkeys(names, SIG))


# --------------------------------------------------------------------------- the rule


def test_without_a_record_every_folder_is_walked() -> None:
    """The first sweep of an archive (no record) walks every folder, as before."""
    assert must_sweep(OLD, SIG, None, TODAY)
    assert must_sweep(OLD_BUNDLE, SIG, None, TODAY, finished=True)


def test_an_old_folder_found_clean_and_unchanged_is_not_walked_again() -> None:
    """A closed day whose folder is as the last sweep saw it is skipped."""
    assert not must_sweep(OLD, SIG, recorded(OLD), TODAY)


def test_a_folder_that_changed_or_is_unknown_is_walked() -> None:
    """Any new, removed or renamed entry at a folder's top level (mtime/ctime) means a walk."""
    record = recorded(OLD)
    assert must_sweep(OLD, DirSig(7, 1_000, 2_001), record, TODAY)  # ctime moved (chmod, touch back)
    assert must_sweep(OLD, DirSig(8, 1_000, 2_000), record, TODAY)  # another directory (restored)
    assert must_sweep("2024-01-01", SIG, record, TODAY)  # not in the record


def test_every_day_a_run_can_still_write_into_is_walked_even_if_unchanged() -> None:
    """A payload's .part is nested below its day: days of the write window plus a margin are walked."""
    oldest = TODAY - timedelta(days=RETENTION_DAYS + MARGIN_DAYS)
    for day in (TODAY, TODAY - timedelta(days=1), oldest, TODAY + timedelta(days=1)):
        assert must_sweep(day.isoformat(), SIG, recorded(day.isoformat()), TODAY), day
    older = (oldest - timedelta(days=1)).isoformat()
    assert not must_sweep(older, SIG, recorded(older), TODAY)


def test_the_window_counts_from_the_earlier_of_the_last_sweep_and_today() -> None:
    """A record from a clock that ran ahead cannot hide the days written since the clock came back."""
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    ahead = recorded(yesterday, swept_on=TODAY + timedelta(days=400))
    assert must_sweep(yesterday, SIG, ahead, TODAY)
    behind = recorded(yesterday, swept_on=TODAY - timedelta(days=1))
    assert must_sweep(yesterday, SIG, behind, TODAY)


def test_the_newest_date_folders_are_walked_whatever_the_clock_says() -> None:
    """The days the latest run wrote are walked even if that run's clock was not this one's."""
    assert must_sweep(OLD, SIG, recorded(OLD), TODAY, newest=True)
    assert NEWEST_WALKED > RETENTION_DAYS  # at least one run's whole write window


def test_an_unfinished_bundle_is_walked_a_finished_one_is_not() -> None:
    """A collect may still be writing into a bundle without summary.json; a finished one is a record."""
    assert must_sweep(OLD_BUNDLE, SIG, recorded(OLD_BUNDLE), TODAY, finished=False)
    assert not must_sweep(OLD_BUNDLE, SIG, recorded(OLD_BUNDLE), TODAY, finished=True)
    assert must_sweep(OLD_BUNDLE, DirSig(7, 1_000, 2_001), recorded(OLD_BUNDLE), TODAY, finished=True)


# --------------------------------------------------------------------------- the records


def test_records_round_trip_through_json() -> None:
    """What is written is read back as it was."""
    record = SweepRecord(TODAY, {OLD: SIG, OLD_BUNDLE: DirSig(1, 2, 3)})
    assert sweep_from_json(json.loads(json.dumps(sweep_to_json(record)))) == record
    sigs = {OLD: (FileSig(1, 2, 3, 4), FileSig(5, 6, 7, 8))}
    assert intact_from_json(json.loads(json.dumps(intact_to_json(sigs)))) == sigs


def test_a_hand_edited_record_is_not_trusted() -> None:
    """Any edit of a record (even one that stays valid JSON) means "check everything"."""
    data = sweep_to_json(recorded(OLD))
    data["swept_on"] = "2099-01-01"
    with pytest.raises(ValueError, match="checksum"):
        sweep_from_json(data)
    intact = intact_to_json({OLD: (FileSig(1, 2, 3, 4), FileSig(5, 6, 7, 8))})
    intact["folders"][OLD][0][1] = 99
    with pytest.raises(ValueError, match="checksum"):
        intact_from_json(intact)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "edited", "other version"])
def test_a_missing_or_damaged_record_file_reads_as_no_record(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted, unparsable, edited or foreign state file makes the next start-up check everything."""
    save_sweep(tmp_path, recorded(OLD))
    save_intact(tmp_path, {OLD: (FileSig(1, 2, 3, 4), FileSig(5, 6, 7, 8))})
    assert load_sweep(tmp_path) == recorded(OLD)
    for rel in (SWEEP_STATE, INTACT_STATE):
        path = tmp_path / rel
        if damage == "deleted":
            path.unlink()
        elif damage == "garbage":
            path.write_bytes(b'{"version": 1, "fold')
        else:
            data = json.loads(path.read_bytes())
            if damage == "edited":
                data["folders"] = {}
            else:
                data["version"] = 99
            path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert load_sweep(tmp_path) is None
        assert load_intact(tmp_path) == {}
    if damage != "deleted":
        assert {r.getMessage() for r in caplog.records} & {
            "state.startup_record_unreadable",
            "state.startup_record_ignored",
        }


# --------------------------------------------------------------------------- the sweep over a real tree


def plant(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left by a killed run")
    return path


def swept(root: Path) -> set[str]:
    record = load_sweep(root)
    assert record is not None
    return set(record.folders)


def test_a_sweep_records_what_it_found_clean_and_later_skips_it(tmp_path: Path) -> None:
    """After a complete sweep an old untouched folder is not walked again; a recent one always is."""
    archive = Archive(tmp_path / "archive")
    recent = (TODAY - timedelta(days=1)).isoformat()
    newer = [(TODAY - timedelta(days=n)).isoformat() for n in range(NEWEST_WALKED)]
    for name in newer:
        (archive.root / name).mkdir(parents=True)
    old_nested = plant(archive.root, f"{OLD}/p/i/g/.a.log.harvester.part")
    plant(archive.root, f"{recent}/p/i/g/.b.log.harvester.part")
    assert remove_orphans(archive.root, today=TODAY) == 2
    assert not old_nested.exists()
    assert swept(archive.root) == {OLD, *newer}
    # Planted below the old day's folder (which no run writes into any more): not walked.
    later_old = plant(archive.root, f"{OLD}/p/i/g/.c.log.harvester.part")
    later_recent = plant(archive.root, f"{recent}/p/i/g/.d.log.harvester.part")
    assert remove_orphans(archive.root, today=TODAY) == 1
    assert later_old.exists()
    assert not later_recent.exists()
    # At the old folder's own top level (where reconcile writes its temporaries): walked.
    top = plant(archive.root, f"{OLD}/.manifest-sha256.txt.0a1b2c.harvester-tmp")
    assert remove_orphans(archive.root, today=TODAY) == 2
    assert not top.exists()
    assert not later_old.exists()


def test_a_leftover_a_live_peer_holds_keeps_its_folder_out_of_the_record(tmp_path: Path) -> None:
    """A folder where a live writer was found is walked again next time: it may yet leave a file."""
    archive = Archive(tmp_path / "archive")
    plant(archive.root, f"{OLD}/p/x.log")
    fd = os.open(plant(archive.root, f"{OLD}/p/.y.log.harvester.part"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_orphans(archive.root, today=TODAY) == 0
    finally:
        os.close(fd)
    assert OLD not in swept(archive.root)
    assert remove_orphans(archive.root, today=TODAY) == 1
    assert OLD in swept(archive.root)


# --------------------------------------------------------------------------- reconcile over a real tree


async def test_reconcile_records_intact_folders_and_still_repairs_one_torn_later(tmp_path: Path) -> None:
    """A manifest recorded intact and torn afterwards is repaired at the next start-up."""
    archive = Archive(tmp_path / "archive")
    writer = ManifestWriter(archive)
    await archive_file(archive, writer, OLD, "a.log", b"a")
    await archive_file(archive, writer, "2025-01-03", "b.log", b"b")
    assert await ManifestWriter(archive).reconcile_all() == []
    assert set(load_intact(archive.root)) == {OLD, "2025-01-03"}
    manifest = archive.root / OLD / "manifest.jsonl"
    with manifest.open("ab") as fh:
        fh.write(b'{"torn":')
    assert await ManifestWriter(archive).reconcile_all() == [OLD]
    assert manifest.read_bytes().endswith(b"\n")
    assert set(load_intact(archive.root)) == {OLD, "2025-01-03"}


async def test_reconcile_sees_a_same_size_edit_with_its_mtime_put_back(tmp_path: Path) -> None:
    """ctime is part of the signature: an edit whose size and mtime were restored is still re-read."""
    archive = Archive(tmp_path / "archive")
    await archive_file(archive, ManifestWriter(archive), OLD, "a.log", b"a")
    assert await ManifestWriter(archive).reconcile_all() == []
    sha = archive.root / OLD / "manifest-sha256.txt"
    st = sha.stat()
    good = sha.read_bytes()
    sha.write_bytes(good.replace(good[:1], b"0" if good[:1] != b"0" else b"1", 1))
    os.utime(sha, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert await ManifestWriter(archive).reconcile_all() == [OLD]
    assert sha.read_bytes() == good


async def test_a_hand_edited_intact_record_is_not_trusted(tmp_path: Path) -> None:
    """A record edited to call a torn manifest intact is ignored: every folder is read again."""
    archive = Archive(tmp_path / "archive")
    await archive_file(archive, ManifestWriter(archive), OLD, "a.log", b"a")
    assert await ManifestWriter(archive).reconcile_all() == []
    with (archive.root / OLD / "manifest.jsonl").open("ab") as fh:
        fh.write(b'{"torn":')
    now = manifest_sigs(archive.root / OLD)
    assert now is not None
    path = archive.root / INTACT_STATE
    data = json.loads(path.read_bytes())
    data["folders"][OLD] = [[s.ino, s.size, s.mtime_ns, s.ctime_ns] for s in now]
    path.write_text(json.dumps(data))
    assert await ManifestWriter(archive).reconcile_all() == [OLD]
    assert (archive.root / OLD / "manifest.jsonl").read_bytes().endswith(b"\n")
    assert set(load_intact(archive.root)) == {OLD}
