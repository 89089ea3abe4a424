"""When the archive trusts a file: size and mtime as the manifest recorded them, else a re-hash."""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path

import pytest

from harvester.archive.index import archived_keys
from harvester.archive.manifest import ManifestEntry
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from harvester.models import ArchiveKey
from tests.readonly import read_only
from tests.unit.test_manifest import DAY, archive_file, entry

KEY = ArchiveKey("p-1", "i-1", "group-0", "10.0.0.1", date.fromisoformat(DAY))


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture
def writer(archive: Archive) -> ManifestWriter:
    return ManifestWriter(archive)


def flip_a_byte(path: Path, *, keep_mtime: bool) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def test_new_lines_carry_the_files_mtime(archive: Archive, writer: ManifestWriter) -> None:
    """Each new manifest line records mtime_ns, so a later change to the file can be noticed."""
    await archive_file(archive, writer, DAY, "a.log", b"payload")
    line = json.loads((archive.root / DAY / "manifest.jsonl").read_bytes())
    assert line["mtime_ns"] == (archive.root / DAY / "a.log").stat().st_mtime_ns


def test_lines_of_older_versions_without_mtime_still_read() -> None:
    """A line written before mtime_ns existed parses, with mtime_ns None; a mistyped one does not."""
    data = json.loads(entry("a.log", b"x").to_json())
    del data["mtime_ns"]
    assert ManifestEntry.from_json(json.dumps(data)).mtime_ns is None
    data["mtime_ns"] = "yesterday"
    with pytest.raises(ValueError, match="mtime_ns"):
        ManifestEntry.from_json(json.dumps(data))


async def test_an_untouched_file_is_trusted_without_reading_it(
    archive: Archive, writer: ManifestWriter
) -> None:
    """Same size and mtime: archived, on a stat alone (documented: a same-mtime flip is verify's job)."""
    await archive_file(archive, writer, DAY, "a.log", b"payload" * 100)
    flip_a_byte(archive.root / DAY / "a.log", keep_mtime=True)
    assert archived_keys(archive.root) == {KEY}
    assert not verify(archive.root).clean  # verify still finds it


async def test_a_changed_file_with_the_same_size_is_not_archived(
    archive: Archive, writer: ManifestWriter, caplog: pytest.LogCaptureFixture
) -> None:
    """Same size, new mtime, other bytes: re-hashed, not archived, and reported as a warning."""
    await archive_file(archive, writer, DAY, "a.log", b"payload" * 100)
    flip_a_byte(archive.root / DAY / "a.log", keep_mtime=False)
    os.utime(archive.root / DAY / "a.log", ns=(1, 1))  # a different mtime, whatever the clock
    with caplog.at_level(logging.INFO):
        assert archived_keys(archive.root) == set()
    warned = [r for r in caplog.records if r.getMessage() == "manifest.archived_file_changed"]
    assert [getattr(r, "path", None) for r in warned] == [f"{DAY}/a.log"]


async def test_a_touched_but_intact_file_stays_archived(archive: Archive, writer: ManifestWriter) -> None:
    """A new mtime alone (a backup restore, a touch) costs a re-hash, not a download."""
    await archive_file(archive, writer, DAY, "a.log", b"payload")
    os.utime(archive.root / DAY / "a.log", ns=(1, 1))
    assert archived_keys(archive.root) == {KEY}


async def test_old_lines_are_trusted_on_size(archive: Archive) -> None:
    """Lines without mtime_ns (older versions) are compared on size only, as before."""
    path = archive.root / DAY / "a.log"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"payload")
    data = json.loads(entry("a.log", b"payload").to_json())
    del data["mtime_ns"]
    (archive.root / DAY / "manifest.jsonl").write_text(json.dumps(data) + "\n")
    flip_a_byte(path, keep_mtime=False)
    assert archived_keys(archive.root) == {KEY}


async def test_only_recent_days_are_rehashed(archive: Archive, writer: ManifestWriter) -> None:
    """Days before recheck_since cannot be fetched again: they are kept on size, not re-hashed."""
    await archive_file(archive, writer, DAY, "a.log", b"payload" * 100)
    flip_a_byte(archive.root / DAY / "a.log", keep_mtime=False)
    os.utime(archive.root / DAY / "a.log", ns=(1, 1))
    assert archived_keys(archive.root, recheck_since=date(2025, 1, 3)) == {KEY}
    assert archived_keys(archive.root, recheck_since=date(2025, 1, 2)) == set()


async def test_verify_names_the_keys_a_repair_can_fetch(archive: Archive, writer: ManifestWriter) -> None:
    """verify maps each missing or corrupt nightly file to its archive key; incidents have none."""
    await archive_file(archive, writer, DAY, "a.log", b"aaaa")
    await archive_file(archive, writer, DAY, "b.log", b"bbbb", ip="10.0.0.2")
    await archive_file(archive, writer, "incidents/20250102T030405Z-oom", "c.log", b"cccc")
    flip_a_byte(archive.root / DAY / "a.log", keep_mtime=True)
    (archive.root / DAY / "b.log").unlink()
    (archive.root / "incidents/20250102T030405Z-oom/c.log").unlink()
    report = verify(archive.root)
    assert report.corrupt == [f"{DAY}/a.log"]
    assert sorted(report.missing) == [f"{DAY}/b.log", "incidents/20250102T030405Z-oom/c.log"]
    assert report.damaged == {
        f"{DAY}/a.log": KEY,
        f"{DAY}/b.log": ArchiveKey("p-1", "i-1", "group-0", "10.0.0.2", KEY.day),
    }


async def test_the_marker_is_not_an_extra_file(archive: Archive, writer: ManifestWriter) -> None:
    """The archive marker belongs to the harvester: verify does not list it."""
    archive.claim()
    await archive_file(archive, writer, DAY, "a.log", b"a")
    assert verify(archive.root).clean


async def test_reconcile_skips_a_read_only_folder_with_a_warning(
    archive: Archive, writer: ManifestWriter, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only old folder with a torn tail is reported and left; other folders are repaired."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    await archive_file(archive, writer, "2025-01-03", "b.log", b"b")
    for day in (DAY, "2025-01-03"):
        with (archive.root / day / "manifest.jsonl").open("ab") as fh:
            fh.write(b'{"torn":')
    fresh = ManifestWriter(archive)
    with read_only(archive.root / DAY):
        assert await fresh.reconcile_all() == ["2025-01-03"]
    assert (archive.root / DAY / "manifest.jsonl").read_bytes().endswith(b'{"torn":')
    assert (archive.root / "2025-01-03" / "manifest.jsonl").read_bytes().endswith(b"\n")
    warned = [r for r in caplog.records if r.getMessage() == "manifest.folder_not_reconciled"]
    assert [getattr(r, "folder", None) for r in warned] == [DAY]


async def test_reconcile_leaves_an_intact_folder_untouched(archive: Archive, writer: ManifestWriter) -> None:
    """An intact read-only folder costs nothing at start-up: no lock file, no warning, no change."""
    await archive_file(archive, writer, DAY, "a.log", b"a")
    (archive.root / DAY / ".manifest.lock").unlink()
    with read_only(archive.root / DAY):
        assert await ManifestWriter(archive).reconcile_all() == []
    assert not (archive.root / DAY / ".manifest.lock").exists()
