"""A full disk leaves nothing half-written: no torn manifest line, no stray .part, and an error
the engine can tell apart (disk full fails the remaining files, not just one)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import pytest

from harvester.archive.manifest import read_entries
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.part import BATCH_BYTES, PartWriter
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from harvester.errors import DiskFullError, FolderNotWritableError, StorageError
from tests.readonly import read_only
from tests.unit.test_manifest import archive_file, entry

DAY = "2025-01-02"
REL = PurePosixPath("proj/redis-a-abcd1234/group-0/redis.log")


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullAfter(PartWriter):
    """A payload writer on a disk that fills up after ``ROOM`` bytes (the rest is refused)."""

    ROOM = 10

    def _write_fd(self, chunk: bytes) -> None:
        room = self.ROOM - os.fstat(self._fd).st_size  # what is on disk, not what is gathered
        if len(chunk) > room:
            os.write(self._fd, chunk[: max(room, 0)])
            raise _enospc()
        super()._write_fd(chunk)


class FullPayloads(Archive):
    writer_class = FullAfter


class FullAppends(Archive):
    """An archive whose appends to ``target`` stop halfway through, as ENOSPC does."""

    def __init__(self, root: Path, target: str) -> None:
        super().__init__(root)
        self.target = target
        self.full = True

    def _write_fd(self, fd: int, data: bytes) -> None:
        if self.full and os.readlink(f"/proc/self/fd/{fd}").endswith(self.target):
            os.write(fd, data[: len(data) // 2])
            raise _enospc()
        super()._write_fd(fd, data)


async def test_a_full_disk_while_writing_a_payload_leaves_nothing(tmp_path: Path) -> None:
    """ENOSPC mid-download raises DiskFullError ('disk full'); neither the file nor its .part stays."""
    archive = FullPayloads(tmp_path / "archive")

    async def download() -> None:
        async with archive.open_part(DAY, REL) as part:
            await part.write(b"0123456789abcdef")
            await part.commit()

    with pytest.raises(DiskFullError) as info:
        await download()
    assert info.value.disk_full
    assert "disk full" in str(info.value)
    assert "\n" not in str(info.value)
    assert [p for p in archive.root.rglob("*") if p.is_file()] == []


async def test_a_full_disk_midway_through_a_large_body_leaves_nothing(tmp_path: Path) -> None:
    """ENOSPC on a batch written before the end raises DiskFullError from write; nothing stays."""
    archive = FullPayloads(tmp_path / "archive")

    async def download() -> None:
        async with archive.open_part(DAY, REL) as part:
            for _ in range(4):
                await part.write(b"x" * BATCH_BYTES)
            await part.commit()

    with pytest.raises(DiskFullError, match="disk full"):
        await download()
    assert [p for p in archive.root.rglob("*") if p.is_file()] == []


def test_disk_full_is_a_storage_error_other_storage_errors_are_not_disk_full() -> None:
    """Callers can catch StorageError as before and ask .disk_full to tell a full disk apart."""
    assert issubclass(DiskFullError, StorageError)
    assert not StorageError("x").disk_full
    assert not FolderNotWritableError("x").disk_full


def test_a_partial_append_is_rolled_back(tmp_path: Path) -> None:
    """An append that fails halfway (ENOSPC) is cut back: the file keeps its whole lines only."""
    archive = FullAppends(tmp_path / "archive", "log.jsonl")
    archive.full = False
    archive.append_durably("log.jsonl", b'{"n":1}\n')
    path = archive.root / "log.jsonl"
    assert path.read_bytes() == b'{"n":1}\n'
    archive.full = True
    with pytest.raises(DiskFullError):
        archive.append_durably("log.jsonl", b'{"n":2,"long":"' + b"x" * 100 + b'"}\n')
    assert path.read_bytes() == b'{"n":1}\n'
    archive.full = False
    archive.append_durably("log.jsonl", b'{"n":3}\n')
    assert path.read_bytes().splitlines() == [b'{"n":1}', b'{"n":3}']


async def test_a_full_disk_during_record_leaves_manifest_and_sha_list_agreeing(tmp_path: Path) -> None:
    """ENOSPC on the sha256 list takes the manifest line back too, and the file is not archived."""
    archive = FullAppends(tmp_path / "archive", "manifest-sha256.txt")
    archive.full = False
    writer = ManifestWriter(archive)
    await archive_file(archive, writer, DAY, "a.log", b"a")
    manifest = archive.root / DAY / "manifest.jsonl"
    sha_list = archive.root / DAY / "manifest-sha256.txt"
    before = (manifest.read_bytes(), sha_list.read_bytes())

    archive.full = True
    with pytest.raises(DiskFullError):
        await archive_file(archive, writer, DAY, "b.log", b"b")
    assert (manifest.read_bytes(), sha_list.read_bytes()) == before
    report = verify(archive.root)
    assert (report.missing, report.corrupt, report.extra) == ([], [], [f"{DAY}/b.log"])

    archive.full = False  # space freed: the next run records it as usual
    await writer.record(DAY, entry("b.log", b"b"))
    assert [e.path for e in read_entries(archive.root, DAY)] == ["a.log", "b.log"]
    assert verify(archive.root).clean


async def test_a_full_disk_during_the_manifest_append_records_nothing(tmp_path: Path) -> None:
    """ENOSPC on the manifest line itself leaves no torn line and no sha256 line."""
    archive = FullAppends(tmp_path / "archive", "manifest.jsonl")
    archive.full = False
    writer = ManifestWriter(archive)
    await archive_file(archive, writer, DAY, "a.log", b"a")
    archive.full = True
    with pytest.raises(DiskFullError):
        await archive_file(archive, writer, DAY, "b.log", b"b")
    lines = (archive.root / DAY / "manifest.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a.log"]
    assert (archive.root / DAY / "manifest-sha256.txt").read_text() == (
        f"{hashlib.sha256(b'a').hexdigest()}  a.log\n"
    )


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b"a\nb\n", b"a\nb\n"),
        (b"a\nb\npart", b"a\nb\n"),
        (b"only-a-torn-line", b""),
        (b"a\n" + b"y" * 10_000, b"a\n"),  # a torn line longer than the 4 KiB read-back
    ],
)
def test_repair_tail_cuts_exactly_the_torn_line(tmp_path: Path, content: bytes, kept: bytes) -> None:
    """The next writer drops a line without its newline, and nothing else."""
    archive = Archive(tmp_path / "archive")
    path = archive.root / "log.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert archive.repair_tail("log.jsonl") == len(content) - len(kept)
    assert path.read_bytes() == kept


def test_an_append_after_a_crash_starts_on_a_fresh_line(tmp_path: Path) -> None:
    """A torn tail left by a killed process is cut before the next append, not glued to it."""
    archive = Archive(tmp_path / "archive")
    path = archive.root / "log.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"n":1}\n{"n":')
    archive.append_durably("log.jsonl", b'{"n":2}\n')
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'


async def test_a_read_only_folder_fails_its_file_only(tmp_path: Path) -> None:
    """A payload in a folder that refuses writes raises FolderNotWritableError (that file fails)."""
    archive = Archive(tmp_path / "archive")
    (archive.root / DAY / REL.parent).mkdir(parents=True)
    with read_only(archive.root / DAY), pytest.raises(FolderNotWritableError) as info:
        async with archive.open_part(DAY, REL):
            pass
    assert not info.value.disk_full
    assert "\n" not in str(info.value)
