"""The emulator's shared state, reachable from every handler through one app key."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .clock import Clock
from .config import EmulatorConfig
from .counters import Counters
from .faults import FaultInjector, Faults
from .fleet import Fleet, build_fleet
from .iam import TokenStore
from .runlogs import RunlogStore


@dataclass(slots=True)
class EmulatorState:
    config: EmulatorConfig
    clock: Clock
    fleet: Fleet
    counters: Counters
    faults: Faults
    injector: FaultInjector
    tokens: TokenStore
    runlogs: RunlogStore
    obs_base: str = field(default="")

    @classmethod
    def build(cls, config: EmulatorConfig) -> EmulatorState:
        clock = Clock(speed=config.clock_speed, offset=config.clock_offset, start=config.clock_start)
        counters = Counters()
        return cls(
            config=config,
            clock=clock,
            fleet=build_fleet(config.fleet_config()),
            counters=counters,
            faults=config.faults,
            injector=FaultInjector(config.faults, counters, config.seed),
            tokens=TokenStore(clock=clock, lifetime=config.token_lifetime),
            runlogs=RunlogStore(config, clock, counters),
        )

    @property
    def aksk_secrets(self) -> dict[str, str]:
        return {self.config.access_key: self.config.secret_key}


STATE = web.AppKey("emulator_state", EmulatorState)
