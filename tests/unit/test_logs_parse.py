"""The log parser: every Redis line format, continuation lines, and every kind of bad input."""

from __future__ import annotations

import gzip
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from harvester.logs.model import Level, LogRecord, LogSource, Role
from harvester.logs.parse import MAX_LINE, FileStats, ParseStats, literal_of, read_records
from tests import log_samples as s


def _read(path: Path, day: date | None = None, **options: object) -> tuple[list[LogRecord], FileStats]:
    stats = ParseStats()
    source = LogSource(str(path), "inst", shard="group-0", replica="10.0.0.1", day=day)
    records = list(read_records(source, stats=stats, **options))  # type: ignore[arg-type]
    return records, stats.files[0]


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --------------------------------------------------------------------------- formats


def test_redis5_and_later_lines_with_year_pid_role_and_milliseconds(tmp_path: Path) -> None:
    """``pid:role DD Mon YYYY HH:MM:SS.mmm L msg``: every field read, the year from the line."""
    path = s.write(tmp_path / "a.log", s.V5_MASTER_SYNC)
    records, stats = _read(path, date(2019, 11, 17))
    first = records[0]
    assert first.time == _utc(2019, 11, 17, 16, 29, 12, 606000)
    assert (first.pid, first.role, first.level) == (1, Role.MASTER, Level.NOTICE)
    assert first.message == "Replica 192.168.112.1:6381 asks for synchronization"
    assert first.line == 1
    assert not first.time_from_day
    child = records[4]
    assert (child.pid, child.role, child.message) == (21, Role.CHILD, "DB saved on disk")
    assert len(records) == 8
    assert stats.unparsed == 0
    assert not stats.warnings()


def test_redis3_and_4_lines_take_their_year_from_the_log_day(tmp_path: Path) -> None:
    """No year in the line: it comes from the file's day, and the record says so."""
    path = s.write(tmp_path / "a.log", s.V4_MASTER_SYNC_FAIL)
    records, _ = _read(path, date(2020, 6, 5))
    assert records[0].time == _utc(2020, 6, 5, 3, 31, 6, 728000)
    assert records[0].time_from_day
    assert [r.role for r in records[:3]] == [Role.MASTER, Role.MASTER, Role.CHILD]
    assert records[3].level == Level.WARNING


def test_redis2_bracket_pid_lines_with_and_without_milliseconds(tmp_path: Path) -> None:
    """``[pid] DD Mon HH:MM:SS[.mmm] L msg`` (2.6-2.8 with ms, 2.4 without): no role letter."""
    with_ms, _ = _read(s.write(tmp_path / "28.log", s.V28_REPLICA_SYNC), date(2015, 8, 24))
    assert with_ms[6].time == _utc(2015, 8, 24, 19, 13, 55, 662000)
    assert with_ms[6].pid == 4611
    assert with_ms[6].role == Role.UNKNOWN
    no_ms, _ = _read(s.write(tmp_path / "24.log", s.V24_MASTER_SYNC), date(2012, 1, 6))
    assert no_ms[0].time == _utc(2012, 1, 6, 13, 56, 58)
    assert no_ms[0].message == "Slave ask for synchronization"
    assert [r.pid for r in no_ms] == [11523, 11523, 11523, 22855, 11523, 11523]


def test_redis1_lines_without_pid_and_all_four_levels(tmp_path: Path) -> None:
    """``DD Mon HH:MM:SS L msg`` (1.x) parses; levels ``. - * #`` map to debug..warning."""
    text = s.V1_START + "13 Nov 10:57:00 # Background saving error\n"
    records, _ = _read(s.write(tmp_path / "1.log", text), date(2010, 11, 13))
    assert [r.pid for r in records] == [None] * 5
    assert [r.level for r in records] == [
        Level.NOTICE,
        Level.NOTICE,
        Level.VERBOSE,
        Level.DEBUG,
        Level.WARNING,
    ]
    assert records[0].message == "Server started, Redis version 1.2.6"


def test_signal_handler_lines_take_unix_time_and_warning_level(tmp_path: Path) -> None:
    """``pid:signal-handler (unixtime)`` (3+) and ``[pid | signal handler] (unixtime)`` (2.8)."""
    records, _ = _read(s.write(tmp_path / "7.log", s.V7_SHUTDOWN), date(2025, 8, 25))
    handler = records[3]
    assert handler.time == datetime.fromtimestamp(1756149214, UTC)
    assert (handler.pid, handler.level, handler.message) == (
        1,
        Level.WARNING,
        "Received SIGTERM scheduling shutdown...",
    )
    old, _ = _read(s.write(tmp_path / "28.log", s.V28_SIGNAL), date(2016, 11, 21))
    assert old[0].time == datetime.fromtimestamp(1479710114, UTC)
    assert old[0].pid == 11633
    assert old[0].message == "Received SIGTERM, scheduling shutdown..."


def test_banner_and_crash_report_lines_are_continuations_of_the_record_before(tmp_path: Path) -> None:
    """The ASCII-art banner and a crash report's raw lines attach to the record before them."""
    records, stats = _read(s.write(tmp_path / "start.log", s.V32_START), date(2018, 8, 29))
    assert records[0].message.startswith("Increased maximum number of open files")
    assert any("Redis 3.2.12 (00000000/0) 64 bit" in line for line in records[0].continuation)
    assert len(records[0].continuation) == 14  # the art, without its blank line
    assert stats.blank == 1
    assert stats.unparsed == 0
    crash, stats = _read(s.write(tmp_path / "crash.log", s.V32_CRASH), date(2016, 9, 7))
    assert crash[0].continuation == ("=== REDIS BUG REPORT START: Cut & paste starting from here ===",)
    failed_assertion = crash[4]
    assert "------ STACK TRACE ------" in failed_assertion.continuation
    assert "redis_version:3.2.3" in failed_assertion.continuation
    assert crash[5].message == ""  # "13738:M ... # " before the register dump
    assert crash[5].continuation == ("RAX:0000000000000000 RBX:00007fc159bb2d80",)
    assert crash[-1].continuation[-1] == "  Suspect RAM error? Use redis-server --test-memory to verify it."


def test_lines_before_the_first_record_are_counted_as_unparsed(tmp_path: Path) -> None:
    """A file starting mid-crash-report: those lines belong to no record, and are counted."""
    text = "Backtrace:\n./redis-server *:7002(main+0x370)[0x427220]\n" + s.V5_MASTER_SYNC
    records, stats = _read(s.write(tmp_path / "a.log", text), date(2019, 11, 17))
    assert stats.unparsed == 2
    assert records[0].line == 3
    assert "2 line(s) in no known format before the first record" in stats.warnings()


def test_windows_line_endings_are_stripped(tmp_path: Path) -> None:
    """``\\r\\n`` endings do not leak into messages."""
    path = tmp_path / "crlf.log"
    path.write_bytes(s.V5_MASTER_SYNC.replace("\n", "\r\n").encode())
    records, _ = _read(path, date(2019, 11, 17))
    assert records[0].message == "Replica 192.168.112.1:6381 asks for synchronization"


# --------------------------------------------------------------------------- clocks and years


def test_a_log_crossing_new_year_gets_both_years_from_its_day(tmp_path: Path) -> None:
    """Lines of 31 Dec and 1 Jan in one file land in two years, whichever day names the file."""
    text = (
        "1:M 31 Dec 23:59:59.900 * Background saving started by pid 7\n"
        "1:M 01 Jan 00:00:00.100 * DB saved on disk\n"
    )
    path = s.write(tmp_path / "ny.log", text)
    for day in (date(2025, 12, 31), date(2026, 1, 1)):
        records, stats = _read(path, day)
        assert [r.time for r in records] == [
            _utc(2025, 12, 31, 23, 59, 59, 900000),
            _utc(2026, 1, 1, 0, 0, 0, 100000),
        ]
        assert stats.out_of_order == 0


def test_without_a_day_the_year_comes_from_the_file_and_rolls_over(tmp_path: Path) -> None:
    """A bare file with no day in its name: the file's year, moving on when Dec turns to Jan."""
    text = "1:M 30 Dec 10:00:00.000 * a\n1:M 02 Jan 10:00:00.000 * b\n"
    path = s.write(tmp_path / "plain.log", text)
    stamp = datetime(2024, 12, 31, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    records, _ = _read(path, None)
    assert [r.time.date() for r in records] == [date(2024, 12, 30), date(2025, 1, 2)]


def test_instance_clock_zone_is_converted_to_utc(tmp_path: Path) -> None:
    """``tz``: lines in Europe/Berlin become UTC (CET +1 in winter, CEST +2 in summer)."""
    text = "1:M 15 Jan 2024 12:00:00.000 * winter\n1:M 15 Jul 2024 12:00:00.000 * summer\n"
    records, _ = _read(s.write(tmp_path / "tz.log", text), None, tz=ZoneInfo("Europe/Berlin"))
    assert [r.time for r in records] == [_utc(2024, 1, 15, 11), _utc(2024, 7, 15, 10)]


def test_an_impossible_date_is_not_a_record(tmp_path: Path) -> None:
    """``31 Feb`` cannot be a time: the line is a continuation, not a record with a wrong time."""
    text = "1:M 10 Feb 2024 10:00:00.000 * ok\n1:M 31 Feb 2024 10:00:00.000 * impossible\n"
    records, _ = _read(s.write(tmp_path / "feb.log", text), None)
    assert len(records) == 1
    assert records[0].continuation == ("1:M 31 Feb 2024 10:00:00.000 * impossible",)


# --------------------------------------------------------------------------- bad input


def test_clock_step_back_keeps_file_order_and_flags_the_records(tmp_path: Path) -> None:
    """Times that go back stay in file order, flagged ``out_of_order`` and counted."""
    text = (
        "1:M 10 Jan 2024 10:00:00.000 * a\n"
        "1:M 10 Jan 2024 10:00:05.000 * b\n"
        "1:M 10 Jan 2024 09:00:00.000 * after the step\n"
        "1:M 10 Jan 2024 09:00:01.000 * still behind\n"
        "1:M 10 Jan 2024 10:00:06.000 * caught up\n"
    )
    records, stats = _read(s.write(tmp_path / "step.log", text), None)
    assert [r.message for r in records] == ["a", "b", "after the step", "still behind", "caught up"]
    assert [r.out_of_order for r in records] == [False, False, True, True, False]
    assert (stats.out_of_order, stats.clock_steps) == (2, 1)
    assert "clock stepped back 1 time(s)" in stats.warnings()


def test_binary_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """An RDB (binary, NUL bytes) is not parsed: it is reported as skipped, not crashed on."""
    path = tmp_path / "dump.log"
    path.write_bytes(
        b"REDIS0009\xfa\tredis-ver\x056.2.6\xfa\nredis-bits\xc0@\x00\x00\xff" + bytes(range(256)) * 8
    )
    records, stats = _read(path)
    assert records == []
    assert stats.skipped.startswith("binary content")
    assert stats.warnings() == [f"not read: {stats.skipped}"]


def test_non_utf8_lines_are_kept_with_replacement_characters_and_counted(tmp_path: Path) -> None:
    """Latin-1 bytes in a message: the record stays, shown with U+FFFD, and is counted."""
    path = tmp_path / "latin1.log"
    path.write_bytes(
        b"1:M 10 Jan 2024 10:00:00.000 # Client name caf\xe9 closed\n1:M 10 Jan 2024 10:00:01.000 * ok\n"
    )
    records, stats = _read(path)
    assert records[0].message == "Client name caf\ufffd closed"
    assert stats.non_utf8 == 1
    assert len(records) == 2


def test_a_multi_megabyte_line_is_cut_and_counted_in_bounded_memory(tmp_path: Path) -> None:
    """A 6 MB line (no newline inside the read buffer) is cut at MAX_LINE; the next line parses."""
    path = tmp_path / "long.log"
    with path.open("wb") as fh:
        fh.write(b"1:M 10 Jan 2024 10:00:00.000 # Client id=1 " + b"x" * (6 << 20) + b"\n")
        fh.write(b"1:M 10 Jan 2024 10:00:01.000 * next\n")
    records, stats = _read(path, block_size=256 << 10)
    assert [r.message[:12] for r in records] == ["Client id=1 ", "next"]
    assert len(records[0].message) < MAX_LINE
    assert stats.long_lines == 1
    assert records[1].line == 2
    inside, stats = _read(path, block_size=16 << 20)  # fits the buffer: cut when decoded
    assert len(inside[0].message) <= MAX_LINE
    assert stats.long_lines == 1


def test_empty_file_is_reported(tmp_path: Path) -> None:
    """An empty file yields nothing and says it was empty."""
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    records, stats = _read(path)
    assert records == []
    assert stats.empty
    assert "empty file" in stats.warnings()


def test_truncated_last_line_is_kept_and_reported(tmp_path: Path) -> None:
    """A last line without its newline (a log being written, a torn copy) still counts."""
    path = tmp_path / "torn.log"
    path.write_bytes(b"1:M 10 Jan 2024 10:00:00.000 * a\n1:M 10 Jan 2024 10:00:01.000 * half a mess")
    records, stats = _read(path)
    assert [r.message for r in records] == ["a", "half a mess"]
    assert stats.truncated_last_line
    assert "last line has no newline (truncated?)" in stats.warnings()


def test_nul_bytes_a_crash_left_are_removed_and_the_record_kept(tmp_path: Path) -> None:
    """A run of NULs (a crash-torn page) before a line: stripped, counted, the record parsed."""
    path = tmp_path / "nul.log"
    path.write_bytes(
        b"1:M 10 Jan 2024 10:00:00.000 * before\n" + b"\x00" * 300 + b"1:M 10 Jan 2024 10:00:05.000 * after\n"
    )
    records, stats = _read(path)
    assert [r.message for r in records] == ["before", "after"]
    assert stats.nul == 1


def test_gzipped_logs_are_read_transparently(tmp_path: Path) -> None:
    """A ``.log.gz`` (rotated by hand) reads like the plain file."""
    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(s.V5_MASTER_SYNC.encode()))
    records, stats = _read(path, date(2019, 11, 17))
    assert len(records) == 8
    assert not stats.warnings()


def test_a_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    """A file that vanished between discovery and reading is a warning."""
    records, stats = _read(tmp_path / "gone.log")
    assert records == []
    assert stats.skipped.startswith("cannot open")


def test_continuation_lines_beyond_the_cap_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash report longer than the per-record cap keeps the first lines and counts the rest."""
    monkeypatch.setattr("harvester.logs.parse.MAX_CONTINUATION", 3)
    text = "1:M 10 Jan 2024 10:00:00.000 # x\n" + "".join(
        f"id={i} addr=10.0.0.1:1 cmd=get\n" for i in range(10)
    )
    records, stats = _read(s.write(tmp_path / "c.log", text))
    assert len(records[0].continuation) == 3
    assert stats.continuation_dropped == 7


# --------------------------------------------------------------------------- filters


def test_window_and_level_filters(tmp_path: Path) -> None:
    """``since`` (inclusive), ``until`` (exclusive) and ``min_level`` select records."""
    path = s.write(tmp_path / "a.log", s.V4_MASTER_SYNC_FAIL)
    records, _ = _read(
        path, date(2020, 6, 5), since=_utc(2020, 6, 5, 3, 32, 8, 698000), until=_utc(2020, 6, 5, 3, 50)
    )
    assert [r.line for r in records] == [4, 5, 6]
    warnings, _ = _read(path, date(2020, 6, 5), min_level=Level.WARNING)
    assert [r.line for r in warnings] == [3, 4, 5, 6, 15]


def test_grep_fast_path_finds_what_the_full_parse_finds(tmp_path: Path) -> None:
    """With a literal, blocks without it are skipped, yet hits (in continuations and across
    block boundaries) come out with the same records and line numbers as a full parse."""
    body = s.V32_CRASH + s.V4_MASTER_SYNC_FAIL.replace("05 Jun", "07 Sep") * 40 + s.V32_CRASH
    path = s.write(tmp_path / "big.log", body)
    for pattern in ("redis_version", "Connection with slave (10|client)", "STACK TRACE", "asks for sync"):
        grep = re.compile(pattern)
        slow = [
            r
            for r in _read(path, date(2016, 9, 7))[0]
            if grep.search(r.message) or any(grep.search(c) for c in r.continuation)
        ]
        for block in (97, 4096, 1 << 20):
            fast, stats = _read(path, date(2016, 9, 7), grep=grep, block_size=block)
            assert stats.only_matching
            assert [(r.line, r.message, r.continuation) for r in fast] == [
                (r.line, r.message, r.continuation) for r in slow
            ], (pattern, block)
            assert stats.lines == body.count("\n")


def test_grep_without_literal_searches_every_record(tmp_path: Path) -> None:
    """A pattern with no required literal (``(?i)``, alternation at the top) still matches."""
    path = s.write(tmp_path / "a.log", s.V5_MASTER_SYNC)
    records, stats = _read(path, date(2019, 11, 17), grep=re.compile("(?i)REPLICA 192"))
    assert len(records) == 3
    assert not stats.only_matching


def test_literal_extraction_is_exact_or_nothing() -> None:
    """Only literals every match must contain; flags, classes and alternation give less or none."""
    assert literal_of("fork") == b"fork"
    assert literal_of(r"Can't save in background: fork: \w+") == b"Can't save in background: fork: "
    assert literal_of("Connection with (master|slave) lost") == b"Connection with "
    assert literal_of("a|b") is None
    assert literal_of("(?i)fork") is None
    assert literal_of("x?") is None


def test_selector_keeps_a_line_and_the_one_before_it(tmp_path: Path) -> None:
    """``select`` sees raw lines; code 2 also yields the record line before (and the last line
    of a file is always yielded), so the rules can see when a process went quiet."""
    path = s.write(tmp_path / "a.log", s.V6_OLD_MASTER_RETURNS)

    def select(line: bytes, start: int, level: int, role: int) -> int:
        return 2 if line[start:].startswith(b"oO0O") else 0

    records, stats = _read(path, date(2021, 1, 4), select=select)
    assert [r.line for r in records] == [1, 2, 10]
    assert stats.lines == 10


def test_stats_report_names_each_problem_file(tmp_path: Path) -> None:
    """The end-of-run report totals everything and lists each file with a problem."""
    stats = ParseStats()
    good = LogSource(str(s.write(tmp_path / "good.log", s.V5_MASTER_SYNC)), "i", day=date(2019, 11, 17))
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    for source in (good, LogSource(str(empty), "i")):
        list(read_records(source, stats=stats))
    report = stats.report()
    assert report[0].startswith("read 2 file(s)")
    assert "8 records" in report[0]
    assert report[1:] == [f"warning: {empty}: empty file"]
    assert stats.to_dict()["empty_files"] == 1


def test_out_of_window_records_still_count_for_order(tmp_path: Path) -> None:
    """A step back is detected even when the records around it fall outside the window."""
    base = datetime(2024, 1, 10, 10, tzinfo=UTC)
    lines = [base, base + timedelta(hours=2), base + timedelta(hours=1)]
    text = "".join(f"1:M {t:%d %b %Y %H:%M:%S}.000 * m{i}\n" for i, t in enumerate(lines))
    records, stats = _read(s.write(tmp_path / "w.log", text), None, since=base + timedelta(minutes=30))
    assert [(r.message, r.out_of_order) for r in records] == [("m1", False), ("m2", True)]
    assert stats.clock_steps == 1
