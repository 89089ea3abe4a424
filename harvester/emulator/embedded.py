"""The harvester config's ``emulator:`` block: its knobs, their rules, and an emulator running it.

The client keeps that block opaque (a mapping); what its keys mean, their defaults and their
bounds live here, next to the emulator they shape, so fault knobs never leak into production
code. Like the rest of this package it imports nothing from the client: a problem is a
:class:`BlockError` whose text is one line naming ``emulator.<key>``, which the caller prefixes
with the config file's name.

    demo = parse_block(settings_block)          # BlockError on a bad key or value
    async with run_block(settings_block) as info:   # validates, starts, yields ready info
        ...
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from .config import EmulatorConfig
from .server import Emulator

#: Routes the demo's ``fault_rate`` and ``latency_ms`` apply to (IAM stays reliable: the demo
#: shows retries of the harvest, not of a login).
FAULTY_ROUTES = ("dcs", "links", "obs")


def _knob(default: float, *, low: float | None = None, high: float | None = None, above: bool = False) -> Any:
    """A field with its bounds: ``low`` inclusive (exclusive when ``above``), ``high`` inclusive."""
    return field(default=default, metadata={"low": low, "high": high, "above": above})


@dataclass(frozen=True, slots=True)
class Demo:
    """The ``emulator:`` block of a harvester config; every key is optional."""

    instances: int = _knob(6, low=1)  # Redis instances per project
    projects: int = _knob(1, low=1)  # emulated projects: emulated, emulated-2, ...
    seed: int = _knob(42)  # same seed, same fleet and log contents
    log_size: int = _knob(65536, low=0)  # bytes per run-log file
    collect_delay: float = _knob(0.2, low=0)  # seconds before a collected file is listed
    fault_rate: float = _knob(0.0, low=0, high=1)  # share of dcs/links/obs requests answered 500
    latency_ms: float = _knob(0.0, low=0)  # added to every dcs/links/obs response
    link_ttl: float = _knob(86400.0, low=0, above=True)  # seconds a download link lives

    def emulator_config(self) -> EmulatorConfig:
        """Keys named like an :class:`EmulatorConfig` field are that field; the two fault knobs
        apply to :data:`FAULTY_ROUTES`."""
        same = {f.name for f in fields(EmulatorConfig)} & {f.name for f in fields(self)}
        config = EmulatorConfig(**{name: getattr(self, name) for name in same})
        for route in FAULTY_ROUTES:
            config.faults.of(route).error_500_rate = self.fault_rate
            config.faults.of(route).latency_ms = self.latency_ms
        return config

    def summary(self) -> str:
        """One line for ``harvester validate``."""
        return (
            f"{self.projects} project(s) x {self.instances} instances, seed {self.seed}, "
            f"logs {self.log_size} bytes, collect delay {self.collect_delay:g} s, "
            f"fault rate {self.fault_rate:g}, latency {self.latency_ms:g} ms, links live {self.link_ttl:g} s"
        )


class BlockError(ValueError):
    """One line naming the ``emulator.<key>`` at fault and what it must be."""


_KEY_SHOWN = re.compile(r"[a-z_]{1,40}")  # a knob-shaped key is quoted; anything else is not


def _problem(value: object, kind: type, meta: Mapping[str, Any]) -> str | None:
    """What is wrong with one value, or ``None``; bools are not numbers, floats not integers."""
    got = (
        f" (got {'null' if value is None else f'{value!r:.60}'})"
        if not isinstance(value, list | dict)
        else ""
    )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be {'an integer' if kind is int else 'a number'}{got}"
    if kind is int and isinstance(value, float):
        return f"must be an integer{got}"
    if not math.isfinite(value):
        return "must be a finite number"
    low, high, above = meta["low"], meta["high"], meta["above"]
    if low is not None and (value <= low if above else value < low):
        return f"must be {'>' if above else '>='} {low:g}{got}"
    if high is not None and value > high:
        return f"must be <= {high:g}{got}"
    return None


def parse_block(block: Mapping[str, Any]) -> Demo:
    """The block's settings, or :class:`BlockError` for the first problem (counting the others)."""
    known = {f.name: f for f in fields(Demo)}
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in block.items():
        spec = known.get(str(key))
        if spec is None:
            shown = repr(str(key)) if _KEY_SHOWN.fullmatch(str(key)) else "(not shown)"
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(sorted(known))}"
            problems.append(f"emulator: unknown key {shown} ({hint})")
            continue
        kind = int if spec.type in (int, "int") else float
        wrong = _problem(value, kind, spec.metadata)
        if wrong is not None:
            problems.append(f"emulator.{spec.name}: {wrong}")
            continue
        values[spec.name] = kind(value)
    if problems:
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise BlockError(problems[0] + suffix)
    return Demo(**values)


def run_block(block: Mapping[str, Any]) -> AbstractAsyncContextManager[dict[str, Any]]:
    """Validate the block now (:class:`BlockError`), then, once entered, run an emulator for it
    and yield its ready info (endpoints, project ids, throw-away credentials)."""
    return _running(parse_block(block))


@asynccontextmanager
async def _running(demo: Demo) -> AsyncIterator[dict[str, Any]]:
    async with Emulator(demo.emulator_config()) as emu:
        yield emu.ready_info()
