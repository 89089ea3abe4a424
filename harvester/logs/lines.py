"""One Redis log line's header: its shape, its time (through the instance's clock), its fields.

The shapes, newest first::

    1:M 27 Nov 2026 10:00:00.123 * message      Redis 5+  (pid:role, year, milliseconds)
    1:S 27 Nov 10:00:00.123 # message           Redis 3.x, 4.x (no year)
    [1234] 27 Nov 10:00:00.123 * message        Redis 2.6 - 2.8 (and the Windows 3.x port)
    [1234] 27 Nov 10:00:00 * message            Redis 2.4 and older (no milliseconds)
    27 Nov 10:00:00 - message                   Redis 1.x (no pid)
    1:signal-handler (1790000000) message       Redis 3+ signal handlers (unix time)
    [1234 | signal handler] (1790000000) msg    Redis 2.8 signal handlers

One regex per shape, tried by the line's first byte; the clock turns the day and time into UTC
milliseconds. Also here: the literal a ``--grep`` pattern must contain (the reader's fast path).
"""

from __future__ import annotations

import calendar
import importlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from harvester.logs.model import Level, Role

__all__ = [
    "LEVELS",
    "Clock",
    "Head",
    "head_from",
    "head_match",
    "header",
    "is_head_at",
    "literal_of",
    "plain_literal",
    "quick_fields",
    "quick_from",
    "to_datetime",
]

_MONTHS = {
    m.encode(): i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
LEVELS = {ord("."): Level.DEBUG, ord("-"): Level.VERBOSE, ord("*"): Level.NOTICE, ord("#"): Level.WARNING}
_LEVEL_OF = {bytes([k]): v for k, v in LEVELS.items()}
_ROLE_OF = {b"M": Role.MASTER, b"S": Role.REPLICA, b"C": Role.CHILD, b"X": Role.SENTINEL}
_DIGITS = frozenset(b"0123456789")

# One regex per shape, tried by the line's first byte. The groups that differ are read by
# position in header(); the message starts at m.end().
# Groups: the day (``DD Mon`` or ``DD Mon YYYY``, the clock's cache key), the year, HH, MM,
# SS, the fraction and the level.
_TIME = rb"(\d\d [A-Z][a-z]{2}(?: (\d{4}))?) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? ([.\-*#])(?: |$)"
_RE_MODERN = re.compile(rb"(\d{1,10}):([MSCX]) " + _TIME)  # Redis 3+
_RE_BRACKET = re.compile(rb"\[(\d{1,10})\] " + _TIME)  # Redis 2.x
_RE_BARE = re.compile(_TIME)  # Redis 1.x
_RE_SIGNAL = re.compile(rb"(?:(\d{1,10}):signal-handler|\[(\d{1,10}) \| signal handler\]) \((\d{1,12})\) ?")


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


class Clock:
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


def to_datetime(ms: int) -> datetime:
    # A float of milliseconds / 1000 rounds back to the exact microsecond: the fastest way.
    return datetime.fromtimestamp(ms / 1000, UTC)


# --------------------------------------------------------------------------- header parsing


@dataclass(slots=True)
class Head:
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


def head_match(line: bytes) -> tuple[int, re.Match[bytes]] | None:
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


def head_from(shape: int, m: re.Match[bytes], line: bytes, number: int, clock: Clock) -> Head | None:
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
        return Head(line, number, int(m.group(3)) * 1000, Level.WARNING, Role.UNKNOWN, pid, m.end(), False)
    seconds = clock.seconds(day, int(hh), int(mm), int(ss))
    if seconds is None:
        return None
    ms = seconds * 1000 + (int(frac[:3].ljust(3, b"0")) if frac else 0)
    return Head(line, number, ms, _LEVEL_OF[level], role, pid, m.end(), year is None)


def header(line: bytes, number: int, clock: Clock) -> Head | None:
    """Parse a record line's header, or None when the line is not a record line."""
    found = head_match(line)
    return head_from(found[0], found[1], line, number, clock) if found is not None else None


def quick_fields(line: bytes) -> tuple[int, int, int] | None:
    """(message start, level byte, role byte) of a record line without parsing its time."""
    found = head_match(line)
    return quick_from(found[0], found[1], line) if found is not None else None


def quick_from(shape: int, m: re.Match[bytes], line: bytes) -> tuple[int, int, int]:
    end = m.end()
    if shape == _SIGNAL:
        return end, 35, 0  # '#'
    return end, _level_byte(line, end), line[m.start(2)] if shape == _MODERN else 0


def _level_byte(line: bytes, end: int) -> int:
    """The level character ends the header, before the space (absent at the end of a line)."""
    return line[end - 2] if line[end - 1] == 32 else line[end - 1]


def is_head_at(buf: bytearray | bytes, pos: int, end: int, clock: Clock) -> bool:
    """Whether the line at ``buf[pos:]`` is a record line (same test as :func:`header`)."""
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
