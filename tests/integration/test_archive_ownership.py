"""A run keeps to its own archive: it refuses a root that is not its own before writing or
calling anything, touches only its own leftovers, and is not stopped by a read-only old day."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harvester.archive.paths import MARKER_NAME
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    code_of,
    cred_env,
    error_lines,
    expected_keys,
    harvest,
    keys_of,
    run_cli,
    settings_for,
    write_config,
)
from tests.readonly import read_only


def _days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


@pytest.mark.parametrize("kind", ["foreign", "system", "home"])
async def test_a_root_that_is_not_the_harvesters_is_refused_with_exit_2_before_anything(
    emulator_factory: EmulatorFactory, tmp_path: Path, kind: str
) -> None:
    """Foreign content, a system folder or the home folder: exit 2, one line, no write, no request."""
    emu = await emulator_factory(instances=1, seed=3)
    env = cred_env(emu)
    if kind == "foreign":
        root = tmp_path / "documents"
        root.mkdir()
        (root / "thesis.tex").write_text("mine")
        expected = f"archive root {root} holds files the harvester did not write ('thesis.tex')"
    elif kind == "system":
        root = Path("/etc")
        expected = "archive root /etc is the system folder /etc"
    else:
        root = tmp_path / "home"
        root.mkdir()
        env["HOME"] = str(root)
        expected = f"archive root {root} is the home folder itself"
    before = sorted(root.iterdir())
    config = write_config(tmp_path / "harvester.yaml", emu, root)

    for args in ((), ("--dry-run",)):
        result = await run_cli("run", "--config", config, "--no-progress", *args, env=env)

        assert result.code == 2, result.output
        lines = error_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"harvester: error: {expected}")
        assert "Traceback" not in result.output
    assert sorted(root.iterdir()) == before
    assert sum(emu.counters.requests.values()) == 0


async def test_an_archive_of_the_previous_version_is_adopted_and_marked(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """An unmarked archive with only the harvester's own folders runs as before and gets the marker."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    for rel in (f"{_days_ago(30)}/manifest.jsonl", "runs/old.json", ".state/empty-days.jsonl"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    summary = await harvest(settings)
    assert code_of(summary) == 0
    assert (root / MARKER_NAME).is_file()
    assert keys_of(root) == expected_keys(emu)


async def test_a_run_removes_its_own_leftovers_and_nobody_elses(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Start-up clean-up takes the harvester's killed-run leftovers, never other programs' .part files."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    root.mkdir()
    (root / MARKER_NAME).write_text("")
    theirs = [root / "rsync.part", root / "tools" / "download.iso.part", root / "tools" / ".x.harvester.part"]
    ours = [root / _days_ago(20) / "p" / ".a.log.harvester.part", root / _days_ago(20) / "p" / "b.log.part"]
    for path in theirs + ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")

    assert code_of(await harvest(settings)) == 0

    assert all(p.exists() for p in theirs)
    assert not any(p.exists() for p in ours)


async def test_a_read_only_old_date_folder_does_not_stop_the_run(
    emulator_factory: EmulatorFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An old day made read-only, with a torn manifest and a leftover: new days are archived, exit 0."""
    emu = await emulator_factory(instances=2, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    old = root / _days_ago(20)
    (old / "p").mkdir(parents=True)
    (old / "manifest.jsonl").write_bytes(b'{"path": "p/a.log", "size"')  # torn by a crash long ago
    (old / "p" / ".a.log.harvester.part").write_bytes(b"left by a killed run")
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}

    with read_only(old), caplog.at_level(logging.WARNING):
        summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.reason]
    archived = {
        (f.instance_id, f.group_name, f.replication_ip, f.day.isoformat())
        for f in summary.files
        if f.outcome is Outcome.ARCHIVED
    }
    assert archived == expected_keys(emu)
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    events = {r.getMessage() for r in caplog.records}
    assert {"storage.orphan_not_removed", "manifest.folder_not_reconciled"} <= events


async def test_a_read_only_folder_of_a_day_to_fetch_fails_only_its_files(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A missing file in a read-only day folder fails with its reason; other days are archived (exit 1)."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    assert code_of(await harvest(settings)) == 0
    day = root / _days_ago(2)
    lost = sorted(day.rglob("*.log"))
    for path in lost:
        path.unlink()
    later = root / _days_ago(1)
    for path in sorted(later.rglob("*.log")):
        path.unlink()

    with read_only(day):
        summary = await harvest(settings)

    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    archived = [f for f in summary.files if f.outcome is Outcome.ARCHIVED]
    assert code_of(summary) == 1
    assert summary.fatal is None
    assert {f.day.isoformat() for f in failed} == {day.name}
    assert len(failed) == len(lost)
    assert all("cannot create" in f.reason for f in failed), [f.reason for f in failed]
    assert {f.day.isoformat() for f in archived} == {later.name}
