"""Start-up looks only where a run can have left something, and still cleans up after a killed run.

Each test runs the real engine against the emulator over loopback, twice or more over one
archive: the first run leaves its records in ``.state/``, the next ones use them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harvester.app import new_run_id, open_engine
from harvester.archive.startup_state import INTACT_STATE, NEWEST_WALKED, SWEEP_STATE
from harvester.archive.verify import verify
from harvester.commands.run import Nightly, NightlyOptions
from harvester.config.schema import Settings
from harvester.emulator import Emulator
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import code_of, cred_env, harvest, run_cli, settings_for, write_config


def _days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


def plant(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left by a killed run")
    return path


def an_instance_dir(day: Path) -> Path:
    """A folder below a day's folder that the run wrote a payload into."""
    return next(p.parent for p in sorted(day.rglob("*.log")))


def old_archive(root: Path) -> Path:
    """A long-closed day (with nested folders, as a run leaves them) behind enough newer days."""
    for n in range(30, 30 + NEWEST_WALKED):
        (root / _days_ago(n)).mkdir(parents=True)
    old = root / _days_ago(400)
    (old / "p" / "inst-0000" / "group").mkdir(parents=True)
    return old


#: Where a killed run leaves a payload in progress, below an old day's folder.
OLD_PART = "p/inst-0000/group/.redis.log.harvester.part"


async def first_night_over_an_old_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path, leftover: str
) -> tuple[Emulator, Settings, Path]:
    """One instance's first night over an archive with a long-closed day, then ``leftover``
    (relative to that day's folder) planted as a killed run would leave it."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    old = old_archive(settings.archive.root)
    assert code_of(await harvest(settings)) == 0
    return emu, settings, plant(old / leftover)


async def full_check_run(settings: Settings) -> None:
    async with open_engine(
        settings,
        new_run_id(datetime.now(UTC)),
        progress=False,
        lock_name="run",
        lock_timeout=5.0,
        full_check=True,
    ) as engine:
        await Nightly(engine, NightlyOptions()).run()


async def test_a_part_left_in_a_recent_day_by_a_killed_run_is_removed_by_the_next_run(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A .part below a day the runs still write into is removed, though its day folder looks unchanged."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    assert code_of(await harvest(settings)) == 0
    assert (root / SWEEP_STATE).is_file()
    leftovers = [
        plant(an_instance_dir(root / _days_ago(n)) / f".redis_x_{n}.log.harvester.part") for n in (1, 7)
    ]

    assert code_of(await harvest(settings)) == 0

    assert [p for p in leftovers if p.exists()] == []
    assert verify(root).clean


async def test_an_old_untouched_folder_is_not_walked_again_until_a_full_check(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """After a complete sweep a long-closed day is skipped (verify still lists a file planted there);
    run --full-check walks it and removes our leftover."""
    emu, settings, planted = await first_night_over_an_old_archive(emulator_factory, tmp_path, OLD_PART)
    root = settings.archive.root
    old = root / _days_ago(400)

    assert code_of(await harvest(settings)) == 0
    assert planted.exists()  # not walked: no run writes below a day that old
    assert f"{old.name}/p/inst-0000/group/{planted.name}" in verify(root).extra  # but verify sees it

    env = cred_env(emu)
    config = write_config(tmp_path / "harvester.yaml", emu, root)
    result = await run_cli("run", "--config", config, "--no-progress", "--full-check", env=env)
    assert result.code == 0, result.output
    assert not planted.exists()


async def test_a_leftover_at_an_old_folders_top_level_is_removed_by_the_next_run(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A temporary written at an old folder's top level (a regenerated sha256 list) changes the
    folder, so the next run walks it again."""
    _, settings, planted = await first_night_over_an_old_archive(
        emulator_factory, tmp_path, ".manifest-sha256.txt.0a1b2c3d4e5f.harvester-tmp"
    )

    assert code_of(await harvest(settings)) == 0

    assert not planted.exists()


@pytest.mark.parametrize("damage", ["deleted", "garbage", "edited by hand"])
async def test_a_deleted_or_damaged_sweep_record_makes_the_next_sweep_full(
    emulator_factory: EmulatorFactory, tmp_path: Path, damage: str
) -> None:
    """Without a record it can trust, start-up walks every folder again, the old ones included."""
    _, settings, planted = await first_night_over_an_old_archive(emulator_factory, tmp_path, OLD_PART)
    record = settings.archive.root / SWEEP_STATE
    if damage == "deleted":
        record.unlink()
    elif damage == "garbage":
        record.write_text("{")
    else:
        data = json.loads(record.read_bytes())
        data["swept_on"] = "2999-01-01"
        record.write_text(json.dumps(data))

    assert code_of(await harvest(settings)) == 0

    assert not planted.exists()
    assert json.loads(record.read_bytes())["swept_on"] == datetime.now(UTC).date().isoformat()


async def test_a_manifest_torn_after_it_was_recorded_intact_is_repaired_at_the_next_start_up(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A torn tail appended to a manifest the last run found intact changes its size and mtime:
    the next run repairs it, and verify finds the archive clean."""
    emu = await emulator_factory(instances=1, seed=3, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    assert code_of(await harvest(settings)) == 0
    assert code_of(await harvest(settings)) == 0  # its start-up found last night's manifests intact
    day = _days_ago(3)
    assert day in json.loads((root / INTACT_STATE).read_bytes())["folders"]
    manifest = root / day / "manifest.jsonl"
    intact = manifest.read_bytes()
    with manifest.open("ab") as fh:
        fh.write(b'{"path": "p/torn.log", "si')

    assert code_of(await harvest(settings)) == 0

    assert manifest.read_bytes() == intact
    assert verify(root).clean


async def test_a_full_check_reads_every_folder_whatever_the_records_say(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--full-check ignores both records: a leftover in an old folder is removed, the records rewritten."""
    _, settings, planted = await first_night_over_an_old_archive(emulator_factory, tmp_path, OLD_PART)
    root = settings.archive.root

    await full_check_run(settings)

    assert not planted.exists()
    assert _days_ago(400) in json.loads((root / SWEEP_STATE).read_bytes())["folders"]
