"""Short-lived download links are used at once, and a link is checked again when its GET starts.

The emulator signs links with its own clock; the engine follows that clock (``helpers.night``),
and a fast emulator clock makes a download queue outlast the links' lifetime in a second or two.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import anyio
import structlog

from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import code_of, expected_keys, keys_of, night, settings_for

# Tomorrow noon: far from midnight, and ahead of our real clock, so a link's Expires (signed on
# the emulator's clock) is after the moment we received it, as a plausible Expires must be.
NOON = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(12), tzinfo=UTC)


async def test_five_minute_links_are_used_even_when_the_queue_outlasts_them(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Links living 60 s, a queue taking minutes: every file is archived, none refused, no 403."""
    emu = await emulator_factory(
        instances=2, seed=4, healthy=True, link_ttl=60, clock_start=NOON.timestamp(), clock_speed=100
    )
    emu.faults.obs.latency_ms = 150  # each download takes ~15 s on the emulator's clock
    one_at_a_time = {"limits": {"download_concurrency": 1, "per_instance_concurrency": 1}}
    settings = settings_for(emu, tmp_path, auth="password", extra=one_at_a_time)
    started = emu.clock.now()

    summary = await night(settings, emu)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    files = len(expected_keys(emu))
    assert emu.clock.now() - started > 2 * 60, "the queue did not outlast the links"
    assert keys_of(settings.archive.root) == expected_keys(emu)
    assert emu.counters.statuses["obs:403"] == 0
    # A link held ahead of its slot that had to be renewed stops the holding for the night: at
    # most that one link is wasted (holding links ahead keeps slots from waiting on link calls).
    assert files <= emu.counters.links_issued <= files + 1, "links were obtained before their turn and wasted"


async def test_a_link_held_through_a_retry_wait_is_renewed_before_its_get(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """OBS says "slow down" for longer than the link lives: the link is renewed first, never sent dead."""
    emu = await emulator_factory(
        instances=1, seed=4, healthy=True, link_ttl=120, clock_start=NOON.timestamp(), clock_speed=100
    )
    emu.faults.obs.fail_first = 1
    emu.faults.obs.fail_first_kind = "throttle_429"  # OBS answers 503 SlowDown, Retry-After 2 s
    emu.faults.obs.retry_after = 2  # 200 s on the emulator's clock: past the link's 120 s
    settings = settings_for(emu, tmp_path, auth="password")

    with structlog.testing.capture_logs() as logs:
        summary = await night(settings, emu)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    assert emu.counters.statuses["obs:503"] == 1
    assert emu.counters.statuses["obs:403"] == 0
    renewed = [e for e in logs if e["event"] == "harvest.link_renewed"]
    assert len(renewed) == 1
    assert emu.counters.links_issued == len(expected_keys(emu)) + 1
    assert keys_of(settings.archive.root) == expected_keys(emu)


async def test_links_too_short_to_wait_for_a_slot_are_obtained_inside_it_and_the_night_ends(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Links living 20 s, less than download.expiry_margin: a brand-new link already fails the
    "may it wait?" test, so links are never held ahead of a slot. The night ends (holding links
    ahead while others renewed theirs inside slots could wait in a circle), every file is
    archived, and no link is obtained only to be thrown away."""
    emu = await emulator_factory(
        instances=4, seed=4, healthy=True, link_ttl=20, clock_start=NOON.timestamp(), clock_speed=100
    )
    emu.faults.obs.latency_ms = 20  # each download ~2 s on the emulator's clock
    few_slots = {"limits": {"download_concurrency": 2, "per_instance_concurrency": 1}}
    settings = settings_for(emu, tmp_path, auth="password", extra=few_slots)

    with anyio.fail_after(120):
        summary = await night(settings, emu)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    assert keys_of(settings.archive.root) == expected_keys(emu)
    assert emu.counters.statuses["obs:403"] == 0
    assert emu.counters.links_issued == len(expected_keys(emu)), "links were obtained and wasted"
