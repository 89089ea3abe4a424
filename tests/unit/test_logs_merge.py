"""The k-way merge: one time-ordered stream across replicas, lazily, stable on ties."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from harvester.logs.merge import MERGE_BUFFER_BUDGET, block_size_for, by_lane, lane_streams, merge
from harvester.logs.model import LogRecord, LogSource
from harvester.logs.parse import ParseStats, read_records
from tests import log_samples as s


def _source(path: Path, replica: str, day: date | None, shard: str = "group-0") -> LogSource:
    return LogSource(str(path), "orders", instance_id="5560df16", shard=shard, replica=replica, day=day)


def test_records_of_several_replicas_come_out_in_time_order(tmp_path: Path) -> None:
    """The promoted replica and the other masters of the 3.2 failover interleave by time."""
    replica = _source(s.write(tmp_path / "r.log", s.V32_FAILOVER_REPLICA), "10.0.0.5", date(2016, 9, 7))
    peers = _source(
        s.write(tmp_path / "p.log", s.V32_FAILOVER_PEERS), "10.0.0.1", date(2016, 9, 7), "group-1"
    )
    stats = ParseStats()
    merged = list(merge(read_records(src, stats=stats) for src in (replica, peers)))
    assert len(merged) == s.V32_FAILOVER_REPLICA.count("\n") + s.V32_FAILOVER_PEERS.count("\n")
    assert [r.time for r in merged] == sorted(r.time for r in merged)
    # The same millisecond on both: the order the streams were given decides (stable).
    same_ms = [(r.source.replica, r.message[:20]) for r in merged if r.time.microsecond == 404000]
    assert same_ms == [
        ("10.0.0.5", "FAIL message receive"),
        ("10.0.0.5", "Cluster state change"),
        ("10.0.0.1", "Marking node 9bfa5f4"),
        ("10.0.0.1", "Cluster state change"),
    ]


def test_a_lane_reads_its_days_in_order_and_only_when_reached(tmp_path: Path) -> None:
    """A lane's files are chained day by day; a file is opened only when the merge needs it."""
    day1 = _source(
        s.write(tmp_path / "d1.log", s.V5_PARTIAL.replace("20 Nov", "21 Nov")), "10.0.0.7", date(2019, 11, 21)
    )
    day0 = _source(s.write(tmp_path / "d0.log", s.V5_PARTIAL), "10.0.0.7", date(2019, 11, 20))
    assert list(by_lane([day1, day0]).values()) == [[day0, day1]]
    opened: list[str] = []

    def open_source(source: LogSource) -> Iterator[LogRecord]:
        opened.append(Path(source.path).name)
        return read_records(source, stats=ParseStats())

    stream = merge(lane_streams([day1, day0], open_source))
    first = list(itertools.islice(stream, 3))
    assert opened == ["d0.log"]
    assert [r.time.day for r in first] == [20, 20, 20]
    rest = list(stream)
    assert opened == ["d0.log", "d1.log"]
    assert rest[-1].time.day == 21


def test_a_clock_step_stays_in_file_order_inside_the_merge(tmp_path: Path) -> None:
    """A file whose clock went back is not reordered: its records keep their file order."""
    stepped = (
        "1:M 10 Jan 2024 10:00:00.000 * a1\n"
        "1:M 10 Jan 2024 10:00:10.000 * a2\n"
        "1:M 10 Jan 2024 09:59:00.000 * a3\n"
    )
    other = "1:M 10 Jan 2024 09:59:30.000 * b1\n1:M 10 Jan 2024 10:00:05.000 * b2\n"
    a = _source(s.write(tmp_path / "a.log", stepped), "a", None)
    b = _source(s.write(tmp_path / "b.log", other), "b", None)
    merged = [r.message for r in merge(read_records(src, stats=ParseStats()) for src in (a, b))]
    assert merged == ["b1", "a1", "b2", "a2", "a3"]
    assert merged.index("a1") < merged.index("a2") < merged.index("a3")


def test_read_buffers_shrink_as_lanes_grow() -> None:
    """Many open lanes share a fixed buffer budget (never below 64 KiB each)."""
    assert block_size_for(1) == 4 << 20
    assert block_size_for(16) == MERGE_BUFFER_BUDGET // 16
    assert block_size_for(100_000) == 64 << 10
