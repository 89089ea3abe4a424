"""Redis log lines -> :class:`LogRecord`, one file at a time, streaming.

Every line format Redis has written (newest first)::

    1:M 27 Nov 2026 10:00:00.123 * message      Redis 5+  (pid:role, year, milliseconds)
    1:S 27 Nov 10:00:00.123 # message           Redis 3.x, 4.x (no year)
    [1234] 27 Nov 10:00:00.123 * message        Redis 2.6 - 2.8 (and the Windows 3.x port)
    [1234] 27 Nov 10:00:00 * message            Redis 2.4 and older (no milliseconds)
    27 Nov 10:00:00 - message                   Redis 1.x (no pid)
    1:signal-handler (1790000000) message       Redis 3+ signal handlers (unix time)
    [1234 | signal handler] (1790000000) msg    Redis 2.8 signal handlers

Roles are ``M`` master, ``S`` replica, ``C`` forked child, ``X`` sentinel; levels ``.`` debug,
``-`` verbose, ``*`` notice, ``#`` warning. A line in none of these forms (the ASCII-art banner,
a crash report's stack trace and INFO dump) is attached to the record before it as a
continuation line, or counted as unparsed when no record precedes it in the file.

Why the shape of this module: archives hold gigabytes, so a file is read in large blocks of
complete lines and nothing proportional to the file is ever kept. A line becomes a
:class:`LogRecord` (a datetime, a decoded message: the expensive part) only when a caller
wants it: ``select`` looks at the raw bytes first, ``grep`` with a literal skips whole blocks
that cannot match with one ``bytes in`` test. Whatever is odd about a file (undecodable
bytes, NULs, lines of several megabytes, a clock that steps back, a torn last line) is
counted in :class:`FileStats`, never raised and never dropped silently.
"""

from __future__ import annotations

import calendar
import gzip
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from harvester.logs.model import Level, LogRecord, LogSource, Role
from harvester.logs.output import lane_prefix, raw_lines

__all__ = [
    "BLOCK_SIZE",
    "MAX_LINE",
    "FileStats",
    "ParseStats",
    "Selector",
    "literal_of",
    "plain_literal",
    "read_lines",
    "read_records",
]

#: Bytes read at a time. Callers merging many files lower it so memory stays bounded.
BLOCK_SIZE = 1 << 20
T = TypeVar("T")

#: A line longer than this is cut here (and counted): memory stays bounded whatever the file.
MAX_LINE = 64 * 1024
#: Continuation lines kept per record (a crash report is a few hundred); the rest are counted.
MAX_CONTINUATION = 2000
#: A step back larger than this counts as a clock step (smaller ones are child/parent jitter).
CLOCK_STEP_MS = 1000

_MONTHS = {
    m.encode(): i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_LEVELS = {ord("."): Level.DEBUG, ord("-"): Level.VERBOSE, ord("*"): Level.NOTICE, ord("#"): Level.WARNING}
_LEVEL_OF = {bytes([k]): v for k, v in _LEVELS.items()}
_ROLE_OF = {b"M": Role.MASTER, b"S": Role.REPLICA, b"C": Role.CHILD, b"X": Role.SENTINEL}
_DIGITS = frozenset(b"0123456789")

# One regex per shape, tried by the line's first byte. The groups that differ are read by
# position in _header(); the message starts at m.end().
# Groups: the day (``DD Mon`` or ``DD Mon YYYY``, the clock's cache key), the year, HH, MM,
# SS, the fraction and the level.
_TIME = rb"(\d\d [A-Z][a-z]{2}(?: (\d{4}))?) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? ([.\-*#])(?: |$)"
_RE_MODERN = re.compile(rb"(\d{1,10}):([MSCX]) " + _TIME)  # Redis 3+
_RE_BRACKET = re.compile(rb"\[(\d{1,10})\] " + _TIME)  # Redis 2.x
_RE_BARE = re.compile(_TIME)  # Redis 1.x
_RE_SIGNAL = re.compile(rb"(?:(\d{1,10}):signal-handler|\[(\d{1,10}) \| signal handler\]) \((\d{1,12})\) ?")

#: ``select(line, message_start, level_byte, role_byte)``: whether a record line is worth a
#: :class:`LogRecord`. 0 skips it, 1 keeps it, 2 keeps it *and* the record line before it
#: (the event rules want the last line a process wrote before a restart). ``role_byte`` is 0
#: for formats without a role letter.
Selector = Callable[[bytes, int, int, int], int]


# --------------------------------------------------------------------------- statistics


@dataclass(slots=True)
class FileStats:
    """What reading one file met. Counts of lines unless the name says otherwise."""

    path: str
    bytes: int = 0
    lines: int = 0
    records: int = 0  # records handed to the caller
    unparsed: int = 0  # lines that belong to no record (before the file's first record)
    continuation: int = 0  # lines attached to the record before them
    continuation_dropped: int = 0  # continuation lines beyond MAX_CONTINUATION
    blank: int = 0
    non_utf8: int = 0  # lines whose bytes are not UTF-8 (shown with U+FFFD)
    nul: int = 0  # lines that held NUL bytes (removed), as a crash leaves in a file
    long_lines: int = 0  # lines cut at MAX_LINE
    out_of_order: int = 0  # records earlier than one before them in the file
    clock_steps: int = 0  # times the clock went back by more than CLOCK_STEP_MS
    truncated_last_line: bool = False  # the file does not end with a newline
    empty: bool = False
    skipped: str = ""  # why the file was not read at all (binary, unreadable)
    only_matching: bool = False  # the grep fast path parsed only lines holding the literal
    lines_counted: bool = True  # False: the fast path was told not to count lines

    def warnings(self) -> list[str]:
        """One short phrase per problem, for the end-of-run report."""
        out: list[str] = []
        if self.skipped:
            out.append(f"not read: {self.skipped}")
        if self.empty:
            out.append("empty file")
        for count, what in (
            (self.unparsed, "line(s) in no known format before the first record"),
            (self.non_utf8, "line(s) not UTF-8 (shown with U+FFFD)"),
            (self.nul, "line(s) with NUL bytes (removed)"),
            (self.long_lines, f"line(s) longer than {MAX_LINE // 1024} KiB (cut)"),
            (self.continuation_dropped, f"continuation line(s) beyond {MAX_CONTINUATION} per record"),
            (self.out_of_order, "record(s) earlier than a record before them (kept in file order)"),
        ):
            if count:
                out.append(f"{count} {what}")
        if self.clock_steps:
            out.append(f"clock stepped back {self.clock_steps} time(s)")
        if self.truncated_last_line:
            out.append("last line has no newline (truncated?)")
        return out


@dataclass(slots=True)
class ParseStats:
    """Every file's :class:`FileStats`, in the order the files were opened."""

    files: list[FileStats] = field(default_factory=list)

    def new_file(self, path: str) -> FileStats:
        stats = FileStats(path)
        self.files.append(stats)
        return stats

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def problem_files(self) -> list[FileStats]:
        return [f for f in self.files if f.warnings()]

    @property
    def skipped_files(self) -> list[FileStats]:
        return [f for f in self.files if f.skipped]

    def report(self, limit: int = 20) -> list[str]:
        """Human lines for stderr: a total, then each file with a problem (at most ``limit``)."""
        counted = all(f.lines_counted for f in self.files)
        line_count = f"{self.total('lines')} lines" if counted else "lines not counted"
        lines = [
            f"read {len(self.files)} file(s), {self.total('bytes')} bytes, {line_count}, "
            f"{self.total('records')} records"
        ]
        if any(f.only_matching for f in self.files):
            lines.append(
                "note: --grep fast path: only lines holding the pattern's literal were parsed, so the "
                "counts below cover those lines"
            )
        problems = self.problem_files
        for f in problems[:limit]:
            lines.append(f"warning: {f.path}: " + "; ".join(f.warnings()))
        if len(problems) > limit:
            lines.append(f"warning: ... and {len(problems) - limit} more file(s) with warnings")
        return lines

    def to_dict(self) -> dict[str, Any]:
        keys = (
            "bytes",
            "lines",
            "records",
            "unparsed",
            "continuation",
            "continuation_dropped",
            "blank",
            "non_utf8",
            "nul",
            "long_lines",
            "out_of_order",
            "clock_steps",
        )
        return {
            "files": len(self.files),
            **{k: self.total(k) for k in keys},
            "empty_files": sum(f.empty for f in self.files),
            "truncated_last_lines": sum(f.truncated_last_line for f in self.files),
            "skipped_files": {f.path: f.skipped for f in self.files if f.skipped},
        }


# --------------------------------------------------------------------------- literals


def plain_literal(pattern: str) -> bytes | None:
    """The pattern's text when it is nothing but literal characters (``fork: Cannot``)."""
    literal = literal_of(pattern)
    if literal is None:
        return None
    try:
        parsed: Any = importlib.import_module("re._parser").parse(pattern)
    except (ImportError, re.error, AttributeError):  # pragma: no cover - other Pythons
        return None
    return literal if len(parsed.data) == len(literal.decode("utf-8")) else None


def literal_of(pattern: str) -> bytes | None:
    """The longest run of text every match of ``pattern`` must contain, or None.

    Only top-level literal characters count (no alternation, no optional parts), so a line
    without the literal can never match: skipping it is exact, not a heuristic. Case-
    insensitive or otherwise flagged patterns get no literal.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        parsed = parser.parse(pattern)
    except (ImportError, re.error, AttributeError):  # pragma: no cover - other Pythons
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    literal_op = parser.LITERAL
    best: list[int] = []
    run: list[int] = []
    for op, av in parsed.data:
        if op == literal_op:
            run.append(av)
            continue
        best = max(best, run, key=len)
        run = []
    best = max(best, run, key=len)
    if not best:
        return None
    text = "".join(map(chr, best))
    if "\n" in text:
        return None
    return text.encode("utf-8")


# --------------------------------------------------------------------------- clock


class _Clock:
    """Turns a line's date and time into UTC seconds, caching per day (and hour, for zones).

    Times are the instance's clock read in ``tz``. A year missing from the line comes from
    the file's day (the nearest year to it, so a log crossing New Year lands on both sides
    correctly); without a day, from ``fallback_year`` moving forward when the months wrap.
    Lines rarely share a second, so the cache is per day: a line then costs three ``int``s.
    """

    def __init__(self, tz: tzinfo, day: date | None, fallback_year: int) -> None:
        self.tz = tz
        self.utc = tz is UTC
        self.day = day
        self.year = fallback_year
        self.last_month = 0
        self.days: dict[bytes, tuple[int, int, int, int] | None] = {}  # -> (epoch, y, m, d)
        self.offsets: dict[tuple[bytes, int], int] = {}

    def seconds(self, day_key: bytes, hh: int, mm: int, ss: int) -> int | None:
        """UTC seconds for a day (``DD Mon [YYYY]``) and time, or None if no such time."""
        try:
            found = self.days[day_key]
        except KeyError:
            found = self._day(day_key)
        if found is None or hh > 23 or mm > 59 or ss > 60:  # 60: a leap second
            return None
        local = found[0] + hh * 3600 + mm * 60 + ss
        if self.utc:
            return local
        offset = self.offsets.get((day_key, hh))
        if offset is None:
            moment = datetime(found[1], found[2], found[3], hh, tzinfo=self.tz)
            delta = moment.utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            if len(self.offsets) > 4096:
                self.offsets.clear()
            self.offsets[(day_key, hh)] = offset
        return local - offset

    def _day(self, day_key: bytes) -> tuple[int, int, int, int] | None:
        parts = day_key.split(b" ")
        value: tuple[int, int, int, int] | None = None
        month = _MONTHS.get(parts[1]) if len(parts) in (2, 3) else None
        if month is not None:
            try:
                mday = int(parts[0])
                year = int(parts[2]) if len(parts) == 3 else self._year(month, mday)
                if year is not None:
                    date(year, month, mday)  # validates
                    value = (calendar.timegm((year, month, mday, 0, 0, 0, 0, 0, 0)), year, month, mday)
            except ValueError:
                value = None
        if len(self.days) > 4096:
            self.days.clear()
        self.days[day_key] = value
        return value

    def _year(self, month: int, day: int) -> int | None:
        if self.day is not None:
            best: tuple[int, int] | None = None
            for year in (self.day.year - 1, self.day.year, self.day.year + 1):
                try:
                    distance = abs((date(year, month, day) - self.day).days)
                except ValueError:  # 29 Feb in a common year
                    continue
                if best is None or distance < best[0]:
                    best = (distance, year)
            return best[1] if best else None
        if self.last_month and month < self.last_month - 6:  # Dec -> Jan: a new year
            self.year += 1
            self.days.clear()
        self.last_month = month
        return self.year


def _to_datetime(ms: int) -> datetime:
    # A float of milliseconds / 1000 rounds back to the exact microsecond: the fastest way.
    return datetime.fromtimestamp(ms / 1000, UTC)


# --------------------------------------------------------------------------- header parsing


@dataclass(slots=True)
class _Head:
    """A record line's parsed header; the message is decoded only when the record is built."""

    line: bytes
    number: int
    ms: int
    level: Level
    role: Role
    pid: int | None
    start: int  # where the message starts in ``line``
    from_day: bool


_MODERN, _BRACKET, _BARE, _SIGNAL = 1, 2, 3, 4


def _head_match(line: bytes) -> tuple[int, re.Match[bytes]] | None:
    """Which header shape ``line`` has (and its match), or None: one regex for most lines."""
    first = line[0] if line else 0
    if first in _DIGITS:
        m = _RE_MODERN.match(line)
        if m is not None:
            return _MODERN, m
        m = _RE_SIGNAL.match(line)
        if m is not None:
            return _SIGNAL, m
        m = _RE_BARE.match(line)
        return (_BARE, m) if m is not None else None
    if first == 91:  # '['
        m = _RE_BRACKET.match(line)
        if m is not None:
            return _BRACKET, m
        m = _RE_SIGNAL.match(line)
        return (_SIGNAL, m) if m is not None else None
    return None


def _head_from(shape: int, m: re.Match[bytes], line: bytes, number: int, clock: _Clock) -> _Head | None:
    """The parsed header for a matched line; None if its date cannot exist."""
    pid: int | None = None
    role = Role.UNKNOWN
    if shape == _MODERN:
        pid_b, role_b, day, year, hh, mm, ss, frac, level = m.groups()
        pid, role = int(pid_b), _ROLE_OF[role_b]
    elif shape == _BRACKET:
        pid_b, day, year, hh, mm, ss, frac, level = m.groups()
        pid = int(pid_b)
    elif shape == _BARE:
        day, year, hh, mm, ss, frac, level = m.groups()
    else:  # signal handlers write unix time (absolute, no zone to apply) and no level
        pid = int(m.group(1) or m.group(2))
        return _Head(line, number, int(m.group(3)) * 1000, Level.WARNING, Role.UNKNOWN, pid, m.end(), False)
    seconds = clock.seconds(day, int(hh), int(mm), int(ss))
    if seconds is None:
        return None
    ms = seconds * 1000 + (int(frac[:3].ljust(3, b"0")) if frac else 0)
    return _Head(line, number, ms, _LEVEL_OF[level], role, pid, m.end(), year is None)


def _header(line: bytes, number: int, clock: _Clock) -> _Head | None:
    """Parse a record line's header, or None when the line is not a record line."""
    found = _head_match(line)
    return _head_from(found[0], found[1], line, number, clock) if found is not None else None


def _quick_fields(line: bytes) -> tuple[int, int, int] | None:
    """(message start, level byte, role byte) of a record line without parsing its time."""
    found = _head_match(line)
    return _quick_from(found[0], found[1], line) if found is not None else None


def _quick_from(shape: int, m: re.Match[bytes], line: bytes) -> tuple[int, int, int]:
    end = m.end()
    if shape == _SIGNAL:
        return end, 35, 0  # '#'
    return end, _level_byte(line, end), line[m.start(2)] if shape == _MODERN else 0


def _level_byte(line: bytes, end: int) -> int:
    """The level character ends the header, before the space (absent at the end of a line)."""
    return line[end - 2] if line[end - 1] == 32 else line[end - 1]


# --------------------------------------------------------------------------- reading blocks


class _Readable(Protocol):
    """What reading needs of a file: a plain one (FileIO) or a gzipped one (GzipFile)."""

    def readinto(self, buffer: Any, /) -> int | None: ...

    def close(self) -> None: ...


def _open(path: Path, stats: FileStats) -> _Readable | None:
    """Open for binary reading, transparently gunzipping; None (and counted) if unusable."""
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        stats.skipped = f"cannot open: {exc.strerror or exc}"
        return None
    try:
        head = raw.read(8192)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        stats.skipped = f"cannot read: {exc.strerror or exc}"
        return None
    if head[:2] == b"\x1f\x8b":
        raw.close()
        zipped: _Readable = gzip.GzipFile(path, "rb")
        return zipped
    if _looks_binary(head):
        raw.close()
        stats.skipped = "binary content (NUL bytes and no text at its start), not a Redis log"
        return None
    return raw


def _looks_binary(head: bytes) -> bool:
    """NULs plus little text: an RDB file or an image, not a log with a crash-torn stretch."""
    if b"\x00" not in head:
        return False
    text = head.replace(b"\x00", b"")
    if not text or b"\n" not in text:
        return True
    printable = sum(1 for b in text if b >= 32 or b in (9, 10, 13))
    return printable < 0.9 * len(text)


#: A block is ``(buffer, start, end)``: complete lines (the last block of a file may lack its
#: final newline). The buffer is reused for the next block: copy what must outlive it.
Block = tuple[bytearray | bytes, int, int]


def _blocks(fh: _Readable, stats: FileStats, block_size: int) -> Iterator[Block]:
    """Blocks of complete lines, read into one reused buffer (no copy of what is only scanned).

    A line longer than :data:`MAX_LINE` that does not fit in the buffer is cut there and the
    rest of it skipped, so memory stays at one block plus one line whatever the file. (A
    reader thread filling a second buffer meanwhile was tried: the GIL hand-offs cost more
    than the overlap gained, about 0.7 s against 1.7 s per GiB.)
    """
    buf = bytearray(block_size + MAX_LINE + 1)
    view = memoryview(buf)
    have = 0  # bytes at the front of buf: the unfinished line of the previous read
    skipping = False  # inside the unread tail of a cut line
    readinto = fh.readinto
    while True:
        try:
            n = readinto(view[have : have + block_size]) or 0
        except (OSError, EOFError, ValueError, gzip.BadGzipFile) as exc:
            stats.skipped = stats.skipped or f"read error after {stats.bytes} bytes: {exc}"
            n = 0
        if not n:
            break
        stats.bytes += n
        total = have + n
        start = 0
        if skipping:
            nl = buf.find(b"\n", 0, total)
            if nl < 0:
                have = 0
                continue
            start, skipping = nl + 1, False
        last = buf.rfind(b"\n", start, total)
        if last < 0:  # no line ends here
            if total - start > MAX_LINE:
                stats.long_lines += 1
                yield bytes(view[start : start + MAX_LINE]) + b"\n", 0, MAX_LINE + 1
                have, skipping = 0, True
            else:
                buf[: total - start] = view[start:total]
                have = total - start
            continue
        yield buf, start, last + 1
        tail = total - last - 1
        if tail > MAX_LINE:
            stats.long_lines += 1
            yield bytes(view[last + 1 : last + 1 + MAX_LINE]) + b"\n", 0, MAX_LINE + 1
            have, skipping = 0, True
        else:
            buf[:tail] = view[last + 1 : total]
            have = tail
    if have:
        stats.truncated_last_line = True
        yield buf, 0, have


# --------------------------------------------------------------------------- records


class _Builder(Generic[T]):
    """Turns a header and its continuation lines into a ``T``, tracking order and warnings.

    Two kinds: :class:`_RecordBuilder` makes :class:`LogRecord` (everything but the ``logs``
    command), :class:`_LineBuilder` makes the printed lines straight away (the ``logs``
    command: no record object per line). Both clean bytes the same way and count the same.
    """

    def __init__(
        self,
        source: LogSource,
        stats: FileStats,
        since_ms: int | None,
        until_ms: int | None,
        grep: re.Pattern[str] | None,
    ) -> None:
        self.source = source
        self.stats = stats
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.grep = grep
        self.max_ms: int | None = None
        self.last_ms: int | None = None

    def clean(self, raw: bytes) -> bytes:
        """Cut at MAX_LINE, drop a CR and NULs, counting what was done."""
        if len(raw) > MAX_LINE:
            self.stats.long_lines += 1
            raw = raw[:MAX_LINE]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if b"\x00" in raw:
            self.stats.nul += 1
            raw = raw.replace(b"\x00", b"")
        return raw

    def decode(self, raw: bytes) -> str:
        raw = self.clean(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.stats.non_utf8 += 1
            return raw.decode("utf-8", errors="replace")

    def place(self, ms: int) -> bool | None:
        """Order bookkeeping for a record at ``ms``: None if outside the window, else whether
        it is earlier than a record before it (a clock step)."""
        out_of_order = False
        if self.last_ms is not None and ms < self.last_ms and self.last_ms - ms > CLOCK_STEP_MS:
            self.stats.clock_steps += 1
        if self.max_ms is not None and ms < self.max_ms:
            out_of_order = True
            self.stats.out_of_order += 1
        else:
            self.max_ms = ms
        self.last_ms = ms
        if (self.since_ms is not None and ms < self.since_ms) or (
            self.until_ms is not None and ms >= self.until_ms
        ):
            return None
        return out_of_order

    def make(self, head: _Head, continuation: list[bytes]) -> T | None:
        raise NotImplementedError


class _RecordBuilder(_Builder[LogRecord]):
    def make(self, head: _Head, continuation: list[bytes]) -> LogRecord | None:
        """The record, or None when it falls outside the window or does not match ``grep``."""
        out_of_order = self.place(head.ms)
        if out_of_order is None:
            return None
        record = LogRecord(
            time=_to_datetime(head.ms),
            level=head.level,
            role=head.role,
            pid=head.pid,
            message=self.decode(head.line[head.start :]),
            source=self.source,
            line=head.number,
            continuation=tuple(map(self.decode, continuation)) if continuation else (),
            out_of_order=out_of_order,
            time_from_day=head.from_day,
        )
        if self.grep is not None and not _record_matches(record, self.grep):
            return None
        self.stats.records += 1
        return record


class _LineBuilder(_Builder[tuple[int, bytes]]):
    """``(ms, printed lines)``: what :class:`~harvester.logs.output.RecordFormatter` prints."""

    def __init__(
        self,
        source: LogSource,
        stats: FileStats,
        since_ms: int | None,
        until_ms: int | None,
        grep: re.Pattern[str] | None,
    ) -> None:
        super().__init__(source, stats, since_ms, until_ms, grep)
        self.prefix = lane_prefix(source).encode()
        # A pattern that is only a literal matches where the bytes hold it: no regex needed.
        self.plain = plain_literal(grep.pattern) if grep is not None else None

    def utf8(self, raw: bytes) -> bytes:
        raw = self.clean(raw)
        if raw.isascii():
            return raw
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            self.stats.non_utf8 += 1
            return raw.decode("utf-8", errors="replace").encode("utf-8")
        return raw

    def make(self, head: _Head, continuation: list[bytes]) -> tuple[int, bytes] | None:
        if self.place(head.ms) is None:
            return None
        message = self.utf8(head.line[head.start :])
        lines = [self.utf8(c) for c in continuation] if continuation else []
        if self.grep is not None:
            if self.plain is not None:
                if self.plain not in message and not any(self.plain in c for c in lines):
                    return None
            elif not self.grep.search(message.decode()) and not any(
                self.grep.search(c.decode()) for c in lines
            ):
                return None
        self.stats.records += 1
        text = raw_lines(head.ms, self.prefix, head.role, head.level, message=message, continuation=lines)
        return head.ms, text


def _strip_nul(line: bytes, stats: FileStats) -> bytes:
    """A crash can leave NULs where a line should start; the record behind them still counts."""
    if line[:1] == b"\x00":
        stripped = line.lstrip(b"\x00")
        if stripped is not line:
            stats.nul += 1
        return stripped
    return line


def _fallback_year(path: Path) -> int:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).year
    except OSError:
        return datetime.now(UTC).year


def read_records(
    source: LogSource,
    *,
    stats: ParseStats | FileStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    min_level: Level = Level.DEBUG,
    grep: re.Pattern[str] | None = None,
    select: Selector | None = None,
    block_size: int = BLOCK_SIZE,
    count_lines: bool = True,
) -> Iterator[LogRecord]:
    """Yield the records of one file in file order (``out_of_order`` marks any step back).

    ``since``/``until`` (UTC, ``until`` exclusive), ``min_level`` and ``grep`` (a regex
    searched in the record's first line and its continuation lines) filter; ``select`` sees
    each record line's raw bytes before any decoding (see :data:`Selector`). With ``grep``
    holding a literal (:func:`literal_of`), blocks without it are only searched, not parsed;
    ``count_lines=False`` then also skips counting their lines (records carry line 0).
    """
    builder = _RecordBuilder
    yield from _read(
        source, builder, stats, tz, since, until, min_level, grep, select, block_size, count_lines
    )


def read_lines(
    source: LogSource,
    *,
    stats: ParseStats | FileStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    min_level: Level = Level.DEBUG,
    grep: re.Pattern[str] | None = None,
    block_size: int = BLOCK_SIZE,
) -> Iterator[tuple[int, bytes]]:
    """``(UTC ms, printed lines)`` per record: what ``harvester logs`` prints for
    :func:`read_records`'s records (:mod:`harvester.logs.output`), without building them.
    Lines are not counted on the ``grep`` fast path (nothing printed shows them)."""
    yield from _read(source, _LineBuilder, stats, tz, since, until, min_level, grep, None, block_size, False)


def _read(  # noqa: PLR0917 - the two public readers' arguments, passed through
    source: LogSource,
    make: type[_Builder[T]],
    stats: ParseStats | FileStats,
    tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    min_level: Level,
    grep: re.Pattern[str] | None,
    select: Selector | None,
    block_size: int,
    count_lines: bool,
) -> Iterator[T]:
    file_stats = stats.new_file(source.path) if isinstance(stats, ParseStats) else stats
    path = Path(source.path)
    fh = _open(path, file_stats)
    if fh is None:
        return
    try:
        clock = _Clock(tz, source.day, _fallback_year(path))
        builder = make(
            source,
            file_stats,
            None if since is None else int(since.timestamp() * 1000),
            None if until is None else int(until.timestamp() * 1000),
            grep,
        )
        blocks = _blocks(fh, file_stats, block_size)
        literal = literal_of(grep.pattern) if grep is not None else None
        if literal is not None and select is None:
            file_stats.only_matching = True
            yield from _grep_fast(
                blocks,
                clock=clock,
                builder=builder,
                literal=literal,
                min_level=min_level,
                count_lines=count_lines,
            )
        else:
            yield from _read_all(blocks, clock=clock, builder=builder, select=select, min_level=min_level)
        if file_stats.bytes == 0 and not file_stats.skipped:
            file_stats.empty = True
    finally:
        fh.close()


def _read_all(
    blocks: Iterator[Block],
    *,
    clock: _Clock,
    builder: _Builder[T],
    select: Selector | None,
    min_level: Level,
) -> Iterator[T]:
    """Every line: headers parsed, records built for the lines the filters keep."""
    stats = builder.stats
    number = 0
    pending: _Head | None = None  # the record being assembled (None: none, or not wanted)
    cont: list[bytes] = []
    seen_record = False
    prev_raw: tuple[bytes, int] | None = None  # last record line not kept (select code 2)
    last_raw: tuple[bytes, int, bool] | None = None  # last record line, and whether kept
    check_level = min_level > Level.DEBUG

    finish = builder.make

    for buf, start, end in blocks:
        lines = bytes(memoryview(buf)[start:end]).split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for raw in lines:
            number += 1
            line = _strip_nul(raw, stats) if raw[:1] == b"\x00" else raw
            before: tuple[bytes, int] | None = None
            if select is None and not check_level:
                head = _header(line, number, clock)
                is_record = head is not None
            else:
                found = _head_match(line)
                is_record = found is not None
                head = None
                if found is not None:
                    msg_start, level_byte, role_byte = _quick_from(found[0], found[1], line)
                    code = 1
                    if check_level and _LEVELS.get(level_byte, Level.DEBUG) < min_level:
                        code = 0
                    elif select is not None:
                        code = select(line, msg_start, level_byte, role_byte)
                    if code:
                        head = _head_from(found[0], found[1], line, number, clock)
                        if head is None:  # a date that does not exist: not a record after all
                            is_record = False
                        elif code == 2:
                            before = prev_raw
                    if is_record:
                        last_raw = (line, number, head is not None)
                        prev_raw = None if head is not None else (line, number)
            if is_record:
                seen_record = True
                if pending is not None:
                    record = finish(pending, cont)
                    if record is not None:
                        yield record
                if before is not None:
                    earlier = _header(before[0], before[1], clock)
                    if earlier is not None:
                        record = finish(earlier, [])
                        if record is not None:
                            yield record
                pending = head
                cont = []
                continue
            if not line.strip():
                stats.blank += 1
                continue
            if not seen_record:
                stats.unparsed += 1
                continue
            stats.continuation += 1
            if pending is not None:
                if len(cont) < MAX_CONTINUATION:
                    cont.append(line)
                else:
                    stats.continuation_dropped += 1
    stats.lines = number
    if pending is not None:
        record = finish(pending, cont)
        if record is not None:
            yield record
    elif select is not None and last_raw is not None and not last_raw[2]:
        # The file's last record line, for rules that need to know when a process went quiet.
        head = _header(last_raw[0], last_raw[1], clock)
        if head is not None:
            record = finish(head, [])
            if record is not None:
                yield record


def _record_matches(record: LogRecord, grep: re.Pattern[str]) -> bool:
    if grep.search(record.message):
        return True
    return any(grep.search(c) for c in record.continuation)


def _grep_fast(
    blocks: Iterator[Block],
    *,
    clock: _Clock,
    builder: _Builder[T],
    literal: bytes,
    min_level: Level,
    count_lines: bool = True,
) -> Iterator[T]:
    """Only the lines around each occurrence of ``literal`` are looked at.

    The buffer is searched with ``bytes.find`` (C speed); a block without the literal costs
    that search, plus a newline count when ``count_lines`` (without it, records carry line 0
    and the file's line count is not known: the one saving left once the search is in C).
    For a hit, the record it belongs to is found by walking back to a record line (in this
    block, else the ``carry`` of earlier ones: their last record line and the continuation
    lines after it), and its continuation lines forward, across block boundaries.
    """
    stats = builder.stats
    stats.lines_counted = count_lines
    number = 0  # lines before the current block
    carry: tuple[bytes, int] | None = None
    carry_cont: list[bytes] = []
    pending: _Head | None = None  # a hit record whose continuation lines may go on
    cont: list[bytes] = []

    def emit(head: _Head | None, lines: list[bytes]) -> T | None:
        if head is None:
            stats.unparsed += 1  # a hit in lines that belong to no record
            return None
        if head.level < min_level:
            return None
        return builder.make(head, lines)

    for buf, start, end in blocks:
        pos = start
        if pending is not None:  # its continuation lines open this block
            pos = _continuation(buf, pos, end, lines=cont, clock=clock, stats=stats)
            if pos < end:
                record = emit(pending, cont)
                pending, cont = None, []
                if record is not None:
                    yield record
        block_lines = 0
        if count_lines:
            block_lines = buf.count(b"\n", start, end) + (0 if buf[end - 1] == 10 else 1)
        counted, newlines = start, 0  # newlines in buf[start:counted]
        while pending is None:
            hit = buf.find(literal, pos, end)
            if hit < 0:
                break
            line_start = buf.rfind(b"\n", pos, hit) + 1 or pos
            if count_lines:
                newlines += buf.count(b"\n", counted, line_start)
                counted = line_start
            line_end = buf.find(b"\n", hit, end)
            after = end if line_end < 0 else line_end + 1
            hit_line = bytes(buf[line_start : end if line_end < 0 else line_end])
            hit_number = number + newlines + 1 if count_lines else 0
            head = _header(_strip_nul(hit_line, stats), hit_number, clock)
            lines: list[bytes] = []
            if head is None:  # a continuation line: find its record line
                back = [hit_line] if hit_line.strip() else []
                head_at = line_start
                while head_at > start:
                    head_at = buf.rfind(b"\n", start, head_at - 1) + 1 or start
                    stop = buf.find(b"\n", head_at, end)
                    line = bytes(buf[head_at:stop])
                    if _is_head_at(buf, head_at, stop, clock):
                        head_number = 0
                        if count_lines:
                            head_number = number + newlines + 1 - buf.count(b"\n", head_at, line_start)
                        head = _header(_strip_nul(line, stats), head_number, clock)
                        break
                    if line.strip():
                        back.append(line)
                back.reverse()
                if head is None:  # before this block
                    head = _header(carry[0], carry[1], clock) if carry is not None else None
                    lines = [*carry_cont, *back]
                else:
                    lines = back
                for _ in lines:
                    stats.continuation += 1
            after = _continuation(buf, after, end, lines=lines, clock=clock, stats=stats)
            if after >= end and head is not None:  # may go on in the next block
                pending, cont = head, lines
                break
            record = emit(head, lines)
            if record is not None:
                yield record
            pos = after
        carry, carry_cont = _carry(
            buf,
            start,
            end,
            number=number + block_lines,
            clock=clock,
            carry=carry,
            carry_cont=carry_cont,
        )
        number += block_lines
    stats.lines = number
    if pending is not None:
        record = emit(pending, cont)
        if record is not None:
            yield record


def _is_head_at(buf: bytearray | bytes, pos: int, end: int, clock: _Clock) -> bool:
    """Whether the line at ``buf[pos:]`` is a record line (same test as :func:`_header`)."""
    first = buf[pos] if pos < end else 0
    while first == 0 and pos < end - 1:  # NULs a crash left before a line
        pos += 1
        first = buf[pos]
    if first in _DIGITS:
        m = _RE_MODERN.match(buf, pos, end)
        off = 2
        if m is None:
            if _RE_SIGNAL.match(buf, pos, end) is not None:
                return True
            m, off = _RE_BARE.match(buf, pos, end), 0
    elif first == 91:  # '['
        m, off = _RE_BRACKET.match(buf, pos, end), 1
        if m is None:
            return _RE_SIGNAL.match(buf, pos, end) is not None
    else:
        return False
    if m is None:
        return False
    day, _, hh, mm, ss = m.group(off + 1, off + 2, off + 3, off + 4, off + 5)
    return clock.seconds(day, int(hh), int(mm), int(ss)) is not None


def _continuation(
    buf: bytearray | bytes, pos: int, end: int, *, lines: list[bytes], clock: _Clock, stats: FileStats
) -> int:
    """Collect the non-record lines from ``pos``; returns where the next record line starts."""
    while pos < end and not _is_head_at(buf, pos, end, clock):
        line_end = buf.find(b"\n", pos, end)
        stop = end if line_end < 0 else line_end
        line = bytes(buf[pos:stop])
        if line.strip():
            _add_cont(lines, line, stats)
        pos = stop + 1
    return pos


def _add_cont(cont: list[bytes], line: bytes, stats: FileStats) -> None:
    stats.continuation += 1
    if len(cont) < MAX_CONTINUATION:
        cont.append(line)
    else:
        stats.continuation_dropped += 1


def _carry(
    buf: bytearray | bytes,
    start: int,
    end: int,
    *,
    number: int,
    clock: _Clock,
    carry: tuple[bytes, int] | None,
    carry_cont: list[bytes],
) -> tuple[tuple[bytes, int] | None, list[bytes]]:
    """The last record line up to ``end`` (with its line number: ``number`` is the block's
    last line's, 0 when lines are not counted) and the continuation lines after it.

    Walks back from the end: usually one line, since the last line is a record; a block of
    continuation lines only extends the carried ones, up to :data:`MAX_CONTINUATION`.
    """
    stop = end - 1 if end > start and buf[end - 1] == 10 else end
    back = 0
    tail: list[bytes] = []
    while stop >= start and len(tail) <= MAX_CONTINUATION:
        line_start = buf.rfind(b"\n", start, stop) + 1 or start
        if _is_head_at(buf, line_start, stop, clock):
            tail.reverse()
            return (bytes(buf[line_start:stop]), number - back if number else 0), tail
        line = bytes(buf[line_start:stop])
        if line.strip():
            tail.append(line)
        back += 1
        if line_start == start:
            break
        stop = line_start - 1
    tail.reverse()
    return carry, (carry_cont + tail)[:MAX_CONTINUATION]
