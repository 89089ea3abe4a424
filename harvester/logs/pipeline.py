"""Sources -> merged records or events: the one way the commands, bundles and timeline read.

Kept apart from the commands so ``harvester logs``, ``harvester events``, the timeline and
an incident bundle's ``events.jsonl`` all read logs the same way (same filters, same merge,
same statistics).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo

from harvester.logs.merge import block_size_for, by_lane, lane_streams, merge
from harvester.logs.model import Event, Level, LogRecord, LogSource
from harvester.logs.parse import ParseStats, read_lines, read_records

__all__ = ["iter_events", "iter_lines", "iter_records"]


def iter_records(
    sources: Sequence[LogSource],
    *,
    stats: ParseStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    min_level: Level = Level.DEBUG,
    grep: re.Pattern[str] | None = None,
    count_lines: bool = True,
) -> Iterator[LogRecord]:
    """Every selected record of every source, merged into one time-ordered stream.

    ``count_lines=False`` lets the ``grep`` fast path skip counting lines it does not parse
    (records then carry line 0): for output that shows no line numbers.
    """
    block = block_size_for(len(by_lane(sources)))

    def open_source(source: LogSource) -> Iterator[LogRecord]:
        return read_records(
            source,
            stats=stats,
            tz=tz,
            since=since,
            until=until,
            min_level=min_level,
            grep=grep,
            block_size=block,
            count_lines=count_lines,
        )

    return merge(lane_streams(sources, open_source))


def iter_lines(
    sources: Sequence[LogSource],
    *,
    stats: ParseStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    min_level: Level = Level.DEBUG,
    grep: re.Pattern[str] | None = None,
) -> Iterator[bytes]:
    """What ``harvester logs`` prints for :func:`iter_records`, merged the same way, but made
    straight from the bytes (no record objects: the command's cost per line was mostly them).
    Ties keep the lanes' order, as the record merge does."""
    lanes = by_lane(sources)
    block = block_size_for(len(lanes))

    def lane(index: int, group: list[LogSource]) -> Iterator[tuple[int, int, bytes]]:
        for source in group:
            for ms, text in read_lines(
                source, stats=stats, tz=tz, since=since, until=until, min_level=min_level, grep=grep,
                block_size=block,
            ):  # fmt: skip
                yield ms, index, text

    for _, _, text in heapq.merge(*(lane(i, g) for i, g in enumerate(lanes.values()))):
        yield text


def iter_events(
    sources: Sequence[LogSource],
    *,
    stats: ParseStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[str] = (),
) -> Iterator[Event]:
    """Events of every lane, merged in time order, then filtered to the window and kinds.

    Each lane's files are read whole (not cut at ``since``), so the rules know the role a
    replica had, or a link it had lost, before the window opened. ``kinds`` holds exact
    kinds or prefixes (``sync`` or ``sync.`` selects every ``sync.*`` kind).
    """
    from harvester.logs.events import Interesting, extract  # noqa: PLC0415 - not for plain reading

    lanes = by_lane(sources)
    block = block_size_for(len(lanes))

    def lane_events(group: list[LogSource]) -> Iterator[Event]:
        selector = Interesting()  # one per lane: it follows the role letter across days

        def records() -> Iterator[LogRecord]:
            for source in group:
                yield from read_records(source, stats=stats, tz=tz, select=selector, block_size=block)

        return extract(records())

    for event in merge(lane_events(group) for group in lanes.values()):
        if since is not None and event.time < since:
            continue
        if until is not None and event.time >= until:
            continue
        if kinds and not kind_matches(event.kind, kinds):
            continue
        yield event


def kind_matches(kind: str, wanted: Sequence[str]) -> bool:
    """``sync.full`` matches ``sync.full``, ``sync`` and ``sync.``."""
    for w in wanted:
        prefix = w.rstrip(".*")
        if kind == prefix or kind.startswith(prefix + "."):
            return True
    return False
