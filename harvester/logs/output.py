"""How ``harvester logs`` prints a record: one definition for both ways of producing it.

``TIME INSTANCE SHARD REPLICA ROLE LEVEL MESSAGE``, then each continuation line with the same
prefix and ``+`` as its level. :class:`RecordFormatter` prints a :class:`LogRecord`;
:func:`raw_lines` prints the same bytes straight from a parsed header, without building a
record (the ``logs`` command's fast path: most of its cost per line was the objects). The
tests check the two agree byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime

from harvester.logs.model import Level, LogRecord, LogSource, Role

__all__ = ["RecordFormatter", "iso_ms", "lane_prefix", "raw_lines"]

ROLE_FIELD = {
    Role.MASTER: "master",
    Role.REPLICA: "replica",
    Role.CHILD: "child",
    Role.SENTINEL: "sentinel",
    Role.UNKNOWN: "-",
    Role.DOWN: "-",
}
LEVEL_CHAR = {Level.DEBUG: ".", Level.VERBOSE: "-", Level.NOTICE: "*", Level.WARNING: "#"}
_ROLE_BYTES = {k: v.encode() for k, v in ROLE_FIELD.items()}
_LEVEL_BYTES = {k: f" {v} ".encode() for k, v in LEVEL_CHAR.items()}
_DAYS: dict[int, str] = {}


def _field(value: str) -> str:
    return value.replace(" ", "_") if value else "-"


def lane_prefix(source: LogSource) -> str:
    """`` INSTANCE SHARD REPLICA `` (``-`` for what is not known)."""
    return f" {_field(source.instance)} {_field(source.shard)} {_field(source.replica)} "


def iso_ms(ms: int) -> str:
    """``2026-11-27T08:14:03.117Z`` from UTC milliseconds (the date is cached per day)."""
    seconds, milli = divmod(ms, 1000)
    day, second = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        date = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")
        if len(_DAYS) > 4096:
            _DAYS.clear()
        _DAYS[day] = date
    hour, rest = divmod(second, 3600)
    return f"{date}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}.{milli:03d}Z"


class RecordFormatter:
    """A record as printed lines; the per-source prefix is built once per file."""

    def __init__(self) -> None:
        self._prefixes: dict[int, tuple[LogSource, str]] = {}

    def __call__(self, record: LogRecord) -> str:
        src = record.source
        known = self._prefixes.get(id(src))
        if known is None or known[0] is not src:
            known = (src, lane_prefix(src))
            self._prefixes[id(src)] = known
        stamp = record.time.isoformat(timespec="milliseconds")[:23]
        head = stamp + "Z" + known[1] + ROLE_FIELD[record.role]
        text = f"{head} {LEVEL_CHAR[record.level]} {record.message}\n"
        if record.continuation:
            text += "".join(f"{head} + {line}\n" for line in record.continuation)
        return text


def raw_lines(
    ms: int, prefix: bytes, role: Role, level: Level, *, message: bytes, continuation: list[bytes]
) -> bytes:
    """The same lines as :class:`RecordFormatter`, from already cleaned UTF-8 bytes."""
    head = iso_ms(ms).encode() + prefix + _ROLE_BYTES[role]
    text = head + _LEVEL_BYTES[level] + message + b"\n"
    if continuation:
        text += b"".join(head + b" + " + line + b"\n" for line in continuation)
    return text
