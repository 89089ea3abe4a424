"""Group-committed manifest records and one-call small files, over a real archive on disk.

Batches form only from natural concurrency: a gate holds the first batch's manifest append in
its worker thread, so the records that arrive meanwhile queue up for the next batch, as they
do on a busy night while one batch is being fsynced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import pytest

from harvester.archive import part as part_module
from harvester.archive.manifest import ManifestEntry, read_entries
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.part import BATCH_BYTES, PartWriter
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from harvester.errors import DiskFullError, PartBusyError, StorageError
from tests.polling import DEADLINE, eventually
from tests.unit.test_manifest import entry, needs_sha256sum

DAY = "2025-01-02"
REL = PurePosixPath("proj/redis-a-abcd1234/group-0/redis.log")


class Gated(Archive):
    """An archive whose manifest appends can be held (the gate) and whose sha256 list can fill up."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()  # a manifest append is waiting at the gate
        self.manifest_appends = 0
        self.sha_appends = 0
        self.sha_room = -1  # sha256-list appends that succeed before the disk is full; -1: no limit

    def _write_fd(self, fd: int, data: bytes) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("manifest.jsonl"):
            self.manifest_appends += 1
            self.held.set()
            assert self.gate.wait(DEADLINE), "the test never opened the gate"
        elif name.endswith("manifest-sha256.txt"):
            self.sha_appends += 1
            if self.sha_room == 0:
                os.write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.sha_room -= 1
        super()._write_fd(fd, data)


async def _put(archive: Archive, path: str, body: bytes) -> ManifestEntry:
    """A payload final on disk (not yet recorded), and the entry that describes it."""
    async with archive.open_part(DAY, PurePosixPath(path), expected_size=len(body)) as part:
        await part.write(body)
        await part.commit()
    return entry(path, body)


def _manifest_paths(archive: Archive) -> list[str]:
    data = (archive.root / DAY / "manifest.jsonl").read_bytes()
    return [json.loads(line)["path"] for line in data.splitlines()]


def _sha_paths(archive: Archive) -> list[str]:
    data = (archive.root / DAY / "manifest-sha256.txt").read_text()
    return [line.split("  ", 1)[1] for line in data.splitlines()]


@needs_sha256sum
async def test_concurrent_records_share_one_append_and_each_returns_after_its_line(tmp_path: Path) -> None:
    """Records arriving while a batch is written are appended together; each returns once listed."""
    archive = Gated(tmp_path / "archive")
    writer = ManifestWriter(archive)
    entries = [await _put(archive, f"p/f{i}.log", f"body {i}".encode()) for i in range(6)]
    returned: list[str] = []

    async def record(item: ManifestEntry) -> None:
        await writer.record(DAY, item)
        # Its line is in both files by the time record returns (the crash rule's order).
        assert item.path in _manifest_paths(archive)
        assert item.path in _sha_paths(archive)
        returned.append(item.path)

    def none_returned() -> None:
        assert returned == []  # none returns while the batch holding the lock is not on disk

    await _behind_a_held_batch(archive, writer, entries, record, before_release=none_returned)

    assert sorted(returned) == sorted(e.path for e in entries)
    assert archive.manifest_appends == 2  # the lone first record, then one batch of five
    assert archive.sha_appends == 2
    assert _manifest_paths(archive) == _sha_paths(archive)
    assert sorted(_manifest_paths(archive)) == sorted(e.path for e in entries)
    assert _manifest_paths(archive)[0] == entries[0].path
    checked = subprocess.run(
        ["sha256sum", "--strict", "-c", "manifest-sha256.txt"],
        cwd=archive.root / DAY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert verify(archive.root).clean


async def _behind_a_held_batch(
    archive: Gated,
    writer: ManifestWriter,
    entries: list[ManifestEntry],
    record: Callable[[ManifestEntry], Coroutine[Any, Any, None]],
    *,
    before_release: Callable[[], None] = lambda: None,
) -> None:
    """Record the first entry alone and hold its batch at the manifest append; queue the others
    behind it (one batch), then let the disk go on and wait for every record."""
    async with anyio.create_task_group() as tg:
        archive.gate.clear()
        tg.start_soon(record, entries[0])
        await eventually(archive.held.is_set, what="the first batch to reach its manifest append")
        for item in entries[1:]:
            tg.start_soon(record, item)
        rest = len(entries) - 1
        await eventually(lambda: writer.queued(DAY) == rest, what=f"{rest} records queued behind the batch")
        before_release()
        archive.gate.set()


async def test_a_lone_record_is_written_at_once(tmp_path: Path) -> None:
    """With nothing else in flight a record is its own batch: one append per file, no waiting."""
    archive = Gated(tmp_path / "archive")
    writer = ManifestWriter(archive)
    for i in range(3):
        await writer.record(DAY, await _put(archive, f"p/{i}.log", b"x"))
        assert archive.manifest_appends == i + 1
    assert _manifest_paths(archive) == ["p/0.log", "p/1.log", "p/2.log"]


async def test_a_full_disk_during_a_batch_fails_every_record_of_it(tmp_path: Path) -> None:
    """ENOSPC on a batch's sha256 append fails all its records; the two files still agree."""
    archive = Gated(tmp_path / "archive")
    writer = ManifestWriter(archive)
    entries = [await _put(archive, f"p/f{i}.log", f"body {i}".encode()) for i in range(4)]
    archive.sha_room = 1  # the first batch fits, the next does not
    outcomes: dict[str, str] = {}

    async def record(item: ManifestEntry) -> None:
        try:
            await writer.record(DAY, item)
        except DiskFullError as exc:
            outcomes[item.path] = str(exc)
        else:
            outcomes[item.path] = "recorded"

    await _behind_a_held_batch(archive, writer, entries, record)

    assert outcomes.pop("p/f0.log") == "recorded"
    assert sorted(outcomes) == ["p/f1.log", "p/f2.log", "p/f3.log"]
    for reason in outcomes.values():  # one line naming the problem, for every record of the batch
        assert "disk full" in reason
        assert "\n" not in reason
    assert _manifest_paths(archive) == _sha_paths(archive) == ["p/f0.log"]
    report = verify(archive.root)
    assert (report.missing, report.corrupt) == ([], [])
    assert sorted(report.extra) == [f"{DAY}/p/f{i}.log" for i in (1, 2, 3)]

    archive.sha_room = -1  # space freed: the next run records them as usual
    for item in entries[1:]:
        await writer.record(DAY, item)
    assert [e.path for e in read_entries(archive.root, DAY)] == [e.path for e in entries]
    assert verify(archive.root).clean


@needs_sha256sum
async def test_a_path_recorded_twice_in_one_batch_keeps_the_list_right(tmp_path: Path) -> None:
    """A batch that names a path twice regenerates the sha256 list: the later line wins."""
    archive = Gated(tmp_path / "archive")
    writer = ManifestWriter(archive)
    first = await _put(archive, "p/first.log", b"first")
    older = entry("p/again.log", b"old body")
    newer = await _put(archive, "p/again.log", b"new body")

    async with anyio.create_task_group() as tg:
        archive.gate.clear()
        tg.start_soon(writer.record, DAY, first)
        await eventually(archive.held.is_set, what="the first batch to reach its manifest append")
        tg.start_soon(writer.record, DAY, older)
        tg.start_soon(writer.record, DAY, newer)
        await eventually(lambda: writer.queued(DAY) == 2, what="two records queued behind the batch")
        archive.gate.set()

    assert _sha_paths(archive) == ["p/first.log", "p/again.log"]
    assert read_entries(archive.root, DAY)[-1].sha256 == hashlib.sha256(b"new body").hexdigest()
    checked = subprocess.run(
        ["sha256sum", "--strict", "-c", "manifest-sha256.txt"],
        cwd=archive.root / DAY,
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0
    assert verify(archive.root).clean


async def test_a_record_cancelled_while_queued_is_not_written_later(tmp_path: Path) -> None:
    """A record cancelled before any batch took it leaves the queue; the batch in flight finishes."""
    archive = Gated(tmp_path / "archive")
    writer = ManifestWriter(archive)
    kept = await _put(archive, "p/kept.log", b"k")
    dropped = await _put(archive, "p/dropped.log", b"d")

    async with anyio.create_task_group() as tg:
        archive.gate.clear()
        tg.start_soon(writer.record, DAY, kept)
        await eventually(archive.held.is_set, what="the first batch to reach its manifest append")
        tg.start_soon(writer.record, DAY, dropped)
        await eventually(lambda: writer.queued(DAY) == 1, what="a record queued behind the batch")
        tg.cancel_scope.cancel()  # cancels the waiting record; the held batch still finishes
        archive.gate.set()

    assert writer.queued(DAY) == 0
    assert _manifest_paths(archive) == _sha_paths(archive) == ["p/kept.log"]


# --- small files: one worker-thread call at commit -------------------------------------------


class FullAtOnce(PartWriter):
    """A payload writer on a full disk: its first write is refused (ENOSPC)."""

    def _write_fd(self, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullPayloads(Archive):
    writer_class = FullAtOnce


async def _small(archive: Archive, body: bytes) -> None:
    """Archive ``body`` at REL as a download of a known small size does."""
    async with archive.open_part(DAY, REL, expected_size=len(body)) as part:
        await part.write(body)
        await part.commit()


def _everything(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


async def test_a_small_file_lands_whole_with_its_hash(tmp_path: Path) -> None:
    """A body known to fit in one batch is archived byte for byte; nothing is on disk before commit."""
    archive = Archive(tmp_path / "archive")
    body = os.urandom(16 * 1024)
    async with archive.open_part(DAY, REL, expected_size=len(body)) as part:
        await part.write(body[:5000])
        await part.write(body[5000:])
        assert _everything(archive.root) == []  # the body waits in memory for the commit's one call
        done = await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == body
    assert (done.relpath, done.size, done.sha256) == (str(REL), len(body), hashlib.sha256(body).hexdigest())
    assert _everything(archive.root) == [archive.root / DAY / REL]


async def test_a_failing_small_file_commit_leaves_no_part_and_no_file(tmp_path: Path) -> None:
    """ENOSPC in the one-call commit raises DiskFullError; neither .part nor final file stays."""
    archive = FullPayloads(tmp_path / "archive")
    with pytest.raises(DiskFullError, match="disk full"):
        await _small(archive, b"abc")
    assert _everything(archive.root) == []


async def test_a_small_body_that_outgrows_its_size_still_lands_whole(tmp_path: Path) -> None:
    """An encoded body that decodes larger than announced is written in batches as usual."""
    archive = Archive(tmp_path / "archive")
    body = b"".join(bytes([i]) * 100_000 for i in range(3 * BATCH_BYTES // 100_000 + 1))
    async with archive.open_part(DAY, REL, expected_size=100) as part:
        for i in range(0, len(body), 100_000):
            await part.write(body[i : i + 100_000])
        done = await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == body
    assert done.sha256 == hashlib.sha256(body).hexdigest()
    assert _everything(archive.root) == [archive.root / DAY / REL]


async def test_a_small_file_through_a_symlink_is_refused_at_commit(tmp_path: Path) -> None:
    """The path checks still run for a deferred small file: a planted link is never followed."""
    archive = Archive(tmp_path / "archive")
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive.root / DAY).mkdir(parents=True)
    (archive.root / DAY / "proj").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        await _small(archive, b"data")
    assert list(outside.iterdir()) == []
    assert [p for p in archive.root.rglob("*") if p.is_file()] == []


async def test_a_bad_name_is_refused_before_the_fetch_even_for_a_small_file(tmp_path: Path) -> None:
    """A reserved or escaping name fails when the block opens, before any byte is fetched."""
    archive = Archive(tmp_path / "archive")
    for bad in ("../escape.log", "manifest.jsonl"):
        with pytest.raises(StorageError):
            archive.open_part(DAY, PurePosixPath(bad), expected_size=1)
    assert not archive.root.exists()


async def test_a_small_file_another_writer_holds_fails_at_commit(tmp_path: Path) -> None:
    """A deferred small file whose .part a live writer holds raises PartBusyError; theirs goes on."""
    archive = Archive(tmp_path / "archive")
    async with archive.open_part(DAY, REL) as theirs:
        await theirs.write(b"theirs")
        with pytest.raises(PartBusyError):
            await _small(archive, b"mine")
        await theirs.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"theirs"


async def test_a_cancelled_small_file_leaves_nothing(tmp_path: Path) -> None:
    """Cancelling a deferred small file before its commit leaves no .part and no final file."""
    archive = Archive(tmp_path / "archive")
    with anyio.CancelScope() as scope:
        async with archive.open_part(DAY, REL, expected_size=4) as part:
            await part.write(b"data")
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert _everything(archive.root) == []


# --- folder fsyncs shared by files renamed into one folder at once ---------------------------


class _FakeFsync:
    """Stands in for the folder fsync: counts calls, can hold the first one, can fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.in_call = threading.Event()
        self.fail = False

    def __call__(self, directory: Path) -> None:
        self.calls += 1
        self.in_call.set()
        assert self.release.wait(DEADLINE), "the test never released the fsync"
        if self.fail:
            raise OSError(errno.EIO, os.strerror(errno.EIO))


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE:g}s"
        time.sleep(0.005)


def test_renames_during_a_folder_fsync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits arriving while the folder is being fsynced wait for ONE later fsync, not one each."""
    fake = _FakeFsync()
    monkeypatch.setattr(part_module, "fsync_dir", fake)
    syncs = part_module._DirSyncs()
    fake.release.clear()
    done: list[str] = []

    def commit(name: str) -> None:
        syncs.sync(tmp_path)
        done.append(name)

    first = threading.Thread(target=commit, args=("first",))
    first.start()
    assert fake.in_call.wait(DEADLINE)
    later = [threading.Thread(target=commit, args=(f"later-{i}",)) for i in range(3)]
    for thread in later:
        thread.start()
    _wait_for("three commits waiting", lambda: syncs._dirs[tmp_path].renamed == 4)
    assert done == []  # the fsync in flight began before their renames: it does not cover them
    fake.release.set()
    for thread in [first, *later]:
        thread.join(DEADLINE)
    assert sorted(done) == ["first", "later-0", "later-1", "later-2"]
    assert fake.calls == 2  # the first file's, then one covering the three that came meanwhile
    assert syncs._dirs == {}


def test_a_failed_folder_fsync_covers_no_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the shared fsync fails, every commit waiting on it tries its own and sees the error."""
    fake = _FakeFsync()
    fake.fail = True
    monkeypatch.setattr(part_module, "fsync_dir", fake)
    syncs = part_module._DirSyncs()
    errors: list[str] = []

    def commit() -> None:
        try:
            syncs.sync(tmp_path)
        except OSError as exc:
            errors.append(exc.strerror or "")

    threads = [threading.Thread(target=commit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert errors == [os.strerror(errno.EIO)] * 3
    assert fake.calls == 3
    assert syncs._dirs == {}
