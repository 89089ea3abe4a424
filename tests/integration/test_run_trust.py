"""What the nightly run trusts: only files it collected after their day ended, and no single
failure larger than one file."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harvester.app import new_run_id, open_engine
from harvester.commands.run import Nightly, NightlyOptions
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import all_entries, code_of, emulator_bytes, harvest, settings_for


async def test_a_snapshot_of_a_running_day_is_replaced_by_the_complete_log_next_night(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--include-today archives a partial log; the next night archives the whole day over it."""
    emu = await emulator_factory(instances=2, seed=7, healthy=True, log_size=64 * 1024)
    settings = settings_for(emu, tmp_path, auth="password")  # tokens survive a moved clock
    first = await harvest(settings, include_today=True)
    assert code_of(first) == 0
    today = datetime.now(UTC).date().isoformat()
    partial = {e["path"]: e for folder, e in all_entries(settings.archive.root) if folder == today}
    assert partial, "the first run archived no snapshot of today"

    # One day later, on both sides: DCS's clock and ours.
    emu.clock.advance(86400)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    async with open_engine(
        settings, new_run_id(tomorrow), progress=False, lock_name="run", lock_timeout=5.0
    ) as engine:
        engine.now = lambda: datetime.now(UTC) + timedelta(days=1)
        await Nightly(engine, NightlyOptions()).run()
        second = engine.summary
    assert code_of(second) == 0

    served = emulator_bytes(emu)
    latest = {e["path"]: e for folder, e in all_entries(settings.archive.root) if folder == today}
    assert latest.keys() == partial.keys()
    for path, entry in latest.items():
        assert entry["size"] > partial[path]["size"], f"{path} is still the snapshot"
        on_disk = (settings.archive.root / today / path).read_bytes()
        assert on_disk == served[entry["log_id"]]


async def test_a_link_request_that_keeps_failing_fails_only_its_file(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A connection reset on one link call (retries spent) fails that file; the rest is archived."""
    emu = await emulator_factory(instances=2, seed=4, healthy=True)
    emu.faults.links.fail_first = 1
    emu.faults.links.fail_first_kind = "reset"
    settings = settings_for(emu, tmp_path, extra={"limits": {"retry_attempts": 1}})

    summary = await harvest(settings)

    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    archived = [f for f in summary.files if f.outcome is Outcome.ARCHIVED]
    assert len(failed) == 1
    assert failed[0].reason.startswith("no download link")
    assert archived
    assert summary.fatal is None
    assert code_of(summary) == 1


async def test_dry_run_works_on_an_archive_it_cannot_create(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--dry-run only reads: an archive root that cannot exist does not stop it."""
    emu = await emulator_factory(instances=2, seed=4)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive's parent should be")
    settings = settings_for(emu, tmp_path, extra={"archive": {"root": str(blocker / "archive")}})

    summary = await harvest(settings, lock=False, dry_run=True)

    assert summary.fatal is None
    assert code_of(summary) == 0
    assert emu.counters.collections == 0
    assert emu.counters.links_issued == 0
    assert blocker.is_file()


async def test_obs_slowdown_waits_as_long_as_obs_asks(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """OBS answering 503 SlowDown with Retry-After 1 delays that download by a second, then it lands."""
    emu = await emulator_factory(instances=1, seed=4, healthy=True)
    emu.faults.obs.fail_first = 1
    emu.faults.obs.fail_first_kind = "throttle_429"
    emu.faults.obs.retry_after = 1
    settings = settings_for(emu, tmp_path)

    started = time.monotonic()
    summary = await harvest(settings)

    assert code_of(summary) == 0
    assert emu.counters.statuses["obs:503"] == 1
    assert time.monotonic() - started >= 1.0
