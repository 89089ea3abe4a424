"""One time-ordered stream from many: a k-way merge over streams that are each in time order.

Each replica's files are read one after the other (day by day), so each lane is one stream;
:func:`merge` then keeps one pending item per lane in a heap (:func:`heapq.merge`), so
memory grows with the number of lanes, never with the size of the files. Equal times keep
the order of the streams given (``heapq.merge`` is stable), so output is reproducible.

A file whose clock stepped back is not in time order; its records stay in file order (and
carry ``out_of_order``), which the merge respects: it never reorders within a stream.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from harvester.logs.model import LogSource
from harvester.logs.parse import BLOCK_SIZE

__all__ = ["block_size_for", "by_lane", "lane_streams", "merge"]

#: Read buffers across all open files together stay near this.
MERGE_BUFFER_BUDGET = 16 << 20
_MIN_BLOCK = 64 << 10


class _Timed(Protocol):
    @property
    def time(self) -> datetime: ...


T = TypeVar("T", bound=_Timed)


def _time(item: _Timed) -> datetime:
    return item.time


def merge(streams: Iterable[Iterable[T]]) -> Iterator[T]:
    """Records (or events) of every stream, in time order, lazily."""
    return heapq.merge(*streams, key=_time)


def by_lane(sources: Iterable[LogSource]) -> dict[tuple[str, str, str], list[LogSource]]:
    """Sources grouped per replica, each group in day order (a lane reads its days in turn)."""
    lanes: dict[tuple[str, str, str], list[LogSource]] = {}
    for source in sources:
        lanes.setdefault(source.lane, []).append(source)
    for group in lanes.values():
        group.sort(key=lambda s: (s.day is None, s.day, s.path))
    return dict(sorted(lanes.items()))


def lane_streams(
    sources: Sequence[LogSource], open_source: Callable[[LogSource], Iterable[T]]
) -> list[Iterator[T]]:
    """One lazy stream per lane: its files opened one after the other, only when reached."""
    return [itertools.chain.from_iterable(map(open_source, group)) for group in by_lane(sources).values()]


def block_size_for(streams: int) -> int:
    """A read size that keeps all open buffers within :data:`MERGE_BUFFER_BUDGET`."""
    if streams <= 0:
        return BLOCK_SIZE
    return max(_MIN_BLOCK, min(BLOCK_SIZE * 4, MERGE_BUFFER_BUDGET // streams))
