"""``prune`` and ``run`` never fight: a pruned day is never collected again, and prune waits for
a running harvest's lock like another run would."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harvester.archive.store import Archive
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import code_of, date_folders, error_lines, harvest, run_cli, settings_for


async def test_a_pruned_day_is_not_collected_or_downloaded_again(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """prune --keep-days 3 --yes, then run: no collection, no link, the pruned days stay gone."""
    emu = await emulator_factory(instances=2, seed=5, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    assert code_of(await harvest(settings)) == 0
    today = datetime.now(UTC).date()
    assert len(date_folders(root)) == 7

    pruned = await run_cli("prune", root, "--keep-days", "3", "--yes")

    assert pruned.code == 0, pruned.output
    kept = [(today - timedelta(days=n)).isoformat() for n in (2, 1)]
    assert [p.name for p in date_folders(root)] == kept
    watermark = (today - timedelta(days=3)).isoformat()
    assert f"days up to {watermark} are not collected again" in pruned.stdout
    assert json.loads((root / ".state" / "retention.json").read_text())["pruned_through"] == watermark

    emu.counters.reset()
    again = await harvest(settings)

    assert code_of(again) == 0
    assert emu.counters.collections == 0
    assert emu.counters.links_issued == 0
    assert [p.name for p in date_folders(root)] == kept
    assert {f.day.isoformat() for f in again.files} == set(kept)
    assert all(f.outcome is Outcome.PRESENT for f in again.files)
    dry = await harvest(settings, lock=False, dry_run=True)
    assert code_of(dry) == 0
    assert emu.counters.collections == 0


async def test_a_pruned_day_is_not_downloaded_when_a_collection_lists_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A collection for a kept day also lists pruned days (query_time=7): those are not fetched."""
    emu = await emulator_factory(instances=1, seed=5, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    assert code_of(await harvest(settings)) == 0
    assert (await run_cli("prune", root, "--keep-days", "3", "--yes")).code == 0
    newest = max(date_folders(root))
    for path in sorted(newest.rglob("*.log")):
        path.unlink()  # a kept day is missing again: the run collects (a window of 1 day or more)
    emu.counters.reset()
    settings = settings_for(emu, tmp_path, extra={"collect": {"days": 7}})

    again = await harvest(settings)

    assert code_of(again) == 0, [f.reason for f in again.files if f.reason]
    assert emu.counters.collections >= 1
    archived = {f.day.isoformat() for f in again.files if f.outcome is Outcome.ARCHIVED}
    assert archived == {newest.name}
    assert len(date_folders(root)) == 2


async def test_prune_waits_for_a_running_harvest_then_exits_3_naming_it(tmp_path: Path) -> None:
    """While a run holds the archive lock, prune --yes waits --lock-timeout, then exits 3; nothing goes."""
    root = tmp_path / "archive"
    old = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    (root / old).mkdir(parents=True)
    (root / old / "manifest.jsonl").write_text("")
    async with Archive(root).run_lock("run", 5.0):
        result = await run_cli("prune", root, "--keep-days", "3", "--yes", "--lock-timeout", "0.5")
    assert result.code == 3, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "another harvester run holds" in lines[0]
    assert f"pid {os.getpid()}" in lines[0]
    assert "waited 0.5s" in lines[0]
    assert (root / old).is_dir()
    assert not (root / ".state" / "retention.json").exists()


async def test_prune_without_yes_shows_the_plan_and_the_watermark_and_changes_nothing(tmp_path: Path) -> None:
    """The preview takes no lock and writes nothing, not even the marker."""
    root = tmp_path / "archive"
    old = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    (root / old).mkdir(parents=True)
    async with Archive(root).run_lock("run", 5.0):  # a run is going on: the preview still works
        result = await run_cli("prune", root, "--keep-days", "3")
    assert result.code == 0, result.output
    assert f"would remove {root / old}" in result.stdout
    watermark = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    assert f"would record that days up to {watermark} are not collected again" in result.stdout
    assert sorted(p.name for p in root.iterdir()) == [".locks", old]


async def test_prune_refuses_a_folder_that_is_not_a_harvester_archive(tmp_path: Path) -> None:
    """prune on somebody else's folder: exit 2 in one line, nothing deleted."""
    root = tmp_path / "photos"
    old = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    (root / old).mkdir(parents=True)
    (root / "holiday.jpg").write_bytes(b"jpg")
    for args in ((), ("--yes",)):
        result = await run_cli("prune", root, "--keep-days", "3", *args)
        assert result.code == 2, result.output
        lines = error_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert "holds files the harvester did not write ('holiday.jpg')" in lines[0]
    assert sorted(p.name for p in root.iterdir()) == [old, "holiday.jpg"]
