"""The records of the log-reading subsystem, shared by the parser, the event rules and the timeline.

A :class:`LogSource` says where one file's lines come from (instance, shard, replica, the day
the file covers); a :class:`LogRecord` is one parsed Redis log record (a line plus any
continuation lines attached to it); an :class:`Event` is what the rules recognised in records;
a :class:`RoleSpan` is a stretch of time in which a replica held one role, for the timeline's
bands. All times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime


class Level(enum.IntEnum):
    """Redis's own levels, ordered so ``--level warning`` is a simple comparison."""

    DEBUG = 0  # '.'
    VERBOSE = 1  # '-'
    NOTICE = 2  # '*'
    WARNING = 3  # '#'


class Severity(enum.IntEnum):
    """How much an event matters to an on-call engineer, ordered for filtering and colours."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2


class Role(enum.StrEnum):
    """A replica's role as a log line or an event shows it; ``UNKNOWN`` when nothing says."""

    MASTER = "master"
    REPLICA = "replica"
    CHILD = "child"  # a forked child (BGSAVE, AOF rewrite): Redis role letter C
    SENTINEL = "sentinel"  # role letter X
    DOWN = "down"  # between a shutdown/crash and the next start (timeline bands)
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LogSource:
    """Where a file's lines come from. Empty strings mean "not known" (a bare file)."""

    path: str  # as given or found; for display and for ``file:line`` references
    instance: str  # instance name (or id when the name is not known)
    instance_id: str = ""
    project: str = ""
    shard: str = ""  # DCS group name, e.g. group-0
    replica: str = ""  # replica IP
    day: date | None = None  # the UTC day the file covers (date folder or DCS ``time``)

    @property
    def lane(self) -> tuple[str, str, str]:
        """The key of one timeline lane and one merge stream: instance, shard, replica."""
        return (self.instance_id or self.instance, self.shard, self.replica)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Redis log record: its first line parsed, continuation lines attached."""

    time: datetime  # UTC
    level: Level
    role: Role
    pid: int | None
    message: str
    source: LogSource
    line: int  # 1-based line number of the record's first line in its file (0: not counted)
    continuation: tuple[str, ...] = ()  # banner art, stack-trace lines that belong to no record
    out_of_order: bool = False  # its time is before the previous record's in the same file
    time_from_day: bool = False  # the line carried no year; it came from the file's day


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on one replica, recognised from one record (or several, if derived)."""

    time: datetime  # UTC
    kind: str  # one of the documented kinds, e.g. "role.master", "sync.full", "bgsave.fork_failed"
    severity: Severity
    source: LogSource
    role: Role  # the replica's role at that moment, as far as the log shows
    summary: str  # short, human, one line
    line: int  # line number of the record that triggered it
    details: dict[str, str] = field(default_factory=dict)  # extra fields (peer, offset, signal...)


@dataclass(frozen=True, slots=True)
class RoleSpan:
    """A replica held ``role`` from ``start`` to ``end`` (UTC); the timeline draws one band per span."""

    source: LogSource
    role: Role
    start: datetime
    end: datetime
