"""A faithful fake of OTC DCS v2 + IAM + OBS, for the demo, the integration tests and benchmarks.

It re-implements the wire contract (``/work/shared/dcs-api.md``) with aiohttp.web and the
standard library only, and never imports the client's code: a misreading of the contract
on one side shows up as a failure on the other.

Public surface::

    async with Emulator(EmulatorConfig(instances=8, collect_delay=0.05)) as emu:
        emu.dcs_endpoint, emu.iam_endpoint, emu.project_ids, emu.access_key, ...
        emu.faults.links.error_500_rate = 0.2
        emu.clock.advance(86400)
        emu.counters.links_issued
"""

from __future__ import annotations

from .clock import Clock
from .config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USERNAME,
    EmulatorConfig,
)
from .counters import Counters
from .faults import Faults, HostileConfig, RouteFaults
from .fleet import Fleet, FleetConfig, Group, Instance, Project, Replica, build_fleet
from .logs import LogSpec
from .runlogs import RunlogItem
from .server import Emulator, build_app, start_emulator

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_DOMAIN",
    "DEFAULT_PASSWORD",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_USERNAME",
    "Clock",
    "Counters",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "Fleet",
    "FleetConfig",
    "Group",
    "HostileConfig",
    "Instance",
    "LogSpec",
    "Project",
    "Replica",
    "RouteFaults",
    "RunlogItem",
    "build_app",
    "build_fleet",
    "start_emulator",
]
