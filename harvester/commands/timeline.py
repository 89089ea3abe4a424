"""``harvester timeline`` and an incident bundle's ``events.jsonl`` + ``timeline.html``.

Both read the same way as ``harvester events`` (:mod:`harvester.logs.pipeline`). The role
bands need every event of a lane, not only the kinds asked for and not only those inside the
window (the role a replica enters the window with comes from before it), so the lanes are
read whole and filtered here: ``--kind`` and ``--severity`` choose the markers, ``--since``
and ``--until`` the drawn window.

Exit codes as ``harvester events``: 0 done; 1 some file could not be read (the page shows the
others); 2 bad input. A window without a single event still writes a page that says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harvester.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from harvester.logs.model import Event, LogSource, RoleSpan, Severity

if TYPE_CHECKING:  # the parser loads only when a command runs, not when the CLI builds its parser
    from harvester.logs.parse import ParseStats

__all__ = ["Timeline", "add_command", "build_timeline", "bundle_reading", "run_timeline"]

_SEVERITIES = {"info": Severity.INFO, "warning": Severity.WARNING, "critical": Severity.CRITICAL}


def add_command(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Register ``timeline`` with the same source filters as ``logs`` and ``events``."""
    from harvester.commands.logs import add_source_filters  # noqa: PLC0415

    p = sub.add_parser(
        "timeline",
        help="one self-contained HTML page: role bands and events per replica on one time axis",
        epilog=epilog,
    )
    add_source_filters(p)
    p.add_argument(
        "--kind", action="append", default=[], metavar="KIND[,KIND...]", help="only these kinds as markers"
    )
    p.add_argument(
        "--severity", choices=tuple(_SEVERITIES), default="info", help="minimum severity of markers"
    )
    p.add_argument("--html", type=Path, required=True, metavar="FILE", help="where to write the page")
    p.add_argument("--title", help="page title (default: the instances shown)")
    p.set_defaults(handler=run_timeline)


@dataclass(frozen=True, slots=True)
class Timeline:
    """What a page shows: the markers, the bands, and every event read (for ``events.jsonl``)."""

    events: list[Event]  # every event of the selected lanes, time order
    shown: list[Event]  # in the window, of the chosen kinds and severity: the markers
    spans: list[RoleSpan]

    @property
    def lanes(self) -> int:
        return len({e.source.lane for e in self.shown} | {s.source.lane for s in self.spans})


def build_timeline(
    sources: Sequence[LogSource],
    *,
    stats: ParseStats,
    tz: tzinfo = UTC,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[str] = (),
    min_severity: Severity = Severity.INFO,
) -> Timeline:
    """Read the lanes whole, then cut markers and bands to the window (the whole read when open)."""
    from harvester.logs.pipeline import iter_events, kind_matches  # noqa: PLC0415
    from harvester.logs.roles import role_spans  # noqa: PLC0415

    events = list(iter_events(sources, stats=stats, tz=tz))
    in_window = [
        e for e in events if (since is None or e.time >= since) and (until is None or e.time < until)
    ]
    shown = [
        e for e in in_window if e.severity >= min_severity and (not kinds or kind_matches(e.kind, kinds))
    ]
    if not events:
        return Timeline(events, shown, [])
    start = since if since is not None else min(e.time for e in events)
    end = until if until is not None else max(e.time for e in events)
    if end <= start:
        return Timeline(events, shown, [])
    return Timeline(events, shown, role_spans(events, start=start, end=end))


def default_title(sources: Sequence[LogSource]) -> str:
    names = sorted({s.instance or s.instance_id or Path(s.path).name for s in sources})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"Redis timeline: {shown}" if shown else "Redis timeline"


def render(timeline: Timeline, *, title: str, clock_note: str, generated_at: datetime) -> str:
    from harvester.logs.timeline import render_html  # noqa: PLC0415

    note = clock_note[:1].upper() + clock_note[1:] + "."
    return render_html(timeline.shown, timeline.spans, title=title, generated_at=generated_at, time_note=note)


def run_timeline(args: argparse.Namespace) -> int:
    from harvester.archive.files import write_bytes_atomic  # noqa: PLC0415
    from harvester.commands.logs import parse_kinds, select_sources  # noqa: PLC0415
    from harvester.logs.parse import ParseStats  # noqa: PLC0415

    kinds = parse_kinds(args.kind)
    if args.html.is_dir():
        raise UsageError(f"--html {args.html}: is a folder; give the file to write")
    selection = select_sources(args)
    print(f"harvester timeline: {len(selection.sources)} file(s); {selection.clock_note}", file=sys.stderr)
    stats = ParseStats()
    timeline = build_timeline(
        selection.sources,
        stats=stats,
        tz=selection.tz,
        since=selection.since,
        until=selection.until,
        kinds=kinds,
        min_severity=_SEVERITIES[args.severity],
    )
    page = render(
        timeline,
        title=args.title or default_title(selection.sources),
        clock_note=selection.clock_note,
        generated_at=datetime.now(UTC),
    )
    try:
        write_bytes_atomic(args.html, page.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"--html {args.html}: cannot write ({exc.strerror or exc})") from None
    for note in selection.notes[:20]:
        print(f"note: {note}", file=sys.stderr)
    for line in stats.report():
        print(line, file=sys.stderr)
    print(
        f"timeline: {timeline.lanes} replica lane(s), {len(timeline.shown)} of {len(timeline.events)} "
        f"events as markers, {len(timeline.spans)} role spans",
        file=sys.stderr,
    )
    print(args.html)
    return EXIT_PARTIAL if stats.skipped_files else EXIT_OK


def bundle_reading(bundle: Path, *, title: str, generated_at: datetime) -> tuple[bytes, bytes, str]:
    """``events.jsonl`` and ``timeline.html`` of an incident bundle's logs, and a one-line account.

    Every event of the bundle's logs goes into ``events.jsonl`` (as ``harvester events --json``
    prints them) and onto the page; instance clocks are read as UTC.
    """
    from harvester.logs.events import event_to_dict  # noqa: PLC0415
    from harvester.logs.parse import ParseStats  # noqa: PLC0415
    from harvester.logs.sources import discover  # noqa: PLC0415

    sources = discover([bundle])
    stats = ParseStats()
    timeline = build_timeline(sources, stats=stats)
    lines = "".join(
        json.dumps(event_to_dict(e), ensure_ascii=False, separators=(",", ":")) + "\n"
        for e in timeline.events
    )
    page = render(
        timeline,
        title=title,
        clock_note="times are UTC; instance clocks read as UTC",
        generated_at=generated_at,
    )
    account = (
        f"{len(sources)} log file(s), {len(timeline.events)} events, {timeline.lanes} replica lane(s)"
        + (f", {len(stats.skipped_files)} file(s) unreadable" if stats.skipped_files else "")
    )
    # An undecodable file name is a lone surrogate here: backslashreplace makes it a JSON \\udcXX escape.
    return lines.encode("utf-8", "backslashreplace"), page.encode("utf-8"), account
