"""Files are downloaded as soon as DCS lists them ready, not after the whole instance settles.

The emulator's ``collect_stagger`` makes a collection's files appear a day at a time: yesterday's
within a second, each day further back an hour later (never, within one test). The wait for the
instance then ends only when its listing has stopped changing; what was ready before that must
already be archived by then, and the day accounting must be what it was: one outcome per needed
replica-day.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio
import structlog

from harvester.app import new_run_id, open_engine
from harvester.commands.run import Nightly, NightlyOptions
from harvester.engine import Engine
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import NOON, code_of, day, keys_of, night, settings_for
from tests.polling import eventually


async def test_a_ready_file_is_archived_while_the_other_days_are_still_waited_for(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Yesterday's files are archived before the wait for the older days ends; those stay pending."""
    emu = await emulator_factory(
        instances=1,
        seed=5,
        healthy=True,
        mode_weights={"ha": 1.0},
        clock_start=NOON.timestamp(),
        collect_delay=1.0,
        collect_stagger=3600.0,
    )
    replicas = [(i.instance_id, r.group_name, r.ip) for i in emu.fleet.instances for r in i.replicas]
    assert len(replicas) == 2
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 60}})

    with structlog.testing.capture_logs() as logs:
        summary = await night(settings, emu)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    events = [e["event"] for e in logs]
    archived_at = [i for i, e in enumerate(events) if e == "harvest.file_archived"]
    waits_ended = [i for i, e in enumerate(events) if e == "harvest.collection_incomplete"]
    assert len(archived_at) == 2, events
    assert len(waits_ended) == 2, events
    assert max(archived_at) < min(waits_ended), "a ready file waited for the whole instance to settle"

    # The accounting is unchanged: one outcome per needed replica-day, yesterday archived.
    per_day = Counter((f.group_name, f.replication_ip, f.day) for f in summary.files)
    assert set(per_day.values()) == {1}, per_day
    archived = {(f.replication_ip, f.day) for f in summary.files if f.outcome is Outcome.ARCHIVED}
    assert archived == {(ip, day(1)) for _, _, ip in replicas}
    pending = {(f.replication_ip, f.day) for f in summary.files if f.outcome is Outcome.PENDING}
    assert pending == {(ip, day(n)) for _, _, ip in replicas for n in range(2, 8)}
    assert keys_of(settings.archive.root) == {(i, g, ip, day(1).isoformat()) for i, g, ip in replicas}


async def test_a_run_stopped_after_a_ready_file_keeps_it_and_accounts_for_every_day(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Interrupted while waiting, after yesterday's files were archived: those stay archived, the
    other days are reported as interrupted, each replica-day exactly once."""
    emu = await emulator_factory(
        instances=1,
        seed=5,
        healthy=True,
        mode_weights={"ha": 1.0},
        collect_delay=0.2,
        collect_stagger=3600.0,
    )
    replicas = [(i.instance_id, r.group_name, r.ip) for i in emu.fleet.instances for r in i.replicas]
    settings = settings_for(emu, tmp_path, extra={"collect": {"wait_timeout": 600}})
    root = settings.archive.root
    box: dict[str, Engine] = {}

    async def run() -> None:
        run_id = new_run_id(datetime.now(UTC))
        async with open_engine(settings, run_id, progress=False, lock_name="run", lock_timeout=5.0) as engine:
            box["engine"] = engine
            await Nightly(engine, NightlyOptions()).run()

    yesterday = {(i, g, ip, day(1).isoformat()) for i, g, ip in replicas}
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await eventually(lambda: keys_of(root) == yesterday, what="yesterday's files archived", every=0.02)
        tg.cancel_scope.cancel()

    summary = box["engine"].summary
    per_day = Counter((f.group_name, f.replication_ip, f.day) for f in summary.files)
    assert per_day == Counter({(g, ip, day(n)): 1 for _, g, ip in replicas for n in range(1, 8)})
    archived = {(f.replication_ip, f.day) for f in summary.files if f.outcome is Outcome.ARCHIVED}
    assert archived == {(ip, day(1)) for _, _, ip in replicas}
    rest = [f for f in summary.files if f.outcome is not Outcome.ARCHIVED]
    assert {f.outcome for f in rest} == {Outcome.CANCELLED}
    assert {f.reason for f in rest} == {"run interrupted while waiting for DCS to collect"}
    assert keys_of(root) == yesterday
