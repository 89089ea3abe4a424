"""Redis log files -> :class:`LogRecord` (or printed lines), one file at a time, streaming.

A line in none of Redis's header shapes (:mod:`harvester.logs.lines`) -- the ASCII-art
banner, a crash report's stack trace and INFO dump -- is attached to the record before it
as a continuation line, or counted as unparsed when no record precedes it in the file.

Why the shape of this module: archives hold gigabytes, so a file is read in blocks of
complete lines into one reused buffer, and nothing proportional to the file is ever kept.
A line becomes a :class:`LogRecord` (a datetime, a decoded message: the expensive part) only
when a caller wants it: ``select`` looks at the raw bytes first; ``grep`` with a literal
searches the buffer for it and parses only the records around each occurrence. Whatever is
odd about a file (undecodable bytes, NULs, lines of several megabytes, a clock that steps
back, a torn last line) is counted in :class:`FileStats`, never raised, never dropped
silently. It is longer than our usual 400 lines for that reason: the block reader, the record
builder and the printed-line path share one buffer discipline and are kept side by side.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from harvester.logs.lines import (
    LEVELS,
    Clock,
    Head,
    head_from,
    head_match,
    header,
    is_head_at,
    literal_of,
    plain_literal,
    quick_from,
    to_datetime,
)
from harvester.logs.model import Level, LogRecord, LogSource
from harvester.logs.output import lane_prefix, raw_lines
from harvester.logs.stats import CLOCK_STEP_MS, MAX_CONTINUATION, MAX_LINE, FileStats, ParseStats

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

#: ``select(line, message_start, level_byte, role_byte)``: whether a record line is worth a
#: :class:`LogRecord`. 0 skips it, 1 keeps it, 2 keeps it *and* the record line before it
#: (the event rules want the last line a process wrote before a restart). ``role_byte`` is 0
#: for formats without a role letter.
Selector = Callable[[bytes, int, int, int], int]


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

    def make(self, head: Head, continuation: list[bytes]) -> T | None:
        raise NotImplementedError


class _RecordBuilder(_Builder[LogRecord]):
    def make(self, head: Head, continuation: list[bytes]) -> LogRecord | None:
        """The record, or None when it falls outside the window or does not match ``grep``."""
        out_of_order = self.place(head.ms)
        if out_of_order is None:
            return None
        record = LogRecord(
            time=to_datetime(head.ms),
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

    def make(self, head: Head, continuation: list[bytes]) -> tuple[int, bytes] | None:
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
        clock = Clock(tz, source.day, _fallback_year(path))
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
    clock: Clock,
    builder: _Builder[T],
    select: Selector | None,
    min_level: Level,
) -> Iterator[T]:
    """Every line: headers parsed, records built for the lines the filters keep."""
    stats = builder.stats
    number = 0
    pending: Head | None = None  # the record being assembled (None: none, or not wanted)
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
                head = header(line, number, clock)
                is_record = head is not None
            else:
                found = head_match(line)
                is_record = found is not None
                head = None
                if found is not None:
                    msg_start, level_byte, role_byte = quick_from(found[0], found[1], line)
                    code = 1
                    if check_level and LEVELS.get(level_byte, Level.DEBUG) < min_level:
                        code = 0
                    elif select is not None:
                        code = select(line, msg_start, level_byte, role_byte)
                    if code:
                        head = head_from(found[0], found[1], line, number, clock)
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
                    earlier = header(before[0], before[1], clock)
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
        head = header(last_raw[0], last_raw[1], clock)
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
    clock: Clock,
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
    pending: Head | None = None  # a hit record whose continuation lines may go on
    cont: list[bytes] = []

    def emit(head: Head | None, lines: list[bytes]) -> T | None:
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
            head = header(_strip_nul(hit_line, stats), hit_number, clock)
            lines: list[bytes] = []
            if head is None:  # a continuation line: find its record line
                back = [hit_line] if hit_line.strip() else []
                head_at = line_start
                while head_at > start:
                    head_at = buf.rfind(b"\n", start, head_at - 1) + 1 or start
                    stop = buf.find(b"\n", head_at, end)
                    line = bytes(buf[head_at:stop])
                    if is_head_at(buf, head_at, stop, clock):
                        head_number = 0
                        if count_lines:
                            head_number = number + newlines + 1 - buf.count(b"\n", head_at, line_start)
                        head = header(_strip_nul(line, stats), head_number, clock)
                        break
                    if line.strip():
                        back.append(line)
                back.reverse()
                if head is None:  # before this block
                    head = header(carry[0], carry[1], clock) if carry is not None else None
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


def _continuation(
    buf: bytearray | bytes, pos: int, end: int, *, lines: list[bytes], clock: Clock, stats: FileStats
) -> int:
    """Collect the non-record lines from ``pos``; returns where the next record line starts."""
    while pos < end and not is_head_at(buf, pos, end, clock):
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
    clock: Clock,
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
        if is_head_at(buf, line_start, stop, clock):
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
