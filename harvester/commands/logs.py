"""``harvester logs`` and ``harvester events``: arguments -> sources -> merged output.

Both read archives, bundles or plain files offline (no config, no credentials). Output goes
to stdout as it is produced (a pipe into ``head`` ends it quietly); what reading met (files,
lines, anything odd about them) goes to stderr at the end, always.

Exit codes: 0 done; 1 some file could not be read at all (the others were); 2 bad input
(a path that does not exist, a bad time, zone, regex or kind, or filters that match no file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from harvester.errors import EXIT_OK, EXIT_PARTIAL, EXIT_SIGINT, UsageError
from harvester.logs.model import Event, Level, LogSource, Severity

if TYPE_CHECKING:
    from harvester.logs.stats import ParseStats

__all__ = ["Selection", "add_commands", "add_source_filters", "select_sources"]

_LEVEL_NAMES = {
    "debug": Level.DEBUG,
    "verbose": Level.VERBOSE,
    "notice": Level.NOTICE,
    "warning": Level.WARNING,
}
_SEVERITIES = {"info": Severity.INFO, "warning": Severity.WARNING, "critical": Severity.CRITICAL}


# --------------------------------------------------------------------------- arguments


def add_source_filters(p: argparse.ArgumentParser) -> None:
    """The arguments every log-reading command shares (``timeline`` uses them too)."""
    p.add_argument(
        "sources",
        nargs="+",
        type=Path,
        metavar="SOURCE",
        help="archive root, date folder, incident bundle, or log file(s)",
    )
    p.add_argument("--instance", action="append", default=[], metavar="NAME_OR_ID", help="only these")
    p.add_argument("--replica", metavar="IP", help="only this replica")
    p.add_argument("--since", help="window start (ISO 8601; UTC if no zone)")
    p.add_argument("--until", help="window end, exclusive (ISO 8601; UTC if no zone)")
    p.add_argument(
        "--tz",
        default="UTC",
        metavar="ZONE",
        help="the zone the instances' clocks are in (default UTC); output is always UTC",
    )


def add_commands(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Register ``logs`` and ``events`` on the main parser's subcommands."""
    logs = sub.add_parser("logs", help="merged, time-ordered log lines of archived replicas", epilog=epilog)
    add_source_filters(logs)
    logs.add_argument("--grep", metavar="REGEX", help="only records matching (Python regex)")
    logs.add_argument("--level", choices=tuple(_LEVEL_NAMES), default="debug", help="minimum level")
    logs.set_defaults(handler=run_logs)

    events = sub.add_parser(
        "events", help="typed events (failovers, resyncs, crashes...) from logs", epilog=epilog
    )
    add_source_filters(events)
    events.add_argument(
        "--kind", action="append", default=[], metavar="KIND[,KIND...]", help="only these kinds (or prefixes)"
    )
    events.add_argument("--severity", choices=tuple(_SEVERITIES), default="info", help="minimum severity")
    events.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    events.set_defaults(handler=run_events)


# --------------------------------------------------------------------------- selection


@dataclass(slots=True)
class Selection:
    """What the filters chose: the files, the window, the clock zone, and the notes."""

    sources: list[LogSource]
    tz: tzinfo
    tz_name: str
    since: datetime | None
    until: datetime | None
    notes: list[str] = field(default_factory=list)

    @property
    def clock_note(self) -> str:
        return f"times are UTC; instance clocks read as {self.tz_name}" + (
            "" if self.tz_name != "UTC" else " (--tz to change)"
        )


def parse_time(text: str | None, flag: str) -> datetime | None:
    """ISO 8601 date or time; a time without a zone is UTC (as everywhere in the harvester)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise UsageError(f"{flag}: not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None


def select_sources(args: argparse.Namespace) -> Selection:
    """Validate the shared filters and find the files; every bad input is a UsageError."""
    from harvester.logs.sources import Discovery, discover  # noqa: PLC0415

    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until")
    if since is not None and until is not None and since >= until:
        raise UsageError("--since must be before --until")
    tz = parse_zone(args.tz)
    info = Discovery()
    sources = discover(
        args.sources, instances=args.instance, replica=args.replica, since=since, until=until, info=info
    )
    if not sources:
        wanted = []
        if args.instance:
            wanted.append("--instance " + " ".join(args.instance))
        if args.replica:
            wanted.append(f"--replica {args.replica}")
        if since or until:
            wanted.append("the --since/--until window")
        known = ", ".join(sorted(info.known_instances)[:10])
        hint = f" (instances found: {known})" if known and args.instance else ""
        what = " and ".join(wanted) if wanted else "the given sources"
        raise UsageError(f"no log file matches {what}{hint}")
    notes = list(info.notes)
    if info.duplicates:
        notes.append(f"{info.duplicates} file(s) skipped: the same bytes as another selected file")
    return Selection(sources, tz, "UTC" if tz is UTC else args.tz, since, until, notes)


# --------------------------------------------------------------------------- output


_COLUMNS = (
    ("TIME (UTC)", 24),
    ("SEVERITY", 8),
    ("KIND", 22),
    ("INSTANCE", 18),
    ("SHARD", 9),
    ("REPLICA", 15),
    ("ROLE", 7),
)
_COLOURS = {Severity.CRITICAL: "\x1b[31;1m", Severity.WARNING: "\x1b[33m"}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def format_event_row(event: Event, colour: bool) -> str:
    from harvester.logs.events import ROLE_NAMES, SEVERITY_NAMES, iso_utc  # noqa: PLC0415

    src = event.source
    cells = (
        iso_utc(event.time),
        SEVERITY_NAMES[event.severity],
        event.kind,
        src.instance or "-",
        src.shard or "-",
        src.replica or "-",
        ROLE_NAMES[event.role],
    )
    parts = [_cut(v, w).ljust(w) for v, (_, w) in zip(cells, _COLUMNS, strict=True)]
    if colour and event.severity in _COLOURS:
        parts[1] = f"{_COLOURS[event.severity]}{parts[1]}\x1b[0m"
    where = f"({Path(src.path).name}:{event.line})"
    return " ".join(parts) + f" {event.summary} {where}\n"


def _header_row() -> str:
    return " ".join(name.ljust(w) for name, w in _COLUMNS) + " SUMMARY (FILE:LINE)\n"


class _Output:
    """stdout that stops quietly when the reader goes away (``| head``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False
        self.pending: list[bytes] = []
        self.pending_size = 0

    def write(self, text: str) -> bool:
        if self.closed:
            return False
        try:
            self.stream.write(text)
        except BrokenPipeError:
            self._close()
            return False
        return True

    def write_bytes(self, data: bytes) -> bool:
        """Batched: one write per 64 KiB of lines (bytes go to the stream's buffer)."""
        if self.closed:
            return False
        self.pending.append(data)
        self.pending_size += len(data)
        return self.pending_size < 1 << 16 or self._drain()

    def _drain(self) -> bool:
        data, self.pending, self.pending_size = b"".join(self.pending), [], 0
        try:
            self.stream.flush()
            self.stream.buffer.write(data)
        except BrokenPipeError:
            self._close()
            return False
        return True

    def flush(self) -> None:
        if self.closed:
            return
        if self.pending and not self._drain():
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._close()

    def _close(self) -> None:
        self.closed = True
        # Later flushes (at interpreter exit) must not raise again on the dead pipe.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def _report(selection: Selection, stats_lines: Sequence[str], extra: Sequence[str] = ()) -> None:
    err = sys.stderr
    for note in selection.notes[:20]:
        print(f"note: {note}", file=err)
    if len(selection.notes) > 20:
        print(f"note: ... and {len(selection.notes) - 20} more", file=err)
    for line in [*stats_lines, *extra]:
        print(line, file=err)


# --------------------------------------------------------------------------- commands


def run_logs(args: argparse.Namespace) -> int:
    from harvester.logs.parse import ParseStats  # noqa: PLC0415
    from harvester.logs.pipeline import iter_lines  # noqa: PLC0415

    grep = None
    if args.grep is not None:
        try:
            grep = re.compile(args.grep)
        except re.error as exc:
            raise UsageError(f"--grep: not a valid regex: {exc}") from None
    selection = select_sources(args)
    stats = ParseStats()
    out = _Output(sys.stdout)
    print(f"harvester logs: {len(selection.sources)} file(s); {selection.clock_note}", file=sys.stderr)
    interrupted = False
    try:
        for text in iter_lines(
            selection.sources,
            stats=stats,
            tz=selection.tz,
            since=selection.since,
            until=selection.until,
            min_level=_LEVEL_NAMES[args.level],
            grep=grep,
        ):
            if not out.write_bytes(text):
                break
    except KeyboardInterrupt:  # Ctrl-C: what was read so far is still reported
        interrupted = True
    out.flush()
    _report(selection, stats.report(), ["interrupted"] if interrupted else [])
    return _exit(stats, interrupted)


def _exit(stats: ParseStats, interrupted: bool) -> int:
    if interrupted:
        return EXIT_SIGINT
    return EXIT_PARTIAL if stats.skipped_files else EXIT_OK


def parse_kinds(values: Sequence[str]) -> list[str]:
    """``--kind a,b --kind c`` -> the kinds asked for; an unknown one is a usage error listing them."""
    from harvester.logs.events import KINDS  # noqa: PLC0415
    from harvester.logs.pipeline import kind_matches  # noqa: PLC0415

    kinds = [k.strip() for value in values for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if not any(kind_matches(known, [k]) for known in KINDS)]
    if unknown:
        raise UsageError(f"--kind: unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return kinds


def run_events(args: argparse.Namespace) -> int:
    from harvester.logs.events import event_to_dict  # noqa: PLC0415
    from harvester.logs.parse import ParseStats  # noqa: PLC0415
    from harvester.logs.pipeline import iter_events  # noqa: PLC0415

    kinds = parse_kinds(args.kind)
    selection = select_sources(args)
    minimum = _SEVERITIES[args.severity]
    stats = ParseStats()
    out = _Output(sys.stdout)
    colour = not args.json and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(f"harvester events: {len(selection.sources)} file(s); {selection.clock_note}", file=sys.stderr)
    if not args.json:
        out.write(_header_row())
    counts: dict[str, int] = {}
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    interrupted = False
    try:
        for event in iter_events(
            selection.sources,
            stats=stats,
            tz=selection.tz,
            since=selection.since,
            until=selection.until,
            kinds=kinds,
        ):
            if event.severity < minimum:
                continue
            counts[event.kind] = counts.get(event.kind, 0) + 1
            line = encode(event_to_dict(event)) + "\n" if args.json else format_event_row(event, colour)
            if not out.write(line):
                break
    except KeyboardInterrupt:  # Ctrl-C: what was read so far is still reported
        interrupted = True
    out.flush()
    summary = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"
    extra = [f"events: {sum(counts.values())} ({summary})"] + (["interrupted"] if interrupted else [])
    _report(selection, stats.report(), extra)
    return _exit(stats, interrupted)
