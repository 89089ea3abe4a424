"""Run-log collections: which files a collection creates, and when they become downloadable.

Collection is asynchronous, like the real service: a POST records items that are ready
``collect_delay`` later (on real monotonic time, or earlier if the emulator clock is moved
past that point). Item contents are decided at creation and never change, so an item's
size, bytes and ETag are stable while today's *next* collection sees a bigger file.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .clock import Clock
from .config import EmulatorConfig
from .counters import Counters
from .fleet import Instance, Replica
from .incidents import plan_day, redis_version
from .logs import LogSpec

_HOSTILE_NAMES = (
    "../../../../etc/cron.d/redis_{ip}_{day}.log",
    "/etc/passwd",
    "redis_{ip}_{day}.log\x00.sh",
    "..",
    "redis_{ip}_{day}_" + "A" * 300 + ".log",
    "..\\..\\..\\windows\\redis_{ip}_{day}.log",
    "redis_{ip}_{day}.log/../../../../tmp/escaped.log",
    "~/.ssh/authorized_keys",
)


@dataclass(frozen=True, slots=True)
class RunlogItem:
    """One collected file. Its status is derived from time, never stored."""

    id: str
    project_id: str
    instance_id: str
    replica: Replica
    day: date
    file_name: str
    spec: LogSpec
    ready_at: float
    ready_mono: float
    fails: bool
    hostile: bool

    def is_ready(self, now: float) -> bool:
        return now >= self.ready_at or time.monotonic() >= self.ready_mono

    def status(self, now: float) -> str:
        if not self.is_ready(now):
            return "creating"
        return "failed" if self.fails else "succeed"

    @property
    def object_key(self) -> str:
        """OBS key; only URL-safe characters, whatever the (possibly hostile) file name."""
        safe = self.file_name if _is_safe(self.file_name) else "redis.log"
        return f"{self.project_id}/{self.instance_id}/{self.id}/{safe}"


def _is_safe(name: str) -> bool:
    return 0 < len(name) <= 128 and all(c.isalnum() or c in "._-" for c in name) and name not in (".", "..")


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class RunlogStore:
    def __init__(self, config: EmulatorConfig, clock: Clock, counters: Counters) -> None:
        self._cfg = config
        self._clock = clock
        self._counters = counters
        self._rng = random.Random(f"runlogs-{config.seed}")
        self._items: dict[str, RunlogItem] = {}

    def days_for(self, query_time: int) -> list[date]:
        """0 = today only; N > 0 = the N days before today, oldest first.

        With ``collect_extra_today``, N > 0 also yields today's partial log: a file for a day
        that was not asked for (one reading of contract section 8).
        """
        today = self._clock.today()
        if query_time == 0:
            return [today]
        days = [today - timedelta(days=n) for n in range(query_time, 0, -1)]
        return [*days, today] if self._cfg.collect_extra_today else days

    def is_lost(self, day: date) -> bool:
        """Whether this collection silently produces nothing for ``day`` (accepted, never done)."""
        if day in self._cfg.lost_days:
            return True
        return self._cfg.lost_rate > 0 and self._rng.random() < self._cfg.lost_rate

    def is_quiet(self, replica: Replica, day: date) -> bool:
        return _unit(self._cfg.seed, "quiet", replica.ip, day) < self._cfg.quiet_rate

    def full_size(self, replica: Replica, day: date) -> int:
        jitter = self._cfg.log_size_jitter * (2 * _unit(self._cfg.seed, "size", replica.ip, day) - 1)
        return max(1, int(self._cfg.log_size * (1 + jitter)))

    def spec_for(self, instance: Instance, replica: Replica, day: date) -> LogSpec:
        """The bytes a file for (replica, day) has right now; today's grows with the clock."""
        full = self.full_size(replica, day)
        size = full
        if day == self._clock.today():
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            fraction = min(1.0, max(0.0, (self._clock.now() - start) / 86400))
            size = max(min(full, 512), int(full * fraction))
        group = next(g for g in instance.groups if g.group_name == replica.group_name)
        peers = [r.ip for r in group.replicas if r.ip != replica.ip] or [instance.ip]
        return LogSpec(
            seed=self._cfg.seed,
            ip=replica.ip,
            day=day,
            size=size,
            full_size=full,
            role=replica.role,
            peer_ip=peers[0],
            version=redis_version(instance.engine_version),
            incidents=plan_day(self._cfg.seed, instance, day, self._cfg.incident_period),
            started=day <= instance.created_at.date(),  # else it has been running since before midnight
        )

    def collect(self, instance: Instance, replica: Replica, query_time: int) -> list[RunlogItem]:
        self._counters.collections += 1
        now, oldest = self._clock.now(), self._clock.today() - timedelta(days=self._cfg.retention_days)
        created = []
        for day in self.days_for(query_time):
            if day < oldest or self.is_quiet(replica, day) or self.is_lost(day):
                continue
            item = self._new_item(instance, replica, day, now)
            self._items[item.id] = item
            created.append(item)
        self._counters.items_created += len(created)
        return created

    def _new_item(self, instance: Instance, replica: Replica, day: date, now: float) -> RunlogItem:
        item_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        hostile_cfg = self._cfg.faults.hostile
        hostile = hostile_cfg.file_name_rate > 0 and self._rng.random() < hostile_cfg.file_name_rate
        fails = self._cfg.failed_rate > 0 and self._rng.random() < self._cfg.failed_rate
        if hostile:
            self._counters.faults["hostile_file_name"] += 1
            name = self._rng.choice(_HOSTILE_NAMES).format(ip=replica.ip, day=day.isoformat())
        else:
            name = f"redis_{replica.ip}_{day.isoformat()}.log"
        # Staggered appearance: the file for a day further back is ready later.
        back = max(0, (self._clock.today() - day).days - 1)
        delay = self._cfg.collect_delay + self._cfg.collect_stagger * back
        return RunlogItem(
            id=item_id,
            project_id=instance.project_id,
            instance_id=instance.instance_id,
            replica=replica,
            day=day,
            file_name=name,
            spec=self.spec_for(instance, replica, day),
            ready_at=now + delay,
            ready_mono=time.monotonic() + delay,
            fails=fails,
            hostile=hostile,
        )

    def expired(self, item: RunlogItem) -> bool:
        """Past retention: the file is gone from the listing and its id is unknown."""
        return item.day < self._clock.today() - timedelta(days=self._cfg.retention_days)

    def listed(self, instance: Instance) -> list[RunlogItem]:
        """What the list call shows now, oldest collection first (stable while paging).

        Retention is applied, and unready items are hidden in ``hidden`` mode.
        """
        now = self._clock.now()
        hide = self._cfg.collect_mode == "hidden"
        return [
            item
            for item in self._items.values()
            if item.instance_id == instance.instance_id
            and item.project_id == instance.project_id
            and not self.expired(item)
            and not (hide and not item.is_ready(now))
        ]

    def get(self, item_id: str) -> RunlogItem | None:
        return self._items.get(item_id)

    def all_items(self) -> list[RunlogItem]:
        return list(self._items.values())
