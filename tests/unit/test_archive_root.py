"""The archive root is the harvester's alone: claimed before the first write, and its start-up
clean-up touches only the leftovers the harvester's own writer names."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from harvester.archive.paths import MARKER_NAME
from harvester.archive.startup_state import SWEEP_STATE
from harvester.archive.store import Archive
from harvester.errors import ArchiveRootError, StorageError, UsageError
from tests.readonly import read_only

DAY = "2025-01-02"


def make(root: Path, rel: str, body: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


# --------------------------------------------------------------------------- claiming the root


@pytest.mark.parametrize("system", ["/", "/etc", "/usr", "/var", "/bin", "/home", "/tmp", "/var/lib"])
def test_a_system_folder_is_refused(system: str) -> None:
    """A system folder is never an archive root: one line naming it, and it is a usage error."""
    with pytest.raises(ArchiveRootError) as info:
        Archive(Path(system)).claim()
    message = str(info.value)
    assert message.startswith(f"archive root {system} is the system folder ")
    assert "give the harvester a folder of its own" in message
    assert "\n" not in message
    assert isinstance(info.value, UsageError)  # exit 2


def test_a_link_to_a_system_folder_is_refused(tmp_path: Path) -> None:
    """The check uses the resolved path: a symlink to / is / ."""
    link = tmp_path / "archive"
    link.symlink_to("/")
    with pytest.raises(ArchiveRootError, match="is the system folder /"):
        Archive(link).claim(write=False)


def test_the_home_folder_itself_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's home is refused (a sub-folder of it is fine)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ArchiveRootError, match="is the home folder itself"):
        Archive(home).claim()
    assert list(home.iterdir()) == []
    Archive(home / "dcs-archive").claim()
    assert (home / "dcs-archive" / MARKER_NAME).is_file()


def test_a_new_root_is_created_and_marked(tmp_path: Path) -> None:
    """First use creates the root and writes the marker; claiming again changes nothing."""
    root = tmp_path / "a" / "archive"
    Archive(root).claim()
    marker = root / MARKER_NAME
    assert [p.name for p in root.iterdir()] == [MARKER_NAME]
    before = marker.stat().st_mtime_ns
    Archive(root).claim()
    assert marker.stat().st_mtime_ns == before


def test_an_empty_existing_folder_is_adopted(tmp_path: Path) -> None:
    """An empty folder (a fresh mount point, say) becomes an archive."""
    root = tmp_path / "archive"
    root.mkdir()
    Archive(root).claim()
    assert (root / MARKER_NAME).is_file()


def test_an_archive_of_the_previous_version_is_adopted_and_marked(tmp_path: Path) -> None:
    """Date folders, runs/, .state/, .locks/, incidents/ (and lost+found): adopted as they are."""
    root = tmp_path / "archive"
    for rel in (
        f"{DAY}/manifest.jsonl",
        "runs/r.json",
        ".state/empty-days.jsonl",
        ".locks/run.lock",
        "incidents/20250101T000000Z-oom/a.log",
        "lost+found/x",
    ):
        make(root, rel)
    Archive(root).claim()
    assert (root / MARKER_NAME).is_file()
    assert (root / DAY / "manifest.jsonl").read_bytes() == b"x"


@pytest.mark.parametrize("foreign", ["notes.txt", "photos/a.jpg", "2025-13-01/x", "runs.json"])
def test_foreign_content_is_refused_before_anything_is_written(tmp_path: Path, foreign: str) -> None:
    """An unmarked folder with somebody else's files is refused in one line saying what to do."""
    root = tmp_path / "archive"
    make(root, f"{DAY}/manifest.jsonl")
    make(root, foreign)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ArchiveRootError) as info:
        Archive(root).claim()
    message = str(info.value)
    assert message.startswith(f"archive root {root} holds files the harvester did not write (")
    assert repr(foreign.split("/", maxsplit=1)[0]) in message
    assert f"create {root / MARKER_NAME} to adopt it" in message
    assert "\n" not in message
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_marked_root_may_hold_anything(tmp_path: Path) -> None:
    """The marker is the operator's word: a marked root is ours whatever else it holds."""
    root = tmp_path / "archive"
    make(root, "notes.txt")
    make(root, MARKER_NAME, b"")
    Archive(root).claim()
    Archive(root).claim(write=False)


def test_claim_without_write_checks_but_writes_nothing(tmp_path: Path) -> None:
    """--dry-run and prune's preview refuse the same roots, and never create or mark one."""
    fresh = tmp_path / "fresh"
    Archive(fresh).claim(write=False)
    assert not fresh.exists()
    old = tmp_path / "old"
    make(old, f"{DAY}/manifest.jsonl")
    Archive(old).claim(write=False)
    assert not (old / MARKER_NAME).exists()
    make(old, "notes.txt")
    with pytest.raises(ArchiveRootError):
        Archive(old).claim(write=False)


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A file where the root should be is a usage error naming it."""
    root = make(tmp_path, "archive")
    with pytest.raises(ArchiveRootError, match=f"archive root {root} is not a folder"):
        Archive(root).claim()


# --------------------------------------------------------------------------- orphan sweep


def test_only_the_harvesters_own_leftovers_are_removed(tmp_path: Path) -> None:
    """The sweep removes its own names where it writes them, and nothing else of anybody's."""
    root = tmp_path / "archive"
    ours = [
        f"{DAY}/p/i/g/.redis.log.harvester.part",  # today's part name
        f"{DAY}/p/i/g/redis.log.part",  # the previous version's, inside a date folder
        f"{DAY}/.manifest-sha256.txt.0a1b2c.harvester-tmp",
        "incidents/20250101T000000Z-oom/p/.a.log.harvester.part",
        "incidents/20250101T000000Z-oom/p/slowlog.jsonl.part",
        "incidents/.20250101T000000Z-oom.tar.gz.0a1b2c.harvester-tmp",
        "runs/.r.json.0a1b2c.harvester-tmp",
        ".state/.retention.json.0a1b2c.harvester-tmp",
        ".write-probe.0a1b2c.harvester-tmp",
    ]
    theirs = [
        "download.part",  # another program's file at the top of a marked root
        "notes/big.iso.part",  # in a folder that is not the harvester's
        "notes/.x.harvester.part",  # our name, but not in a place we write
        "runs/foreign.part",  # runs/ only ever gets our temporary names
        ".state/x.part",
        f"{DAY}/p/i/g/redis.log",  # a payload
        f"{DAY}/p/i/g/redis.log.partial",
    ]
    make(root, MARKER_NAME, b"")
    for rel in ours + theirs:
        make(root, rel)
    assert Archive(root).remove_orphans() == len(ours)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert left == sorted([*theirs, MARKER_NAME, SWEEP_STATE])  # SWEEP_STATE: the sweep's own record


def test_a_leftover_the_sweep_cannot_remove_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A leftover in a read-only old date folder is logged as a warning; the sweep goes on."""
    root = tmp_path / "archive"
    stuck = make(root, f"{DAY}/p/.a.log.harvester.part")
    gone = make(root, "2025-01-03/p/.b.log.harvester.part")
    with read_only(root / DAY):
        removed = Archive(root).remove_orphans()
    assert removed == 1
    assert not gone.exists()
    assert stuck.exists()
    warned = [r for r in caplog.records if r.getMessage() == "storage.orphan_not_removed"]
    assert [getattr(r, "path", None) for r in warned] == [str(stuck)]


def test_payload_names_that_look_like_leftovers_are_refused(tmp_path: Path) -> None:
    """No payload may be named like a leftover, so the sweep can never take an archived file."""
    archive = Archive(tmp_path / "archive")
    for name in ("x.part", "x.harvester.part", "x.harvester-tmp"):
        with pytest.raises(StorageError, match="reserved name"):
            archive.exists(DAY, PurePosixPath("p") / name)
    assert os.listdir(tmp_path) == []
