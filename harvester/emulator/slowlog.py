"""Deterministic slow-log entries per instance, generated per UTC day on demand.

An entry depends only on (seed, instance, day, index), so the same query gives the same
answer across restarts and the window simply slides as the emulator clock moves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from .fleet import Instance

DAY_MS = 86_400_000
_COMMANDS = (
    "KEYS *",
    "HGETALL user:{n}",
    "ZRANGEBYSCORE leaderboard 0 +inf WITHSCORES",
    "SMEMBERS tags:{n}",
    "LRANGE queue:jobs 0 -1",
    "EVAL <script> 1 lock:orders:{n}",
    "SCAN 0 MATCH session:* COUNT 1000",
    "MGET product:{n} product:{m} product:{n}{m}",
    "DEL bigkey:{n}",
    "SUNIONSTORE tmp:{n} tags:{n} tags:{m}",
)


@dataclass(frozen=True, slots=True)
class SlowlogEntry:
    id: int
    command: str
    start_ms: int
    duration_ms: int
    shard_name: str
    database_id: int
    username: str

    def as_json(self) -> dict[str, object]:
        when = datetime.fromtimestamp(self.start_ms / 1000, tz=UTC)
        return {
            "id": self.id,
            "command": self.command,
            "start_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": str(self.duration_ms),
            "shard_name": self.shard_name,
            "database_id": self.database_id,
            "username": self.username,
        }


def entries_for_day(seed: int, instance: Instance, day_number: int, per_day: int) -> list[SlowlogEntry]:
    rng = random.Random(f"slowlog-{seed}-{instance.instance_id}-{day_number}")
    out = []
    for i in range(per_day):
        group = instance.groups[rng.randrange(len(instance.groups))]
        n, m = rng.randrange(10_000), rng.randrange(100)
        out.append(
            SlowlogEntry(
                id=day_number * 100_000 + i,
                command=rng.choice(_COMMANDS).format(n=n, m=m),
                start_ms=day_number * DAY_MS + rng.randrange(DAY_MS),
                duration_ms=int(10 + rng.expovariate(1 / 40)),
                shard_name=group.group_name,
                database_id=0 if rng.random() < 0.8 else rng.randrange(1, 16),
                username=rng.choice(("default", "default", "app", "admin")),
            )
        )
    return out


def query(
    seed: int, instance: Instance, *, per_day: int, start_ms: int, end_ms: int, now_ms: int
) -> list[SlowlogEntry]:
    """Entries with ``start_ms <= t <= min(end_ms, now)``, unsorted."""
    end_ms = min(end_ms, now_ms)
    found: list[SlowlogEntry] = []
    for day_number in range(start_ms // DAY_MS, end_ms // DAY_MS + 1):
        found.extend(
            e
            for e in entries_for_day(seed, instance, day_number, per_day)
            if start_ms <= e.start_ms <= end_ms
        )
    return found
