"""The archive writer: atomic payloads, path containment, orphan sweeping, run locks.

Lock contention with another process, and the wait for a held lock, are real time and real
processes: they live in tests/integration/test_run_locks.py.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import anyio
import pytest

from harvester.archive.part import BATCH_BYTES, PartWriter
from harvester.archive.startup_state import SWEEP_STATE
from harvester.archive.store import Archive
from harvester.errors import LockError, StorageError

DAY = "2025-01-02"
REL = PurePosixPath("proj/redis-a-abcd1234/group-0/redis.log")


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


def _parts(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.part"))


async def test_commit_makes_the_final_file_with_hash_and_size(archive: Archive) -> None:
    """A committed payload appears under its final name with the right size and sha256."""
    chunks = [b"a" * 70_000, b"", b"b" * 3]
    async with archive.open_part(DAY, REL) as part:
        for chunk in chunks:
            await part.write(chunk)
        assert part.bytes_written == 70_003
        done = await part.commit()
    data = b"".join(chunks)
    final = archive.root / DAY / REL
    assert final.read_bytes() == data
    assert (done.relpath, done.size, done.sha256) == (str(REL), len(data), hashlib.sha256(data).hexdigest())
    assert _parts(archive.root) == []
    assert archive.exists(DAY, REL)


async def test_the_part_file_is_all_there_is_before_commit(archive: Archive) -> None:
    """Until commit, only the hidden '.<name>.harvester.part' exists, so a reader never sees a half file."""
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"half")
        assert not archive.exists(DAY, REL)
        assert _parts(archive.root) == [archive.root / DAY / REL.parent / f".{REL.name}.harvester.part"]
        await part.commit()


async def test_error_inside_the_block_removes_the_part(archive: Archive) -> None:
    """A failed download leaves neither a final file nor a .part, and its error is kept."""

    async def download() -> None:
        async with archive.open_part(DAY, REL) as part:
            await part.write(b"data")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await download()
    assert not archive.exists(DAY, REL)
    assert _parts(archive.root) == []


async def test_leaving_without_commit_removes_the_part(archive: Archive) -> None:
    """Forgetting to commit discards the payload rather than leaving it around."""
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"data")
    assert _parts(archive.root) == []
    assert not archive.exists(DAY, REL)


async def test_cancellation_removes_the_part(archive: Archive) -> None:
    """Cancelling a download (Ctrl-C, a deadline) cleans its .part up."""
    with anyio.CancelScope() as scope:
        async with archive.open_part(DAY, REL) as part:
            await part.write(b"data")
            scope.cancel()  # what a deadline or Ctrl-C does while the download waits for bytes
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert _parts(archive.root) == []
    assert not archive.exists(DAY, REL)


async def test_reset_starts_the_payload_over(archive: Archive) -> None:
    """A download restarted from byte 0 is neither doubled nor mis-hashed."""
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"garbage that will be thrown away")
        await part.reset()
        assert part.bytes_written == 0
        await part.write(b"good")
        done = await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"good"
    assert done.sha256 == hashlib.sha256(b"good").hexdigest()


async def test_a_body_in_many_small_chunks_lands_whole_and_hashed(archive: Archive) -> None:
    """A large body arriving in small network reads is stored byte for byte, with its sha256."""
    chunks = [bytes([i % 251]) * 10_000 for i in range(3 * BATCH_BYTES // 10_000 + 7)]
    async with archive.open_part(DAY, REL) as part:
        for chunk in chunks:
            await part.write(chunk)
        done = await part.commit()
    data = b"".join(chunks)
    assert (archive.root / DAY / REL).read_bytes() == data
    assert (done.size, done.sha256) == (len(data), hashlib.sha256(data).hexdigest())


async def test_reset_after_bytes_reached_the_disk_starts_over(archive: Archive) -> None:
    """A restart after more than one batch was written leaves only the new body, hashed alone."""
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"x" * (2 * BATCH_BYTES))
        await part.write(b"y" * 10)
        await part.reset()
        await part.write(b"good")
        done = await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"good"
    assert (done.size, done.sha256) == (4, hashlib.sha256(b"good").hexdigest())


async def test_cancelling_a_large_write_removes_the_part(archive: Archive) -> None:
    """A cancel that lands while a batch is being written still leaves no .part behind."""
    with anyio.CancelScope() as scope:
        async with archive.open_part(DAY, REL) as part:
            scope.cancel()
            await part.write(b"z" * (4 * BATCH_BYTES))
            await anyio.sleep(10)
    assert scope.cancelled_caught
    assert _parts(archive.root) == []
    assert not archive.exists(DAY, REL)


async def test_commit_replaces_an_existing_file(archive: Archive) -> None:
    """Re-downloading a file that is on disk but unrecorded replaces it atomically."""
    for body in (b"old", b"new!"):
        async with archive.open_part(DAY, REL) as part:
            await part.write(body)
            await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"new!"


async def test_writing_after_commit_is_refused(archive: Archive) -> None:
    """A committed payload cannot be changed through its writer any more."""
    async with archive.open_part(DAY, REL) as part:
        await part.commit()
        with pytest.raises(StorageError):
            await part.write(b"late")
        with pytest.raises(StorageError):
            await part.commit()


@pytest.mark.parametrize(
    "relpath",
    [
        "../escape.log",
        "a/../../escape.log",
        "/etc/passwd",
        "a/b\nc.log",
        "a/b\\c.log",
        "x.part",
        "manifest.jsonl",
    ],
)
async def test_paths_that_could_escape_or_collide_are_refused(archive: Archive, relpath: str) -> None:
    """Whatever the planner hands in, nothing is written outside the date folder or over its manifest."""
    with pytest.raises(StorageError):
        async with archive.open_part(DAY, PurePosixPath(relpath)):
            pass
    assert not (archive.root.parent / "escape.log").exists()


@pytest.mark.parametrize(
    "name",
    ["", "../x", "/abs", ".state", ".locks/x", "runs", "incidents/.hidden", "incidents", "incidents/a/b"],
)
def test_reserved_or_escaping_folder_names_are_refused(archive: Archive, name: str) -> None:
    """A manifest folder can never be the harvester's own state, or outside the root."""
    with pytest.raises(StorageError):
        archive.folder(name)


def test_incident_bundles_are_manifest_folders(archive: Archive) -> None:
    """An incident bundle is addressed like a date folder."""
    assert (
        archive.folder("incidents/20250102T030405Z-oom")
        == archive.root / "incidents" / "20250102T030405Z-oom"
    )


async def test_a_symlink_inside_the_archive_is_not_followed(archive: Archive, tmp_path: Path) -> None:
    """A planted symlink cannot redirect a write outside the archive."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive.root / DAY).mkdir(parents=True)
    (archive.root / DAY / "proj").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        async with archive.open_part(DAY, REL):
            pass
    assert list(outside.iterdir()) == []


async def _write(archive: Archive, relpath: PurePosixPath, body: bytes) -> None:
    async with archive.open_part(DAY, relpath, expected_size=len(body)) as part:
        await part.write(body)
        await part.commit()


async def test_a_folder_swapped_for_a_symlink_after_a_write_is_still_refused(
    archive: Archive, tmp_path: Path
) -> None:
    """The payload folder was checked for the first file; replaced by a link before the second,
    it is checked again (its inode changed), not trusted from memory."""
    await _write(archive, REL, b"first")
    folder = archive.root / DAY / REL.parent
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(folder, tmp_path / "moved-away")
    folder.symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        await _write(archive, REL.with_name("second.log"), b"second")
    assert list(outside.iterdir()) == []


async def test_an_outer_folder_moved_out_and_linked_back_after_a_write_is_refused(
    archive: Archive, tmp_path: Path
) -> None:
    """Not only the deepest folder: a folder higher up moved out of the archive and symlinked
    back (every inode below it unchanged) is noticed, and the next file is refused, not written
    outside the archive."""
    await _write(archive, REL, b"first")
    outside = tmp_path / "outside"
    os.rename(archive.root / DAY / "proj", outside)
    (archive.root / DAY / "proj").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        await _write(archive, REL.with_name("second.log"), b"second")
    assert sorted(p.name for p in outside.rglob("*.log")) == ["redis.log"]


async def test_a_payload_folder_removed_during_a_run_is_made_again(archive: Archive) -> None:
    """A folder removed between two files of one run (an operator tidying up) is recreated for
    the next file, not written to blindly from what the first file found."""
    await _write(archive, REL, b"first")
    folder = archive.root / DAY / REL.parent
    (folder / REL.name).unlink()
    folder.rmdir()
    await _write(archive, REL.with_name("second.log"), b"second")
    assert (folder / "second.log").read_bytes() == b"second"


async def test_a_symlinked_date_folder_is_refused(archive: Archive, tmp_path: Path) -> None:
    """The date folder itself cannot be a link to somewhere else."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    archive.root.mkdir()
    (archive.root / DAY).symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        async with archive.open_part(DAY, REL):
            pass
    assert list(outside.iterdir()) == []


async def test_a_leftover_part_from_a_killed_run_is_taken_over(archive: Archive) -> None:
    """A .part left by a killed run does not block the next download of that file."""
    leftover = archive.root / DAY / REL.parent / f".{REL.name}.harvester.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"stale bytes")
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"fresh")
        await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"fresh"
    assert not leftover.exists()


def test_remove_orphans_deletes_leftovers_everywhere(archive: Archive) -> None:
    """Leftover .part and temporary files of killed runs are removed and counted; payloads stay."""
    for rel in (
        f"{DAY}/a/b/c.log.part",
        "incidents/x/y.part",
        f"{DAY}/.manifest-sha256.txt.0a1b.harvester-tmp",
    ):
        (archive.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (archive.root / rel).write_bytes(b"x")
    (archive.root / DAY / "a" / "b" / "c.log").write_bytes(b"keep")
    assert archive.remove_orphans() == 3
    files = [p.relative_to(archive.root).as_posix() for p in archive.root.rglob("*") if p.is_file()]
    assert sorted(files) == sorted([f"{DAY}/a/b/c.log", SWEEP_STATE])  # the payload, the sweep's record
    assert archive.remove_orphans() == 0


async def test_remove_orphans_spares_a_part_a_live_process_is_writing(archive: Archive) -> None:
    """Another shard starting up on a shared root does not delete our download in flight."""
    async with archive.open_part(DAY, REL) as part:
        await part.write(b"in flight")
        assert Archive(archive.root).remove_orphans() == 0
        await part.write(b" and more")
        done = await part.commit()
    assert done.size == len(b"in flight and more")


async def test_a_part_another_writer_holds_is_refused(archive: Archive) -> None:
    """Two writers of one file fail loudly instead of interleaving bytes."""
    async with archive.open_part(DAY, REL) as part:
        with pytest.raises(StorageError, match="another process"):
            async with archive.open_part(DAY, REL):
                pass
        await part.write(b"mine")
        await part.commit()
    assert (archive.root / DAY / REL).read_bytes() == b"mine"


def test_check_writable_creates_the_root(archive: Archive) -> None:
    """A fresh archive root is created, and nothing is left behind by the probe."""
    archive.check_writable()
    assert archive.root.is_dir()
    assert list(archive.root.iterdir()) == []


def test_check_writable_fails_with_one_line(tmp_path: Path) -> None:
    """An unusable root is reported in one line naming it, before any download starts."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as info:
        Archive(blocker / "archive").check_writable()
    message = str(info.value)
    assert message.startswith(f"archive root {blocker / 'archive'} is not writable: ")
    assert "\n" not in message


def test_write_json_atomic_writes_and_leaves_no_temporary(archive: Archive) -> None:
    """Run summaries are written whole, with dates as ISO strings, and no temp file remains."""
    path = archive.write_json_atomic("runs/r1.json", {"run_id": "r1", "at": datetime(2025, 1, 2, tzinfo=UTC)})
    assert path == archive.root / "runs" / "r1.json"
    assert json.loads(path.read_text()) == {"run_id": "r1", "at": "2025-01-02T00:00:00+00:00"}
    assert [p.name for p in path.parent.iterdir()] == ["r1.json"]


def test_a_large_run_summary_is_the_same_text_as_before_streaming(archive: Archive) -> None:
    """runs/<id>.json is streamed in pieces yet byte-for-byte the indented JSON it always was."""
    data = {
        "run_id": "r2",
        "instances": [{"name": f"rédis-{n}", "days": list(range(n % 7))} for n in range(5000)],
    }
    path = archive.write_json_atomic("runs/r2.json", data)
    assert path.read_text() == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert path.stat().st_size > 200_000  # several pieces


def test_a_summary_that_cannot_be_written_leaves_the_previous_one(archive: Archive) -> None:
    """A value that is not JSON, met after part of the file was streamed, keeps the old file, no temp."""
    path = archive.write_json_atomic("runs/r3.json", {"run_id": "r3"})
    before = path.read_bytes()
    data = {"run_id": "r3", "filler": ["x" * 1000] * 3000, "bad": object()}
    with pytest.raises(StorageError, match="cannot write"):
        archive.write_json_atomic("runs/r3.json", data)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["r3.json"]


def test_write_json_atomic_refuses_escapes(archive: Archive) -> None:
    """A run id cannot be used to write outside the archive."""
    with pytest.raises(StorageError):
        archive.write_json_atomic("runs/../../evil.json", {})


def test_write_bytes_atomic_is_readable_by_other_users(tmp_path: Path) -> None:
    """The metrics file is world-readable (umask permitting), so node_exporter can read it."""
    old = os.umask(0o022)
    try:
        target = tmp_path / "textfile" / "dcs.prom"
        Archive(tmp_path).write_bytes_atomic(target, b"x 1\n")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"x 1\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["dcs.prom"]


# --- run locks ---------------------------------------------------------------------------


async def test_a_cleanly_released_lock_is_not_reported_stale(archive: Archive) -> None:
    """Consecutive healthy runs take the lock without any takeover notice."""
    async with archive.run_lock("nightly", 1) as first:
        assert first is None
    async with archive.run_lock("nightly", 1) as second:
        assert second is None
    assert (archive.root / ".locks" / "nightly.lock").read_bytes() == b""


async def test_two_runs_in_one_process_exclude_each_other(archive: Archive) -> None:
    """The lock excludes a second holder even in the same process (each open is its own lock)."""
    async with archive.run_lock("shard-1", 1):
        with pytest.raises(LockError):
            async with archive.run_lock("shard-1", 0):
                pass
        async with archive.run_lock("shard-2", 0):  # other shards are independent
            pass


def test_lock_names_cannot_escape(archive: Archive) -> None:
    """A shard name cannot place a lock file outside .locks/."""
    with pytest.raises(StorageError):
        archive.run_lock("../x", 1)


async def test_shards_share_the_fleet_lock_but_exclude_a_full_run(tmp_path: Path) -> None:
    """Sharded runs coexist; an unsharded run of the whole fleet cannot take the lock from them."""
    archive = Archive(tmp_path / "archive")
    async with archive.run_lock("run", 1.0, shared=True), archive.run_lock("run", 1.0, shared=True):
        with pytest.raises(LockError, match="another harvester run holds"):
            async with archive.run_lock("run", 0):
                pass
    async with archive.run_lock("run", 0):
        with pytest.raises(LockError):
            async with archive.run_lock("run", 0, shared=True):
                pass


def _cyclic_writers() -> int:
    """Payload writers that only a cyclic collection would free (found, not freed, by this one).

    Counted as garbage rather than as live objects: an idle worker thread may still hold its
    last job (a writer's bound method) for a moment, which is no leak and no cycle.
    """
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return sum(1 for o in gc.garbage if isinstance(o, PartWriter))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("size", [100, BATCH_BYTES + 1])
async def test_a_finished_payload_writer_is_freed_without_a_cyclic_collection(
    archive: Archive, size: int
) -> None:
    """A writer leaves no reference cycle behind (committed or dropped): memory does not pile up per file."""
    gc.collect()
    gc.disable()
    try:
        async with archive.open_part(DAY, REL, expected_size=size) as part:
            await part.write(b"x" * size)
            await part.commit()
        del part
        try:
            async with archive.open_part(DAY, PurePosixPath("proj/other.log"), expected_size=size) as part:
                await part.write(b"y" * size)
                raise LookupError("the download broke")
        except LookupError:
            pass
        del part
        assert _cyclic_writers() == 0
    finally:
        gc.enable()
