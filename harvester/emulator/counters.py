"""What the emulator saw and did, for tests and benchmarks to assert on.

Plain counters on one mutable record: tests read them directly
(``emu.counters.requests["dcs"]``) instead of parsing logs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Counters:
    """Totals since start (or since the last :meth:`reset`).

    ``requests`` and ``statuses`` are keyed by route class (``iam``, ``dcs``, ``links``, ``obs``,
    ``unknown``); ``statuses`` uses ``"{class}:{status}"``. ``faults`` is keyed by fault kind
    (``latency``, ``error_500``, ``throttle_429``, ``rate_limit``, ``reset``, ``truncate``,
    ``stall``, ``stall_headers``, ``redirect``, ``malformed_json``, ``hostile_file_name``,
    ``hostile_link``). ``auth_failures`` is keyed by error code.
    """

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0
    collections: int = 0
    items_created: int = 0
    links_issued: int = 0
    downloads: int = 0
    bytes_served: int = 0

    def reset(self) -> None:
        for c in (self.requests, self.statuses, self.faults, self.auth_failures):
            c.clear()
        self.tokens_issued = self.collections = self.items_created = 0
        self.links_issued = self.downloads = self.bytes_served = 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy, handy for benchmark reports."""
        return {
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "faults": dict(self.faults),
            "auth_failures": dict(self.auth_failures),
            "tokens_issued": self.tokens_issued,
            "collections": self.collections,
            "items_created": self.items_created,
            "links_issued": self.links_issued,
            "downloads": self.downloads,
            "bytes_served": self.bytes_served,
        }
