"""Fault injection: what can go wrong, per route class, and the seeded dice that decide it.

Knobs are plain mutable dataclasses so a test can change them mid-run
(``emu.faults.links.error_500_rate = 0.2``); the :class:`FaultInjector` reads them on every
request. Route classes: ``iam`` (token issue), ``dcs`` (every DCS call except links),
``links`` (the link call), ``obs`` (downloads).

Most knobs are faults in the strict sense; a few (``content_encoding``, ``omit_content_length``,
``redirect_hops``) are legitimate OBS behaviours our own reading does not produce by default,
here so that the client can be held to what contract section 8 leaves open.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Literal

from .counters import Counters

ROUTE_CLASSES = ("iam", "dcs", "links", "obs")
FaultKind = Literal["error_500", "throttle_429", "reset", "rate_limit", "stall_headers"]


@dataclass(slots=True)
class RouteFaults:
    """Fault knobs for one route class. Rates are probabilities in [0, 1] per request."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_500_rate: float = 0.0
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    malformed_json_rate: float = 0.0
    truncate_rate: float = 0.0
    stall_rate: float = 0.0  # OBS: the body stops halfway for stall_seconds
    stall_seconds: float = 5.0
    header_stall_rate: float = 0.0  # any class: accept the request, send nothing for stall_seconds
    retry_after: float = 1.0
    retry_after_http_date: bool = False
    fail_first: int = 0
    fail_first_kind: Literal["error_500", "throttle_429", "reset", "stall_headers"] = "error_500"
    rate_limit_rps: float | None = None
    # OBS only: how objects are served.
    content_encoding: str = ""  # "gzip", "deflate" (zlib), "deflate-raw"; other values: header only
    omit_content_length: bool = False  # chunked transfer encoding, no Content-Length
    redirect_hops: int = 0  # answer each GET with this many 307s before serving it
    redirect_base: str = ""  # where the 307s point (scheme://host:port); "" = this emulator


@dataclass(slots=True)
class HostileConfig:
    """A hostile cloud: run-log file names that attack paths, links that point elsewhere."""

    file_name_rate: float = 0.0
    link_rate: float = 0.0
    link_base: str = "http://evil.example.invalid"


@dataclass(slots=True)
class Faults:
    iam: RouteFaults = field(default_factory=RouteFaults)
    dcs: RouteFaults = field(default_factory=RouteFaults)
    links: RouteFaults = field(default_factory=RouteFaults)
    obs: RouteFaults = field(default_factory=RouteFaults)
    hostile: HostileConfig = field(default_factory=HostileConfig)

    def of(self, route_class: str) -> RouteFaults:
        if route_class not in ROUTE_CLASSES:
            raise KeyError(route_class)
        result: RouteFaults = getattr(self, route_class)
        return result

    def clear(self) -> None:
        """Back to a healthy cloud, keeping the same objects tests may hold references to."""
        for name in ROUTE_CLASSES:
            _reset_slots(self.of(name))
        self.hostile.file_name_rate = self.hostile.link_rate = 0.0


def _reset_slots(knobs: RouteFaults) -> None:
    fresh = RouteFaults()
    for name in RouteFaults.__slots__:
        setattr(knobs, name, getattr(fresh, name))


@dataclass(frozen=True, slots=True)
class Decision:
    kind: FaultKind
    retry_after: str | None = None


class FaultInjector:
    """Rolls the dice for each request, deterministically for a given seed and request order."""

    def __init__(self, faults: Faults, counters: Counters, seed: int) -> None:
        self.faults = faults
        self.counters = counters
        self._rng = random.Random(f"faults-{seed}")
        self._seen: dict[str, int] = dict.fromkeys(ROUTE_CLASSES, 0)
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def latency_seconds(self, route_class: str) -> float:
        knobs = self.faults.of(route_class)
        extra = self._rng.random() * knobs.latency_jitter_ms if knobs.latency_jitter_ms > 0 else 0.0
        return max(0.0, knobs.latency_ms + extra) / 1000

    def before(self, route_class: str, project: str) -> Decision | None:
        """The fault (if any) that replaces this request's normal handling."""
        knobs = self.faults.of(route_class)
        self._seen[route_class] += 1
        if self._seen[route_class] <= knobs.fail_first:
            return self._decision(knobs.fail_first_kind, knobs)
        if knobs.rate_limit_rps is not None and self._over_rate(route_class, project, knobs.rate_limit_rps):
            return self._decision("rate_limit", knobs)
        if self.chance(knobs.reset_rate):
            return self._decision("reset", knobs)
        if self.chance(knobs.error_500_rate):
            return self._decision("error_500", knobs)
        if self.chance(knobs.throttle_rate):
            return self._decision("throttle_429", knobs)
        if self.chance(knobs.header_stall_rate):
            return self._decision("stall_headers", knobs)
        return None

    def reset_first_k(self) -> None:
        """Start counting ``fail_first`` again, e.g. after changing it mid-test."""
        self._seen = dict.fromkeys(ROUTE_CLASSES, 0)

    def _decision(self, kind: FaultKind, knobs: RouteFaults) -> Decision:
        self.counters.faults[kind] += 1
        retry_after = None
        if kind in ("throttle_429", "rate_limit"):
            retry_after = retry_after_value(knobs.retry_after, http_date=knobs.retry_after_http_date)
        return Decision(kind=kind, retry_after=retry_after)

    def _over_rate(self, route_class: str, project: str, rps: float) -> bool:
        """Sliding one-second window per (route class, project), on real monotonic time."""
        now = time.monotonic()
        window = self._windows.setdefault((route_class, project), deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= rps:
            return True
        window.append(now)
        return False


def retry_after_value(seconds: float, *, http_date: bool) -> str:
    """Seconds as an integer string, or an HTTP-date on real wall time (what the client compares to)."""
    if http_date:
        return formatdate(time.time() + seconds, usegmt=True)
    return str(max(0, round(seconds)))
