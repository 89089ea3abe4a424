"""The emulator's seeded incidents: planned per instance-day, scripted on both sides, size-independent."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from harvester.emulator import EmulatorConfig, Instance, build_fleet
from harvester.emulator.clock import Clock
from harvester.emulator.counters import Counters
from harvester.emulator.incidents import KINDS, Incident, node_id, plan_day
from harvester.emulator.logs import LogSpec
from harvester.emulator.runlogs import RunlogStore

DAY0 = date(2024, 3, 10)
LINE = re.compile(r"(\d+):([CMS]) \d\d \w{3} \d{4} (\d\d):(\d\d):(\d\d)\.(\d{3}) ([*#]) (.*)")


def _store(seed: int = 42) -> tuple[RunlogStore, tuple[Instance, ...]]:
    cfg = EmulatorConfig(seed=seed, instances=12, healthy=True)
    clock = Clock(start=datetime(2030, 1, 1, tzinfo=UTC).timestamp(), speed=0)
    return RunlogStore(cfg, clock, Counters()), build_fleet(cfg.fleet_config()).instances


def _find(
    instances: tuple[Instance, ...], kind: str, *, cluster: bool | None = None
) -> tuple[Instance, Incident]:
    for n in range(60):
        day = DAY0 + timedelta(days=n)
        for inst in instances:
            for inc in plan_day(42, inst, day):
                if inc.kind == kind and (cluster is None or inc.cluster == cluster):
                    return inst, inc
    raise AssertionError(f"no {kind} in 60 days")


def _log(store: RunlogStore, inst: Instance, ip: str, day: date) -> list[tuple[int, str, str]]:
    """(ms of day, role letter, 'L message') of every line of ``ip``'s file for ``day``."""
    replica = next(r for r in inst.replicas if r.ip == ip)
    out = []
    for raw in store.spec_for(inst, replica, day).read_all().decode().splitlines():
        if not raw.strip():
            continue
        m = LINE.fullmatch(raw.rstrip())
        assert m, raw
        ms = ((int(m[3]) * 60 + int(m[4])) * 60 + int(m[5])) * 1000 + int(m[6])
        out.append((ms, m[2], f"{m[7]} {m[8]}"))
    return out


def _first(lines: list[tuple[int, str, str]], needle: str, after: int = -1) -> tuple[int, str, str]:
    return next(x for x in lines if needle in x[2] and x[0] > after)


def test_one_incident_day_in_four_per_instance_and_every_kind_appears() -> None:
    """Each instance has exactly one incident day in any 4 consecutive days, and all kinds occur."""
    _, instances = _store()
    kinds: Counter[str] = Counter()
    for inst in instances:
        days = [DAY0 + timedelta(days=n) for n in range(28)]
        hits = [d for d in days if plan_day(42, inst, d)]
        assert len(hits) == 7
        assert all((b - a).days == 4 for a, b in itertools.pairwise(hits))
        kinds.update(inc.kind for d in hits for inc in plan_day(42, inst, d))
        assert plan_day(42, inst, hits[0]) == plan_day(42, inst, hits[0])
        assert plan_day(42, inst, hits[0], period=0) == ()
    assert set(kinds) == set(KINDS)


def test_cluster_failover_seen_from_both_sides_at_the_same_moments() -> None:
    """The promoted replica wins the election right after losing its master; the old master follows it."""
    store, instances = _store()
    inst, inc = _find(instances, "failover", cluster=True)
    old, new = _log(store, inst, inc.subject, inc.day), _log(store, inst, inc.peer, inc.day)
    lost = _first(new, "Connection with master lost.", after=inc.at_ms - 1)
    assert lost[0] == inc.at_ms
    won = _first(new, "Failover election won: I'm the new master.")
    epoch = _first(new, "configEpoch set to")
    assert lost[0] < won[0] < lost[0] + 10_000
    assert epoch[0] == won[0]
    assert "Cluster state changed: fail" in _first(new, "Cluster state changed: fail")[2]
    assert _first(new, "Starting a failover election for epoch")[0] < won[0]
    demoted = _first(old, f"Reconfiguring myself as a replica of {node_id(42, inc.peer)}")
    assert won[0] < demoted[0] < won[0] + 60_000
    assert _first(old, f"Connection with replica {inc.peer}:6379 lost.")[1] == "M"
    # The other shards' masters vote for the promoted replica, in their own files.
    voter = _log(store, inst, inc.other_masters[0], inc.day)
    vote = _first(voter, f"Failover auth granted to {node_id(42, inc.peer)}")
    assert won[0] - 10 <= vote[0] <= won[0]
    # Roles: the promoted replica writes M after the election, the old master S after its demotion,
    # and the planned switch back restores the fleet's roles before the day ends.
    assert {x[1] for x in new if won[0] < x[0] < demoted[0]} <= {"M", "C"}
    back = _first(old, "Manual failover user request accepted.")
    assert {x[1] for x in old if demoted[0] < x[0] < back[0]} <= {"S", "C"}
    assert new[-1][1] in {"S", "C"}
    assert old[-1][1] in {"M", "C"}


def test_ha_failover_master_mode_and_replicaof_agree() -> None:
    """Without Redis Cluster the controller promotes with REPLICAOF NO ONE and repoints the old master."""
    store, instances = _store()
    inst, inc = _find(instances, "failover", cluster=False)
    old, new = _log(store, inst, inc.subject, inc.day), _log(store, inst, inc.peer, inc.day)
    lost = _first(new, "Connection with master lost.", after=inc.at_ms - 1)
    promoted = _first(new, "MASTER MODE enabled (user request from 'id=")
    assert lost[0] < promoted[0]
    assert promoted[1] == "M"
    repointed = _first(old, f"REPLICAOF {inc.peer}:6379 enabled (user request from")
    assert promoted[0] < repointed[0]
    assert repointed[1] == "S"
    asked = _first(new, f"Replica {inc.subject}:6379 asks for synchronization")
    assert asked[0] > repointed[0]
    assert _first(old, "MASTER <-> REPLICA sync: Finished with success")[0] > asked[0]


def test_each_kind_logs_redis_own_messages_in_order() -> None:
    """Fork failure, slow fsync, full resync and restart each show their real Redis lines."""
    store, instances = _store()
    inst, fork = _find(instances, "fork_failure")
    lines = _log(store, inst, fork.subject, fork.day)
    failed = _first(lines, "# Can't save in background: fork: Cannot allocate memory")
    assert failed[0] == fork.at_ms
    assert _first(lines, "Background saving started by pid", after=failed[0])[0] >= failed[0] + 5000

    inst, aof = _find(instances, "slow_fsync")
    lines = _log(store, inst, aof.subject, aof.day)
    slow = [x for x in lines if "Asynchronous AOF fsync is taking too long (disk is busy?)" in x[2]]
    assert len(slow) >= 4
    assert slow[0][0] > aof.at_ms

    inst, sync = _find(instances, "full_resync")
    master, replica = _log(store, inst, sync.peer, sync.day), _log(store, inst, sync.subject, sync.day)
    asked = _first(master, f"* Full resync requested by replica {sync.subject}:6379")
    assert _first(master, "* Starting BGSAVE for SYNC with target: disk")[0] < asked[0]
    assert _first(replica, "* Partial resynchronization not possible (no cached master)")[0] < asked[0]
    done = [
        x for x in replica if "MASTER <-> REPLICA sync: Finished with success" in x[2] and x[0] > asked[0]
    ]
    assert done

    inst, restart = _find(instances, "restart")
    lines = _log(store, inst, restart.subject, restart.day)
    bye = _first(lines, "# Redis is now ready to exit, bye bye...")
    start = next(x for x in lines if "Redis is starting" in x[2] and x[0] > 0)
    assert _first(lines, "# User requested shutdown...")[0] == restart.at_ms < bye[0] < start[0]
    assert not [x for x in lines if bye[0] < x[0] < start[0]]  # down: nothing at all is logged


def test_script_lines_do_not_depend_on_file_size_and_today_stays_a_prefix() -> None:
    """A failover's lines carry the same times in a 16 KiB, 256 KiB and 3 MiB file; growth stays a prefix."""
    _, instances = _store()
    _inst, inc = _find(instances, "failover", cluster=True)
    seen = []
    for size in (16 * 1024, 256 * 1024, 3 * 1024 * 1024):
        spec = LogSpec(42, inc.peer, inc.day, size, size, role="slave", peer_ip=inc.subject, incidents=(inc,))
        text = spec.read_all().decode()
        seen.append([ln.rstrip() for ln in text.splitlines() if "failover" in ln])
        part = LogSpec(
            42, inc.peer, inc.day, size // 3, size, role="slave", peer_ip=inc.subject, incidents=(inc,)
        )
        chunk = part.read_all()
        assert chunk[:-1] == text.encode()[: len(chunk) - 1]
    assert seen[0] == seen[1] == seen[2]
    assert len(seen[0]) >= 3


def test_etag_changes_with_the_incidents() -> None:
    """A file with an incident has another ETag than the same file without it."""
    _, instances = _store()
    _, inc = _find(instances, "restart")
    plain = LogSpec(42, inc.subject, inc.day, 65536, 65536)
    assert plain.etag() != LogSpec(42, inc.subject, inc.day, 65536, 65536, incidents=(inc,)).etag()
