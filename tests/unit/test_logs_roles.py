"""Role spans: each replica's role over time, from its events, clipped to the window."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from harvester.logs.events import Interesting, extract
from harvester.logs.model import Event, LogSource, RoleSpan
from harvester.logs.parse import ParseStats, read_records
from harvester.logs.roles import role_spans
from tests import log_samples as s


def _events(tmp_path: Path, text: str, day: date | None, name: str = "a") -> list[Event]:
    path = s.write(tmp_path / f"{name}.log", text)
    source = LogSource(str(path), "orders", shard="group-0", replica=name, day=day)
    return list(extract(read_records(source, stats=ParseStats(), select=Interesting())))


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _hms(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S.%f")[:12]


def _plain(spans: list[RoleSpan]) -> list[tuple[str, str, str]]:
    return [(sp.role.value, _hms(sp.start), _hms(sp.end)) for sp in spans]


def test_a_promoted_replica_goes_from_unknown_to_replica_to_master(tmp_path: Path) -> None:
    """The 3.2 failover: unknown until the first line, replica, then master at the election."""
    events = _events(tmp_path, s.V32_FAILOVER_REPLICA, date(2016, 9, 7))
    spans = role_spans(events, start=_t("2016-09-07T11:00:00"), end=_t("2016-09-07T12:00:00"))
    assert _plain(spans) == [
        ("unknown", "11:00:00.000", "11:25:38.271"),
        ("replica", "11:25:38.271", "11:25:45.386"),
        ("master", "11:25:45.386", "12:00:00.000"),
    ]


def test_shutdown_is_down_until_the_next_start(tmp_path: Path) -> None:
    """SIGTERM makes the replica down; the next start makes it unknown until its prefix says master."""
    text = s.V7_SHUTDOWN + s.V7_START.replace("19 Mar 2024", "25 Aug 2025").replace("17:51", "19:20")
    events = _events(tmp_path, text, None)
    spans = role_spans(events, start=_t("2025-08-25T19:00:00"), end=_t("2025-08-25T20:00:00"))
    assert _plain(spans) == [
        ("unknown", "19:00:00.000", "19:11:32.188"),
        ("master", "19:11:32.188", "19:13:34.000"),
        ("down", "19:13:34.000", "19:20:23.756"),  # from the SIGTERM to the start line
        ("master", "19:20:23.756", "20:00:00.000"),  # its first M line came at once
    ]
    assert spans[2].start == datetime.fromtimestamp(1756149214, UTC)


def test_a_failed_shutdown_gives_the_role_back(tmp_path: Path) -> None:
    """``Error trying to save the DB, can't exit``: the master is still master."""
    spans = role_spans(
        _events(tmp_path, s.V7_SHUTDOWN_FAILED, None),
        start=_t("2024-02-02T08:59:00"),
        end=_t("2024-02-02T09:01:00"),
    )
    assert _plain(spans) == [
        ("unknown", "08:59:00.000", "09:00:00.000"),
        ("down", "09:00:00.000", "09:00:00.002"),
        ("master", "09:00:00.002", "09:01:00.000"),
    ]


def test_an_unclean_restart_is_down_from_the_last_line_of_the_old_process(tmp_path: Path) -> None:
    """The old master went silent at 22:17:20 and restarted at 22:18:40: down in between."""
    events = _events(tmp_path, s.V6_OLD_MASTER_RETURNS, date(2021, 1, 4))
    spans = role_spans(events, start=_t("2021-01-04T22:17:00"), end=_t("2021-01-04T22:20:00"))
    assert _plain(spans) == [
        ("unknown", "22:17:00.000", "22:17:20.000"),
        ("down", "22:17:20.000", "22:18:40.001"),
        ("unknown", "22:18:40.001", "22:18:40.003"),
        ("master", "22:18:40.003", "22:18:50.312"),
        ("replica", "22:18:50.312", "22:20:00.000"),
    ]


def test_events_before_the_window_set_the_entry_role_and_later_ones_are_ignored(tmp_path: Path) -> None:
    """A window opening after the promotion starts as master; nothing after ``end`` counts."""
    events = _events(tmp_path, s.V32_FAILOVER_REPLICA, date(2016, 9, 7))
    spans = role_spans(events, start=_t("2016-09-07T11:25:40"), end=_t("2016-09-07T11:25:44"))
    assert _plain(spans) == [("replica", "11:25:40.000", "11:25:44.000")]


def test_every_lane_gets_its_own_spans(tmp_path: Path) -> None:
    """Two replicas, one merged event list: spans per lane, sorted by lane."""
    events = _events(tmp_path, s.V32_FAILOVER_REPLICA, date(2016, 9, 7), "b") + _events(
        tmp_path, s.V32_FAILOVER_PEERS, date(2016, 9, 7), "a"
    )
    events.sort(key=lambda e: e.time)
    spans = role_spans(events, start=_t("2016-09-07T11:25:00"), end=_t("2016-09-07T11:26:00"))
    assert [(sp.source.replica, sp.role.value) for sp in spans] == [
        ("a", "unknown"),
        ("a", "master"),
        ("b", "unknown"),
        ("b", "replica"),
        ("b", "master"),
    ]
