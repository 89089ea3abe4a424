"""Event rules: every kind from real Redis lines of 1.x to 7.x, and the derived events."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from harvester.logs.events import KINDS, Interesting, event_to_dict, extract, markdown_table
from harvester.logs.merge import merge
from harvester.logs.model import Event, LogSource, Role, Severity
from harvester.logs.parse import ParseStats, read_records
from tests import log_samples as s


def _events(
    tmp_path: Path, text: str, day: date | None, *, select: bool = True, name: str = "a"
) -> list[Event]:
    path = s.write(tmp_path / f"{name}.log", text)
    source = LogSource(str(path), "orders", instance_id="5560df16", shard="group-0", replica=name, day=day)
    records = read_records(source, stats=ParseStats(), select=Interesting() if select else None)
    return list(extract(records))


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


EXPECTED: list[tuple[str, str, date, list[str]]] = [
    ("1.x start", s.V1_START, date(2010, 11, 13), ["server.start", "server.ready"]),
    (
        "2.4 master SYNC",
        s.V24_MASTER_SYNC,
        date(2012, 1, 6),
        ["replica.attached", "sync.full", "bgsave.started", "bgsave.succeeded", "sync.finished"],
    ),
    ("2.6 sentinel line", s.V26_SENTINEL, date(2013, 11, 16), ["warning"]),
    ("2.6 crash", s.V26_CRASH, date(2014, 3, 12), ["crash"]),
    (
        "2.8 replica full sync",
        s.V28_REPLICA_SYNC,
        date(2015, 8, 24),
        ["role.replica", "sync.started", "sync.full", "sync.finished"],
    ),
    ("2.8 SIGTERM", s.V28_SIGNAL, date(2016, 11, 21), ["server.shutdown", "server.stopped"]),
    (
        "3.2 start with banner",
        s.V32_START,
        date(2018, 8, 29),
        [
            "role.observed",
            "config.tcp_backlog",
            "server.start",
            "role.observed",
            "config.thp",
            "server.ready",
        ],
    ),
    (
        "3.2 cluster failover, the promoted replica",
        s.V32_FAILOVER_REPLICA,
        date(2016, 9, 7),
        [
            "role.observed",
            "master_link.lost",
            *["sync.started", "sync.failed"] * 2,
            "cluster.node_failing",
            "cluster.state_fail",
            "sync.started",
            "sync.failed",
            "cluster.election",
            "role.master",
            "failover.promoted",
            "cluster.state_ok",
        ],
    ),
    (
        "3.2 cluster failover, the other masters",
        s.V32_FAILOVER_PEERS,
        date(2016, 9, 7),
        ["role.observed", "cluster.node_failing", "cluster.state_fail", "cluster.vote", "cluster.state_ok"],
    ),
    ("3.2 crash report", s.V32_CRASH, date(2016, 9, 7), ["role.observed", "bgsave.succeeded", "crash"]),
    (
        "4.0 BGSAVE for SYNC fails, then works",
        s.V4_MASTER_SYNC_FAIL,
        date(2020, 6, 5),
        [
            "role.observed",
            "sync.full",
            "bgsave.started",
            "disk.error",
            "bgsave.failed",
            "replica.lost",
            "sync.failed",
            "replica.attached",
            "sync.full",
            "bgsave.started",
            "bgsave.succeeded",
            "sync.finished",
            "replica.lost",
        ],
    ),
    (
        "4.0 start",
        s.V4_START,
        date(2020, 1, 21),
        ["server.start", "role.observed", "config.tcp_backlog", "config.overcommit", "server.ready"],
    ),
    (
        "4.0 fork failures",
        s.V4_FORK_FAIL,
        date(2019, 4, 3),
        ["role.observed", "bgsave.succeeded", "bgsave.fork_failed", "bgsave.fork_failed"],
    ),
    (
        "4.0 SLAVE OF, then MASTER MODE",
        s.V4_SLAVEOF,
        date(2019, 3, 3),
        ["role.replica", "sync.full", "role.master"],
    ),
    (
        "5.0 master side full sync",
        s.V5_MASTER_SYNC,
        date(2019, 11, 17),
        [
            "role.observed",
            "replica.attached",
            "sync.full",
            "bgsave.started",
            "bgsave.succeeded",
            "sync.finished",
        ],
    ),
    (
        "5.0 replica side full sync",
        s.V5_REPLICA_SYNC,
        date(2019, 11, 17),
        ["role.replica", "sync.started", "sync.full", "sync.finished"],
    ),
    (
        "5.0 replica partial resync",
        s.V5_PARTIAL,
        date(2019, 11, 20),
        ["role.observed", "master_link.lost", "sync.started", "sync.partial", "master_link.restored"],
    ),
    (
        "5.0 master partial resync and a replica timing out",
        s.V5_MASTER_PARTIAL,
        date(2019, 11, 20),
        ["role.observed", "replica.attached", "sync.partial", "replica.lost"],
    ),
    (
        "6.0 sentinel promotes a replica",
        s.V6_SENTINEL_PROMOTION,
        date(2021, 1, 4),
        [
            "role.observed",
            "master_link.lost",
            "sync.started",
            "sync.failed",
            "failover.promoted",
            "role.master",
        ],
    ),
    (
        "6.0 the old master returns and is demoted",
        s.V6_OLD_MASTER_RETURNS,
        date(2021, 1, 4),
        [
            "role.observed",
            "bgsave.succeeded",
            "server.unclean_restart",
            "server.start",
            "role.observed",
            "server.ready",
            "role.replica",
            "failover.demoted",
        ],
    ),
    (
        "6.2 output buffer limits",
        s.V6_BUFFER_LIMIT,
        date(2021, 5, 12),
        ["role.observed", "replica.lost", "client.output_buffer_limit"],
    ),
    (
        "6.2 diskless sync",
        s.V6_DISKLESS,
        date(2021, 5, 12),
        [
            "role.observed",
            "replica.attached",
            "sync.full",
            "bgsave.started",
            "bgsave.succeeded",
            "sync.finished",
        ],
    ),
    (
        "7.2 start",
        s.V7_START,
        date(2024, 3, 19),
        ["config.overcommit", "server.start", "role.observed", "warning", "server.ready"],
    ),
    (
        "7.2 shutdown via the signal handler",
        s.V7_SHUTDOWN,
        date(2025, 8, 25),
        ["role.observed", "server.ready", "server.shutdown", "server.stopped"],
    ),
    (
        "7.2 failed shutdown",
        s.V7_SHUTDOWN_FAILED,
        date(2024, 2, 2),
        ["role.observed", "server.shutdown", "disk.error", "server.shutdown_failed"],
    ),
    ("7.2 security", s.V7_SECURITY, date(2023, 11, 27), ["role.observed", "security.attack"]),
    (
        "7.2 AOF",
        s.V7_AOF,
        date(2024, 1, 10),
        [
            "role.observed",
            "aof.rewrite_started",
            "aof.rewrite_finished",
            "aof.fsync_slow",
            "aof.fork_failed",
            "aof.rewrite_started",
            "aof.rewrite_failed",
            "disk.error",
        ],
    ),
    (
        "7.2 BGSAVE child killed",
        s.V7_BGSAVE_KILLED,
        date(2024, 1, 10),
        ["role.observed", "bgsave.started", "bgsave.failed"],
    ),
    ("7.2 out of memory", s.V7_OOM, date(2024, 1, 10), ["role.observed", "memory.oom", "crash"]),
    ("7.2 assertion", s.V7_ASSERT, date(2024, 1, 10), ["role.observed", "crash"]),
    (
        "7.2 configuration",
        s.V7_CONFIG,
        date(2024, 1, 10),
        ["role.observed", "memory.maxmemory", "config.open_files", "config.open_files"],
    ),
    ("7.2 load failure", s.V7_LOAD_FAILED, date(2024, 1, 10), ["role.observed", "server.load_failed"]),
    (
        "7.2 cluster replica",
        s.V7_CLUSTER_REPLICA,
        date(2024, 1, 10),
        ["role.observed", "cluster.node_recovered", "cluster.manual_failover", "cluster.failover_blocked"],
    ),
    (
        "7.2 cluster demotes a returning master",
        s.V7_CLUSTER_DEMOTED,
        date(2024, 1, 10),
        ["role.observed", "bgsave.succeeded", "role.replica", "failover.demoted", "sync.started"],
    ),
    (
        "7.2 replica loses its master",
        s.V7_REPLICA_FAILS,
        date(2024, 1, 10),
        ["role.observed", "master_link.lost", "sync.started", "sync.failed", "sync.failed", "sync.failed"],
    ),
]


@pytest.mark.parametrize(("title", "text", "day", "kinds"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_real_logs_yield_their_events(
    tmp_path: Path, title: str, text: str, day: date, kinds: list[str]
) -> None:
    """Each real log excerpt yields exactly the events an on-call engineer would name."""
    assert _kinds(_events(tmp_path, text, day)) == kinds


@pytest.mark.parametrize(
    ("version", "text", "day"), s.ALL_SAMPLES, ids=[f"{v}-{i}" for i, (v, _, _) in enumerate(s.ALL_SAMPLES)]
)
def test_the_raw_line_selector_loses_no_event(tmp_path: Path, version: str, text: str, day: date) -> None:
    """Reading only the lines the selector keeps gives the same events as reading every line."""
    fast = _events(tmp_path, text, day, select=True)
    full = _events(tmp_path, text, day, select=False)
    assert [(e.kind, e.line, e.summary, e.role) for e in fast] == [
        (e.kind, e.line, e.summary, e.role) for e in full
    ]


def _storm(tmp_path: Path) -> list[Event]:
    lines = "".join(
        f"1:M 12 May 2021 15:{m:02d}:00.000 * Full resync requested by replica 10.0.0.7:6379\n"
        for m in (0, 3, 6, 8, 30)
    )
    return _events(tmp_path, lines, date(2021, 5, 12), name="storm")


def test_every_kind_is_produced_by_some_real_line(tmp_path: Path) -> None:
    """The samples (plus a resync storm built from real lines) exercise every documented kind."""
    seen: set[str] = set()
    for i, (_, text, day) in enumerate(s.ALL_SAMPLES):
        seen.update(_kinds(_events(tmp_path, text, day, name=f"s{i}")))
    seen.update(_kinds(_storm(tmp_path)))
    assert seen == set(KINDS)


def test_resync_storm_is_reported_once_per_window(tmp_path: Path) -> None:
    """Three full resyncs within 10 minutes: one storm event; the fourth adds none."""
    events = _storm(tmp_path)
    storms = [e for e in events if e.kind == "sync.resync_storm"]
    assert len(storms) == 1
    assert storms[0].time.minute == 6
    assert storms[0].severity is Severity.CRITICAL
    assert storms[0].details["count"] == "3"
    assert storms[0].summary == "3 full resyncs within 10 min"


def test_failover_needs_the_promotion_soon_after_the_link_loss(tmp_path: Path) -> None:
    """Link lost then master 6 minutes later is a promotion but not a failover."""
    text = (
        "1:S 04 Jan 2021 22:00:00.000 # Connection with master lost.\n"
        "1:M 04 Jan 2021 22:06:00.000 * MASTER MODE enabled (user request from "
        "'id=8 addr=127.0.0.1:58073 fd=9 name= age=30 idle=0 flags=N db=0 cmd=replicaof user=default')\n"
    )
    assert _kinds(_events(tmp_path, text, None)) == ["role.observed", "master_link.lost", "role.master"]
    promoted = [e for e in _events(tmp_path, s.V6_SENTINEL_PROMOTION, None) if e.kind == "failover.promoted"]
    assert promoted[0].details == {"link_lost_at": "2021-01-04T22:17:28.100Z", "seconds": "31.588"}


def test_unclean_restart_only_without_a_logged_end(tmp_path: Path) -> None:
    """A restart after a shutdown or a crash is clean; after silence it is unclean, with the
    time the old process last wrote."""
    killed = s.V7_SHUTDOWN.split("1:signal-handler")[0] + s.V7_START.replace("19 Mar 2024", "26 Aug 2025")
    events = _events(tmp_path, killed, None, name="killed")
    unclean = [e for e in events if e.kind == "server.unclean_restart"]
    assert len(unclean) == 1
    assert unclean[0].details == {"last_seen": "2025-08-25T19:11:32.188Z"}
    assert unclean[0].line == 5  # the new process's start line (its overcommit warning came first)

    clean = s.V7_SHUTDOWN + s.V7_START.replace("19 Mar 2024", "26 Aug 2025")
    assert "server.unclean_restart" not in _kinds(_events(tmp_path, clean, None, name="clean"))
    after_crash = s.V7_OOM + s.V7_START.replace("19 Mar 2024", "10 Jan 2024")
    assert "server.unclean_restart" not in _kinds(_events(tmp_path, after_crash, None, name="crash"))


def test_crash_report_lines_make_no_extra_events(tmp_path: Path) -> None:
    """A crash report's many ``#`` lines are one crash, not a flood of warnings."""
    events = _events(tmp_path, s.V32_CRASH, date(2016, 9, 7))
    crash = next(e for e in events if e.kind == "crash")
    assert crash.summary == "crashed by signal 11"
    assert crash.details == {"version": "3.2.3", "signal": "11"}
    assert "warning" not in _kinds(events)


def test_benign_warnings_and_c_lines_make_no_events(tmp_path: Path) -> None:
    """``Server initialized``, ``Configuration loaded``... are routine; ``C`` lines say no role."""
    text = (
        "1:C 21 Jan 17:16:28.735 # Configuration loaded\n"
        "1:M 21 Jan 17:16:28.739 # Server initialized\n"
        "1:M 21 Jan 17:16:29.000 # configEpoch set to 8 after successful failover\n"
        "77:C 21 Jan 17:20:00.000 * DB saved on disk\n"
    )
    assert _kinds(_events(tmp_path, text, date(2020, 1, 21))) == ["role.observed"]


def test_unknown_warnings_stay_visible(tmp_path: Path) -> None:
    """A ``#`` line no rule knows is a ``warning`` event with the message as summary."""
    text = (
        "1:M 27 Jul 2026 19:56:29.842 # WARNING: Redis does not require authentication and is not "
        "protected by network restrictions. Redis will accept connections from any IP address on any "
        "network interface.\n"
    )
    events = _events(tmp_path, text, None)
    assert _kinds(events) == ["role.observed", "warning"]
    assert events[1].summary.startswith("WARNING: Redis does not require authentication")
    assert len(events[1].summary) <= 200


def test_roles_and_fields_of_events(tmp_path: Path) -> None:
    """Events carry the replica's role at that moment, the file and line, and details."""
    events = _events(tmp_path, s.V32_FAILOVER_REPLICA, date(2016, 9, 7))
    election = next(e for e in events if e.kind == "cluster.election")
    promoted = next(e for e in events if e.kind == "role.master")
    assert (election.role, promoted.role) == (Role.REPLICA, Role.MASTER)
    data = event_to_dict(promoted)
    assert data == {
        "time": "2016-09-07T11:25:45.386Z",
        "kind": "role.master",
        "severity": "warning",
        "instance": "orders",
        "instance_id": "5560df16",
        "shard": "group-0",
        "replica": "a",
        "role": "master",
        "summary": "became master (won the cluster failover election)",
        "file": str(tmp_path / "a.log"),
        "line": 16,
        "details": {},
    }


def test_merged_lanes_keep_their_own_memory(tmp_path: Path) -> None:
    """Two replicas in one merged stream: each keeps its own link and role state."""
    a = s.write(tmp_path / "a.log", s.V32_FAILOVER_REPLICA)
    b = s.write(tmp_path / "b.log", s.V32_FAILOVER_PEERS)
    streams = [
        read_records(
            LogSource(str(path), "c", shard="g", replica=path.stem, day=date(2016, 9, 7)), stats=ParseStats()
        )
        for path in (a, b)
    ]
    events = list(extract(merge(streams)))
    promoted = [e for e in events if e.kind == "failover.promoted"]
    assert [e.source.replica for e in promoted] == ["a"]
    assert {e.role for e in events if e.source.replica == "b"} == {Role.MASTER}


def test_the_readme_table_lists_every_kind() -> None:
    """The generated table names every kind, so the README cannot miss one."""
    table = markdown_table()
    for kind in KINDS:
        assert f"`{kind}`" in table
