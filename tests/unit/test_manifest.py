"""Manifests: recording, reading, the sha256 list, verify, and the quiet-day memory."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

import anyio
import pytest

from harvester.archive.index import archived_keys
from harvester.archive.manifest import ManifestEntry, read_entries
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.state import EmptyDays
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from harvester.errors import StorageError
from harvester.models import ArchivedFile, ArchiveKey, LogFile, Replica, SignedLink, SignedUrl, Target

DAY = "2025-01-02"
INCIDENT = "incidents/20250102T030405Z-oom"

needs_sha256sum = pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")


def entry(path: str, body: bytes, *, ip: str = "10.0.0.1", day: str = DAY) -> ManifestEntry:
    return ManifestEntry(
        path=path,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        project="prod",
        project_id="p-1",
        region="eu-de",
        instance_id="i-1",
        instance_name="redis-a",
        group_name="group-0",
        replication_ip=ip,
        replication_id="r-1",
        log_id="log-1",
        log_date=day,
        file_name=PurePosixPath(path).name,
        downloaded_at="2025-01-09T01:00:00+00:00",
        link_expires_at="2025-01-03T02:00:00+00:00",
        attempts=1,
        run_id="run-1",
    )


async def archive_file(
    archive: Archive, writer: ManifestWriter, folder: str, path: str, body: bytes, **kw: str
) -> ManifestEntry:
    async with archive.open_part(folder, PurePosixPath(path)) as part:
        await part.write(body)
        await part.commit()
    item = entry(path, body, **kw)
    await writer.record(folder, item)
    return item


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture
def writer(archive: Archive) -> ManifestWriter:
    return ManifestWriter(archive)


def test_entry_round_trips_through_json() -> None:
    """A manifest line reads back as the same entry, with keys in the documented order."""
    item = entry("a/b.log", b"x")
    line = item.to_json()
    assert ManifestEntry.from_json(line) == item
    assert list(json.loads(line)) == [
        "path", "size", "sha256", "project", "project_id", "region", "instance_id", "instance_name",
        "group_name", "replication_ip", "replication_id", "log_id", "log_date", "file_name",
        "downloaded_at", "link_expires_at", "attempts", "run_id", "mtime_ns",
    ]  # fmt: skip


def test_entry_rejects_missing_or_mistyped_keys() -> None:
    """A damaged line is refused instead of producing a half-filled entry."""
    data = json.loads(entry("a.log", b"x").to_json())
    with pytest.raises(ValueError, match="size"):
        ManifestEntry.from_json(json.dumps({**data, "size": "1"}))
    del data["run_id"]
    with pytest.raises(ValueError, match="run_id"):
        ManifestEntry.from_json(json.dumps(data))


def test_entry_for_file_uses_the_pipeline_records() -> None:
    """The engine builds an entry from its LogFile, ArchivedFile and SignedLink records."""
    target = Target("prod", "p-1", "eu-de", "i-1", "redis-a")
    log = LogFile(
        Replica(target, "group-0", "10.0.0.1", None), "log-9", "redis.log", date(2025, 1, 2), "succeed"
    )
    now = datetime(2025, 1, 3, 1, tzinfo=UTC)
    link = SignedLink(SignedUrl("https://obs.example/x?sig=s"), now.replace(hour=2), now)
    item = ManifestEntry.for_file(
        log, ArchivedFile("p/x/redis.log", 3, "ab"), link, attempts=2, run_id="r", downloaded_at=now
    )
    assert item.key == log.key
    assert (item.path, item.replication_id, item.log_date, item.attempts) == ("p/x/redis.log", None, DAY, 2)
    assert item.link_expires_at == "2025-01-03T02:00:00+00:00"
    assert "sig=" not in item.to_json()


@needs_sha256sum
async def test_record_keeps_the_sha256_list_checkable(archive: Archive, writer: ManifestWriter) -> None:
    """After recording, `sha256sum -c manifest-sha256.txt` passes in the date folder."""
    for i in range(3):
        await archive_file(archive, writer, DAY, f"prod/redis-a-i1/group-0/f{i}.log", b"x" * i * 1000)
    folder = archive.root / DAY
    result = subprocess.run(
        ["sha256sum", "--strict", "-c", "manifest-sha256.txt"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == 3
    assert len(read_entries(archive.root, DAY)) == 3


async def test_the_later_line_wins_for_a_repeated_path(archive: Archive, writer: ManifestWriter) -> None:
    """A file replaced by a re-download is described by its newest manifest line only."""
    await archive_file(archive, writer, DAY, "a.log", b"first")
    await archive_file(archive, writer, DAY, "a.log", b"second!")
    entries = read_entries(archive.root, DAY)
    assert [(e.path, e.size) for e in entries] == [("a.log", 7)]
    sha_lines = (archive.root / DAY / "manifest-sha256.txt").read_text().splitlines()
    assert sha_lines == [f"{hashlib.sha256(b'second!').hexdigest()}  a.log"]
    assert verify(archive.root).clean


async def test_a_torn_last_line_is_ignored_then_repaired(archive: Archive, writer: ManifestWriter) -> None:
    """A crash mid-append costs only that entry; the next record cuts the torn tail off."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    manifest = archive.root / DAY / "manifest.jsonl"
    with manifest.open("ab") as fh:
        fh.write(b'{"path":"b.log","size":')
    assert [e.path for e in read_entries(archive.root, DAY)] == ["a.log"]
    await archive_file(archive, writer, DAY, "c.log", b"c")
    lines = manifest.read_bytes().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a.log", "c.log"]


async def test_concurrent_tasks_never_interleave_lines(archive: Archive, writer: ManifestWriter) -> None:
    """Many downloads finishing at once each get exactly one whole manifest line."""
    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(archive_file, archive, writer, DAY, f"d{i % 4}/f{i}.log", bytes([i]) * i)
    assert len(read_entries(archive.root, DAY)) == 40
    assert verify(archive.root).clean


_SHARD = textwrap.dedent(
    """
    import sys, anyio
    from pathlib import Path
    from harvester.archive.manifest_writer import ManifestWriter
    from harvester.archive.store import Archive
    from tests.unit.test_manifest import archive_file

    async def main():
        archive = Archive(Path(sys.argv[1]))
        writer = ManifestWriter(archive)
        shard = sys.argv[2]
        for i in range(25):
            await archive_file(archive, writer, "2025-01-02", f"{shard}/f{i}.log", shard.encode() * i)

    anyio.run(main)
    """
)


async def test_shards_in_separate_processes_share_one_manifest(archive: Archive) -> None:
    """Several shard processes on one root all land in one consistent manifest."""
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", _SHARD, str(archive.root), f"shard{n}"], cwd=root)
        for n in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert len(read_entries(archive.root, DAY)) == 75
    report = verify(archive.root)
    assert report.clean, report
    assert report.checked == 75


async def test_writer_notices_the_manifest_was_replaced(archive: Archive, writer: ManifestWriter) -> None:
    """A pruned and re-created date folder is not mixed with what the writer cached before."""
    await archive_file(archive, writer, DAY, "old.log", b"old")
    shutil.rmtree(archive.root / DAY)
    await archive_file(archive, writer, DAY, "new.log", b"new")
    assert (archive.root / DAY / "manifest-sha256.txt").read_text().endswith("  new.log\n")
    assert verify(archive.root).clean


async def test_bad_folder_names_are_refused(writer: ManifestWriter) -> None:
    """Entries can only be recorded in a manifest folder inside the archive."""
    with pytest.raises(StorageError):
        await writer.record("../elsewhere", entry("a.log", b""))


async def test_archived_keys_need_the_file_with_its_size(archive: Archive, writer: ManifestWriter) -> None:
    """Only files present with the recorded size count as archived; incidents never do."""
    await archive_file(archive, writer, DAY, "ok.log", b"ok", ip="10.0.0.1")
    await archive_file(archive, writer, DAY, "gone.log", b"gone", ip="10.0.0.2")
    await archive_file(archive, writer, DAY, "short.log", b"short", ip="10.0.0.3")
    await archive_file(archive, writer, "2025-01-03", "ok.log", b"ok", ip="10.0.0.1", day="2025-01-03")
    await archive_file(archive, writer, INCIDENT, "inc.log", b"inc", ip="10.0.0.4")
    (archive.root / DAY / "gone.log").unlink()
    (archive.root / DAY / "short.log").write_bytes(b"sh")
    assert archived_keys(archive.root) == {
        ArchiveKey("p-1", "i-1", "group-0", "10.0.0.1", date(2025, 1, 2)),
        ArchiveKey("p-1", "i-1", "group-0", "10.0.0.1", date(2025, 1, 3)),
    }


def test_an_empty_archive_has_no_keys(tmp_path: Path) -> None:
    """A root that does not exist yet simply has nothing archived."""
    assert archived_keys(tmp_path / "none") == set()
    assert verify(tmp_path / "none").clean


async def test_verify_reports_missing_corrupt_and_extra(archive: Archive, writer: ManifestWriter) -> None:
    """verify names every file that is gone, changed, or unlisted, relative to the root."""
    await archive_file(archive, writer, DAY, "p/missing.log", b"m")
    await archive_file(archive, writer, DAY, "p/flipped.log", b"abc")
    await archive_file(archive, writer, DAY, "p/resized.log", b"abc")
    await archive_file(archive, writer, DAY, "p/fine.log", b"fine")
    await archive_file(archive, writer, INCIDENT, "p/inc.log", b"inc")
    (archive.root / DAY / "p/missing.log").unlink()
    (archive.root / DAY / "p/flipped.log").write_bytes(b"abd")
    (archive.root / DAY / "p/resized.log").write_bytes(b"abcd")
    (archive.root / DAY / "p/stray.log").write_bytes(b"?")
    (archive.root / DAY / "p/left.log.part").write_bytes(b"?")
    (archive.root / "incidents/20250102T030405Z-oom/p/extra.log").write_bytes(b"?")
    archive.write_json_atomic("runs/run-1.json", {})
    archive.write_json_atomic(f"{DAY}/p/instance.json", {})
    await EmptyDays(archive.root).add([ArchiveKey("p", "i", "g", "ip", date(2025, 1, 1))])

    report = verify(archive.root)
    assert (report.checked, report.ok) == (5, 2)
    assert report.missing == [f"{DAY}/p/missing.log"]
    assert sorted(report.corrupt) == [f"{DAY}/p/flipped.log", f"{DAY}/p/resized.log"]
    assert report.extra == [f"{DAY}/p/left.log.part", f"{DAY}/p/stray.log", f"{INCIDENT}/p/extra.log"]
    assert not report.clean

    without = verify(archive.root, include_incidents=False)
    assert (without.checked, without.extra) == (4, [f"{DAY}/p/left.log.part", f"{DAY}/p/stray.log"])


async def test_verify_catches_a_sha256_list_that_disagrees(archive: Archive, writer: ManifestWriter) -> None:
    """A sha256 list edited or left behind is reported, even when every file is fine."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    sha_list = archive.root / DAY / "manifest-sha256.txt"
    sha_list.write_text(sha_list.read_text() + f"{'0' * 64}  ghost.log\n")
    report = verify(archive.root)
    assert report.corrupt == [f"{DAY}/manifest-sha256.txt (disagrees with manifest.jsonl)"]
    assert report.ok == 1


async def test_reconcile_regenerates_a_lagging_sha256_list(archive: Archive, writer: ManifestWriter) -> None:
    """A crash between the manifest append and the sha256 rewrite is repaired at start-up."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    late = entry("b.log", b"b")
    (archive.root / DAY / "b.log").write_bytes(b"b")
    with (archive.root / DAY / "manifest.jsonl").open("a") as fh:
        fh.write(late.to_json() + "\n{torn")
    assert not verify(archive.root).clean
    fresh = ManifestWriter(archive)
    assert await fresh.reconcile_all() == [DAY]
    assert verify(archive.root).clean
    assert await fresh.reconcile_all() == []


async def test_verify_flags_a_path_that_leaves_its_folder(archive: Archive, writer: ManifestWriter) -> None:
    """A manifest line pointing outside its folder is corrupt, never followed."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    with (archive.root / DAY / "manifest.jsonl").open("a") as fh:
        fh.write(replace(entry("../../etc/passwd", b"")).to_json() + "\n")
        fh.write("not json\n")
    report = verify(archive.root)
    assert f"{DAY}/../../etc/passwd (path leaves its folder)" in report.corrupt
    assert f"{DAY}/manifest.jsonl (line 3 is not a valid entry)" in report.corrupt


async def test_empty_days_are_remembered(tmp_path: Path) -> None:
    """Quiet replica-days are stored once collected, and a torn line does not lose the others."""
    days = EmptyDays(tmp_path)
    keys = [ArchiveKey("p", "i", "g", f"10.0.0.{n}", date(2025, 1, n)) for n in range(1, 4)]
    await days.add(keys[:2])
    await days.add([])
    with (tmp_path / ".state" / "empty-days.jsonl").open("a") as fh:
        fh.write('{"project_id": "p", "inst')
    await days.add(keys[2:])
    assert EmptyDays(tmp_path).load() == set(keys)
    assert EmptyDays(tmp_path / "fresh").load() == set()


async def test_a_copy_taken_on_its_own_day_is_not_complete(archive: Archive, writer: ManifestWriter) -> None:
    """A log archived with --include-today is replaced by the next night's complete copy."""
    day = "2025-01-05"
    partial = replace(
        entry("p/x/g/redis_a.log", b"partial", day=day), downloaded_at="2025-01-05T13:00:00+00:00"
    )
    async with archive.open_part(day, PurePosixPath(partial.path)) as part:
        await part.write(b"partial")
        await part.commit()
    await writer.record(day, partial)
    assert archived_keys(archive.root) == set()
    async with archive.open_part(day, PurePosixPath(partial.path)) as part:
        await part.write(b"complete")
        await part.commit()
    complete = replace(
        entry("p/x/g/redis_a.log", b"complete", day=day), downloaded_at="2025-01-06T02:00:00+00:00"
    )
    await writer.record(day, complete)
    assert {k.day.isoformat() for k in archived_keys(archive.root)} == {day}
