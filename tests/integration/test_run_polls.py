"""How often a collection's listing is looked at: as often as there is something to see.

Every look is an API call that counts against the project's request rate, shared with every
other instance of the night; so the looks follow the evidence (``plan.next_poll``): a first
look no sooner than this run's collections have ever shown a file, and no early looks while
all a replica's files are in and only a quiet day keeps the wait going. The waits themselves
end exactly as before: these tests check both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog

from harvester import plan
from harvester.app import new_run_id, open_engine
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import NOON, code_of, day, night, settings_for


async def test_a_replica_missing_only_a_quiet_day_is_looked_at_again_at_its_deadline(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """All files in, one day never produced: one look sees them, the next is the deadline's."""
    emu = await emulator_factory(
        instances=1,
        seed=3,
        healthy=True,
        mode_weights={"single": 1.0},
        clock_start=NOON.timestamp(),
        collect_delay=0.2,
        lost_days={day(3)},
    )
    settings = settings_for(
        emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 60, "poll_interval": 5}}
    )

    with structlog.testing.capture_logs() as logs:
        summary = await night(settings, emu)

    assert code_of(summary) == 0
    assert {f.day for f in summary.files if f.outcome is Outcome.PENDING} == {day(3)}
    assert {f.day for f in summary.files if f.outcome is Outcome.ARCHIVED} == {
        day(n) for n in (1, 2, 4, 5, 6, 7)
    }
    # The listing before the collection, the look that finds the files, the look at the
    # deadline; the early schedule would have added one more look in between.
    assert emu.counters.listings == 3
    # ... and the wait was not shortened: the listing stayed unchanged for the settle floor.
    ended = [e for e in logs if e["event"] == "harvest.collection_incomplete"]
    assert [e["why"] for e in ended] == ["settled"]
    assert ended[0]["waited"] >= plan.FIRST_POLL + plan.SETTLE_FLOOR


async def test_a_collection_is_first_looked_at_when_the_runs_collections_have_shown_files(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The second instance's first look waits as long as the first instance's files took."""
    emu = await emulator_factory(
        instances=2, seed=3, healthy=True, mode_weights={"single": 1.0}, collect_delay=0.8
    )
    settings = settings_for(emu, tmp_path, extra={"collect": {"wait_timeout": 60, "poll_interval": 5}})
    looks: list[int] = []
    async with open_engine(
        settings, new_run_id(datetime.now(UTC)), progress=False, lock_name=None, lock_timeout=5.0
    ) as engine:
        for target in await engine.resolver.targets():
            _, replicas = await engine.resolver.topology(target)
            before = {lf.log_id for lf in await engine.collector.listing(target, replicas)}
            for replica in replicas:
                await engine.collector.request(replica, 1)
            start = emu.counters.listings
            collected = await engine.collector.wait(
                target, dict.fromkeys(replicas, frozenset({day(1)})), before, replicas=replicas
            )
            looks.append(emu.counters.listings - start)
            assert set(collected.ended.values()) == {plan.WaitEnd.COMPLETE}

    # The first wait looks at FIRST_POLL (nothing yet) and again once the files are in; the
    # second knows now that a collection takes that long, and finds its files at its first look.
    assert looks == [2, 1]
