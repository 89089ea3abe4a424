"""An incident bundle that holds a known failover: collected from the emulator on the failover's day."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from harvester.emulator import EmulatorConfig, Instance, build_fleet
from harvester.emulator.incidents import Incident, plan_day
from tests.collect_helpers import CollectRun, collect_in_process, projects_of, write_config
from tests.emulator_sigv import EmulatorFactory

SEED = 1
BASE_DAY = date(2030, 1, 1)
DATA_BLOCK = re.compile(r'<script type="application/json" id="timeline-data">(.*?)</script>', re.S)


@dataclass(frozen=True, slots=True)
class FailoverBundle:
    run: CollectRun
    instance: Instance
    incident: Incident


def find_failover(*, cluster: bool) -> tuple[Instance, Incident]:
    """The first collectable instance-day of the default test fleet with a failover of that kind."""
    fleet = build_fleet(EmulatorConfig(seed=SEED, instances=12).fleet_config())
    for n in range(120):
        day = BASE_DAY + timedelta(days=n)
        for inst in fleet.instances:
            if not inst.collectable:
                continue
            for inc in plan_day(SEED, inst, day):
                if inc.kind == "failover" and inc.cluster == cluster:
                    return inst, inc
    raise AssertionError("no failover in 120 days of the test fleet")


async def failover_bundle(
    emulator_factory: EmulatorFactory, tmp_path: Path, *, cluster: bool
) -> FailoverBundle:
    """``collect`` of the failing instance late on the failover's day (today's log then holds it all)."""
    inst, inc = find_failover(cluster=cluster)
    late = datetime(inc.day.year, inc.day.month, inc.day.day, 23, 40, tzinfo=UTC)
    # The emulator lives on that day; the harvester signs with the real time: accept the skew.
    emu = await emulator_factory(seed=SEED, clock_start=late.timestamp(), sdk_date_skew=1e10)
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emu))
    run = await collect_in_process(config, [inst.name], slowlog=False)
    assert run.exit_code == 0, run.summary
    return FailoverBundle(run, inst, inc)


def page_data(html: Path) -> dict[str, Any]:
    """The JSON block a timeline page draws from."""
    match = DATA_BLOCK.search(html.read_text(encoding="utf-8"))
    assert match is not None, "no data block in the page"
    data: dict[str, Any] = json.loads(match[1])
    return data


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
