"""What ``harvester logs`` prints: the byte-level fast path prints exactly what the records print."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from harvester.logs.model import Level, LogSource
from harvester.logs.output import RecordFormatter, iso_ms
from harvester.logs.parse import ParseStats
from harvester.logs.pipeline import iter_lines, iter_records
from tests import log_samples as s


def _sources(tmp_path: Path) -> list[LogSource]:
    out = []
    for i, (_, text, day) in enumerate(s.ALL_SAMPLES):
        path = s.write(tmp_path / f"s{i}.log", text)
        out.append(
            LogSource(str(path), f"inst {i % 3}", shard=f"group-{i % 2}", replica=f"10.0.0.{i}", day=day)
        )
    odd = tmp_path / "odd.log"
    odd.write_bytes(
        b"1:M 10 Jan 2024 10:00:00.000 # caf\xe9 \x00closed\r\n"
        b"1:M 10 Jan 2024 09:00:00.000 * stepped back\n"
        b"continuation \xff line\n" + b"1:M 10 Jan 2024 10:00:01.000 * " + b"y" * 70_000 + b"\n"
    )
    out.append(LogSource(str(odd), "", replica="odd", day=date(2024, 1, 10)))
    return out


@pytest.mark.parametrize(
    ("grep", "level", "window"),
    [
        (None, Level.DEBUG, None),
        (None, Level.WARNING, None),
        ("Background saving", Level.DEBUG, None),
        ("(?i)connection with (master|replica)", Level.DEBUG, None),
        ("redis_version", Level.DEBUG, None),
        ("caf", Level.DEBUG, None),
        (None, Level.DEBUG, (datetime(2019, 11, 17, tzinfo=UTC), datetime(2021, 1, 5, tzinfo=UTC))),
    ],
)
def test_fast_lines_equal_formatted_records(
    tmp_path: Path, grep: str | None, level: Level, window: tuple[datetime, datetime] | None
) -> None:
    """Every sample, bad bytes included, with and without filters: the same output, byte for byte,
    and the same counts of what was odd."""
    sources = _sources(tmp_path)
    pattern = re.compile(grep) if grep else None
    since, until = window or (None, None)
    fmt = RecordFormatter()
    slow_stats, fast_stats = ParseStats(), ParseStats()
    slow = "".join(
        fmt(r)
        for r in iter_records(
            sources,
            stats=slow_stats,
            min_level=level,
            grep=pattern,
            since=since,
            until=until,
            count_lines=False,
        )
    ).encode()
    fast = b"".join(
        iter_lines(sources, stats=fast_stats, min_level=level, grep=pattern, since=since, until=until)
    )
    assert fast == slow
    assert fast
    for key in ("records", "non_utf8", "nul", "long_lines", "out_of_order", "clock_steps"):
        assert fast_stats.total(key) == slow_stats.total(key), key


def test_iso_ms_is_utc_with_milliseconds() -> None:
    """Times print as UTC with milliseconds and a Z, like the JSON events."""
    moment = datetime(2026, 11, 27, 8, 14, 3, 117000, tzinfo=UTC)
    assert iso_ms(int(moment.timestamp() * 1000)) == "2026-11-27T08:14:03.117Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
