"""Known sets of events and role spans for the timeline page tests and its bench."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from harvester.logs.model import Event, LogSource, Role, RoleSpan, Severity

DAY = datetime(2024, 3, 15, tzinfo=UTC)
HOSTILE = "</script><img src=x onerror=\"window.__pwned=1\"> & 'quoted' <b>bold</b> \u2028 \ud800"


def source(instance: str, shard: str, ip: str, instance_id: str = "") -> LogSource:
    return LogSource(
        path=f"archive/eu-de/{instance}/2024-03-15/redis_{ip}_2024-03-15.log",
        instance=instance,
        instance_id=instance_id or f"id-{instance}",
        shard=shard,
        replica=ip,
        day=DAY.date(),
    )


def known_set() -> tuple[list[Event], list[RoleSpan], list[LogSource]]:
    """Two instances, 6 replicas; a failover on one shard; 12 events at least an hour apart per lane."""
    a0m, a0r = (
        source("redis-prod-orders-01", "group-0", "192.168.0.10"),
        source("redis-prod-orders-01", "group-0", "192.168.0.11"),
    )
    a1m, a1r = (
        source("redis-prod-orders-01", "group-1", "192.168.1.10"),
        source("redis-prod-orders-01", "group-1", "192.168.1.11"),
    )
    b_m, b_r = (
        source("redis-stage-cart-05", "group-0", "192.168.9.20"),
        source("redis-stage-cart-05", "group-0", "192.168.9.21"),
    )
    lanes = [a0m, a0r, a1m, a1r, b_m, b_r]
    end = DAY + timedelta(days=1)
    fail, back = DAY + timedelta(hours=13, minutes=29), DAY + timedelta(hours=15)
    spans = [
        RoleSpan(a0m, Role.MASTER, DAY, end),
        RoleSpan(a0r, Role.REPLICA, DAY, end),
        RoleSpan(a1m, Role.MASTER, DAY, fail),
        RoleSpan(a1m, Role.DOWN, fail, fail + timedelta(seconds=40)),
        RoleSpan(a1m, Role.REPLICA, fail + timedelta(seconds=40), back),
        RoleSpan(a1m, Role.MASTER, back, end),
        RoleSpan(a1r, Role.REPLICA, DAY, fail + timedelta(seconds=6)),
        RoleSpan(a1r, Role.MASTER, fail + timedelta(seconds=6), back),
        RoleSpan(a1r, Role.REPLICA, back, end),
        RoleSpan(b_m, Role.MASTER, DAY, end),
        RoleSpan(b_r, Role.UNKNOWN, DAY, DAY + timedelta(hours=2)),
        RoleSpan(b_r, Role.REPLICA, DAY + timedelta(hours=2), end),
    ]

    def ev(
        src: LogSource, hour: float, kind: str, sev: Severity, role: Role, summary: str, line: int
    ) -> Event:
        return Event(
            DAY + timedelta(hours=hour), kind, sev, src, role, summary, line, {"peer": "192.168.1.10"}
        )

    events = [
        ev(a0m, 1, "bgsave.started", Severity.INFO, Role.MASTER, "Background saving started by pid 42", 10),
        ev(a0m, 5, "bgsave.ok", Severity.INFO, Role.MASTER, "Background saving terminated with success", 20),
        ev(
            a0r,
            2,
            "sync.finished",
            Severity.INFO,
            Role.REPLICA,
            "MASTER <-> REPLICA sync: Finished with success",
            30,
        ),
        ev(
            a1r,
            13.3,
            "link.master_lost",
            Severity.WARNING,
            Role.REPLICA,
            "Connection with master lost.",
            400,
        ),
        ev(a1r, 13.51, "failover", Severity.CRITICAL, Role.MASTER, "failover: promoted to master", 410),
        ev(
            a1m,
            13.6,
            "role.replica",
            Severity.WARNING,
            Role.REPLICA,
            "Reconfiguring myself as a replica",
            500,
        ),
        ev(
            a1m,
            15,
            "role.master",
            Severity.WARNING,
            Role.MASTER,
            "Failover election won: I'm the new master.",
            600,
        ),
        ev(
            b_m, 3, "bgsave.fork_failed", Severity.CRITICAL, Role.MASTER, "Can't save in background: fork", 70
        ),
        ev(
            b_m,
            9,
            "aof.fsync_slow",
            Severity.WARNING,
            Role.MASTER,
            "Asynchronous AOF fsync is taking too long",
            80,
        ),
        ev(b_r, 4, "server.start", Severity.INFO, Role.UNKNOWN, "Redis is starting", 1),
        ev(b_r, 12, "warning", Severity.WARNING, Role.REPLICA, HOSTILE, 99),
        ev(b_r, 20, "server.shutdown", Severity.INFO, Role.REPLICA, "User requested shutdown...", 120),
    ]
    return events, spans, lanes


#: (kind, severity, weight): mostly routine, some warnings, rare critical events, as real logs go.
KINDS = (
    ("bgsave.started", Severity.INFO, 25),
    ("bgsave.ok", Severity.INFO, 25),
    ("aof.rewrite_started", Severity.INFO, 10),
    ("aof.rewrite_done", Severity.INFO, 10),
    ("sync.started", Severity.INFO, 10),
    ("sync.finished", Severity.INFO, 10),
    ("config.warning", Severity.WARNING, 4),
    ("replica.lost", Severity.WARNING, 2),
    ("link.master_lost", Severity.WARNING, 2),
    ("bgsave.fork_failed", Severity.CRITICAL, 2),
)


def large_window(
    replicas: int = 50, days: int = 7, per_replica_day: int = 60, seed: int = 1
) -> tuple[list[Event], list[RoleSpan]]:
    """``replicas`` lanes (shards of two) over ``days`` days, ``per_replica_day`` events each, outages."""
    rng = random.Random(seed)
    events: list[Event] = []
    spans: list[RoleSpan] = []
    start, end = DAY, DAY + timedelta(days=days)
    for r in range(replicas):
        inst, shard = f"redis-prod-app-{r // 10:02d}", f"group-{(r % 10) // 2}"
        src = source(inst, shard, f"10.0.{r // 10}.{10 + r % 10}")
        role = Role.MASTER if r % 2 == 0 else Role.REPLICA
        t = start
        for d in range(days):
            if (r + d) % 7 == 0:  # one lane in seven has an outage that day
                cut = start + timedelta(days=d, hours=rng.uniform(1, 22))
                spans.append(RoleSpan(src, role, t, cut))
                spans.append(RoleSpan(src, Role.DOWN, cut, cut + timedelta(seconds=45)))
                t = cut + timedelta(seconds=45)
        spans.append(RoleSpan(src, role, t, end))
        weights = [w for _, _, w in KINDS]
        for kind, sev, _ in rng.choices(KINDS, weights, k=per_replica_day * days):
            when = start + timedelta(milliseconds=rng.randrange(days * 86_400_000))
            events.append(
                Event(when, kind, sev, src, role, f"{kind} on {src.replica}", rng.randrange(1, 90000))
            )
    return events, spans
