"""Everything that shapes an emulator run, in one flat record.

Flat on purpose: tests say ``emulator_factory(instances=3, collect_delay=0.01)`` without
building nested objects. Only fault knobs are nested (:class:`Faults`), because tests
mutate them at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from .faults import Faults
from .fleet import FleetConfig

DEFAULT_ACCESS_KEY = "EMULATORAK0000000000"
DEFAULT_SECRET_KEY = "EMULATORSK00000000000000000000000000000000"
DEFAULT_USERNAME = "harvester-demo"
DEFAULT_PASSWORD = "emulator-password"
DEFAULT_DOMAIN = "emulator-domain"
DEFAULT_OBS_ACCESS_KEY = "EMULATOROBSAK0000000"
DEFAULT_OBS_SECRET_KEY = "EMULATOROBSSK000000000000000000000000000"


@dataclass(slots=True)
class EmulatorConfig:
    """Knobs of the fake cloud. Times are seconds; sizes are bytes; rates are in [0, 1]."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    # fleet
    instances: int = 12
    projects: int = 1
    region: str = "eu-de"
    mode_weights: dict[str, float] | None = None
    engine_3_rate: float = 1 / 12
    not_running_rate: float = 1 / 12
    max_shards: int = 4
    healthy: bool = False
    # credentials
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    domain: str = DEFAULT_DOMAIN
    token_lifetime: float = 86400.0
    sdk_date_skew: float = 900.0
    # run logs
    log_size: int = 256 * 1024
    log_size_jitter: float = 0.25
    quiet_rate: float = 0.1
    failed_rate: float = 0.02
    collect_delay: float = 1.0
    collect_mode: Literal["hidden", "creating"] = "hidden"
    incident_period: int = 4  # each instance has one incident day in this many (0: none); see incidents.py
    retention_days: int = 7
    # a less tidy cloud (contract section 8): nothing promises a collection's files appear
    # together, only for the days asked for, or at all
    collect_stagger: float = 0.0  # extra seconds per day back before a day's file is ready
    collect_extra_today: bool = False  # a query_time > 0 collection also lists today's partial log
    lost_rate: float = 0.0  # chance that an accepted collection produces no file for a requested day
    lost_days: set[date] = field(default_factory=set)  # days no collection ever produces a file for
    # links and OBS
    link_ttl: float = 86400.0
    bucket: str = "dcs-runlog-eu-de"
    obs_access_key: str = DEFAULT_OBS_ACCESS_KEY
    obs_secret_key: str = DEFAULT_OBS_SECRET_KEY
    # slow log
    slowlog_per_day: int = 24
    # clock
    clock_speed: float = 1.0
    clock_offset: float = 0.0
    clock_start: float | None = None
    # faults
    faults: Faults = field(default_factory=Faults)

    def fleet_config(self) -> FleetConfig:
        cfg = FleetConfig(
            instances=self.instances,
            projects=self.projects,
            seed=self.seed,
            region=self.region,
            engine_3_rate=0.0 if self.healthy else self.engine_3_rate,
            not_running_rate=0.0 if self.healthy else self.not_running_rate,
            max_shards=self.max_shards,
        )
        if self.mode_weights is not None:
            cfg.mode_weights = dict(self.mode_weights)
        return cfg
