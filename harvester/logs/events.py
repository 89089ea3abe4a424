"""Typed events from Redis log records: what happened on each replica, in Redis's own words.

The messages recognised are the table in :mod:`harvester.logs.rules`. Beyond one line, per
replica (a *lane*: instance, shard, replica):

* ``role.observed``: the role letter of the line prefix (``M``/``S``) changed, or showed a
  role for the first time after a start, without a message that says why;
* ``failover.promoted``: the master link was lost, then this replica became master within
  :data:`FAILOVER_WINDOW`; ``failover.demoted``: a master became a replica;
* ``master_link.restored``: the first successful sync after the master link was lost;
* ``sync.resync_storm``: :data:`STORM_COUNT` full resyncs within :data:`STORM_WINDOW`;
* ``server.unclean_restart``: a start while the previous process never logged a shutdown or
  a crash (killed, OOM-killed, host lost); ``last_seen`` says when it last wrote.

Any other ``#`` (warning) line stays visible as a ``warning`` event, except the known benign
ones in :data:`BENIGN` and the lines of a crash report after its ``crash`` event.

Longer than our usual 400 lines on purpose: the per-lane state machine that derives events
across lines (roles, failovers, storms, unclean restarts) only reads well in one piece; the
one-line message table it consults is already apart, in :mod:`harvester.logs.rules`.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from harvester.logs.model import Event, Level, LogRecord, LogSource, Role, Severity
from harvester.logs.rules import BENIGN, FIRST_WORDS, KINDS, RULES, Rule, markdown_table, match

INF, WRN, CRT = Severity.INFO, Severity.WARNING, Severity.CRITICAL

__all__ = [
    "BENIGN",
    "FAILOVER_WINDOW",
    "KINDS",
    "RULES",
    "STORM_COUNT",
    "STORM_WINDOW",
    "Interesting",
    "Rule",
    "event_to_dict",
    "extract",
    "iso_utc",
    "markdown_table",
]

FAILOVER_WINDOW = timedelta(minutes=5)
STORM_WINDOW = timedelta(minutes=10)
STORM_COUNT = 3
#: Repeats of the same kind (and peer) closer than this are one event (7.x logs "Ready to
#: accept connections" once per listener; a replica logs two lines per partial resync).
DEDUPE_WINDOW = timedelta(seconds=2)
SUMMARY_MAX = 200
#: Lines a new process writes just before its start line (3.x raises its file limit, 7.x
#: warns about overcommit) are its own, not a previous process's last words.
STARTUP_WINDOW = timedelta(seconds=10)

_DEDUPE = frozenset(
    {
        "server.ready",
        "sync.partial",
        "master_link.lost",
        "server.shutdown",
        "server.shutdown_failed",
        "replica.lost",
    }
)
_LIFE_END = frozenset({"server.stopped", "crash", "server.load_failed"})


# --------------------------------------------------------------------------- selection


class Interesting:
    """A parser :data:`~harvester.logs.parse.Selector` keeping the lines a rule may want.

    Keeps warning lines, notice lines whose first word starts a rule, and lines where the
    role letter changes (debug and verbose lines only for that: no rule's message is logged
    at those levels). For the lines a starting process writes first (its start line, 3.x's
    open-files notice, 4.0+'s pre-init ``C`` warnings) it asks for the line before too: the
    previous process's last words, for ``server.unclean_restart``. Use one per lane.
    """

    _START = frozenset({b"oO0OoO0OoO0Oo", b"Server", b"Increased", b"WARNING:"})

    def __init__(self) -> None:
        self.letter = 0

    def __call__(self, line: bytes, start: int, level: int, role: int) -> int:
        code = 0
        if role and role not in (67, self.letter):  # 'C' lines say nothing of the role
            self.letter = role
            code = 1
        if level in _ROUTINE_LEVELS:  # no rule's message is debug or verbose
            return code
        end = line.find(b" ", start)
        word = line[start:end] if end > 0 else line[start:]
        if not word:
            stripped = line[start:].lstrip()
            word = stripped.split(b" ", 1)[0]
        if word in self._START:
            if word in (b"oO0OoO0OoO0Oo", b"Server"):
                self.letter = role if role != 67 else 0
            return 2
        if word in _WORD_BYTES:
            return 1
        if level == 35:  # '#'
            return 2 if role == 67 else 1
        return code


_WORD_BYTES = frozenset(w.encode() for w in FIRST_WORDS)
_ROUTINE_LEVELS = frozenset(b".-")


# --------------------------------------------------------------------------- extraction


@dataclass(slots=True)
class _Lane:
    """What the rules remember about one replica between records."""

    role: Role = Role.UNKNOWN
    letter: Role | None = None
    down: bool = False  # a shutdown, stop or crash since the last start
    role_before_shutdown: Role = Role.UNKNOWN
    last_time: datetime | None = None
    link_lost_at: datetime | None = None
    attempt_full: bool = False  # the current sync attempt already reported a full resync
    aof_done: bool = False  # the current AOF rewrite's end was reported (it has two lines)
    crashed: set[int] = field(default_factory=set)
    start_pid: int | None = None
    pid: int | None = None  # the pid of the last record
    burst_start: datetime | None = None  # a run of that pid's lines without a long gap began
    before_burst: datetime | None = None  # the last line before that run
    recent: dict[tuple[str, str], datetime] = field(default_factory=dict)
    fulls: deque[datetime] = field(default_factory=deque)
    storm_at: datetime | None = None
    # A role seen only in the line prefix is held back for DEDUPE_WINDOW: the message that
    # explains it (MASTER MODE enabled...) often follows a line or two later, and then the
    # explicit event replaces the guess. Events behind it wait too, to keep time order.
    held: list[Event] = field(default_factory=list)
    held_until: datetime | None = None
    held_role: Role | None = None

    def restart(self, pid: int | None) -> None:
        """A new process: forget what the old one was doing, keep the cross-restart memory."""
        self.role = Role.UNKNOWN
        self.letter = None
        self.down = False
        self.role_before_shutdown = Role.UNKNOWN
        self.link_lost_at = None
        self.attempt_full = False
        self.crashed = set()
        self.start_pid = pid

    def previous_process_last(self, record: LogRecord) -> datetime | None:
        """When the process before the one starting at ``record`` last wrote, if one did.

        A start line from a pid other than the last line's means the new process wrote
        nothing before it; otherwise the lines just before the start (the same pid, without
        a long gap) are the new process's own start-up, and the old one's last line is the
        one before them. (4.0+ writes pre-start warnings as ``C``; pid 1 in a container
        repeats: only the gap then tells the processes apart.)
        """
        if self.last_time is None:
            return None
        if record.pid is not None and self.pid is not None and record.pid != self.pid:
            return self.last_time
        if self.burst_start is not None and record.time - self.burst_start <= STARTUP_WINDOW:
            return self.before_burst
        return self.last_time


def _letter_role(record: LogRecord) -> Role | None:
    return record.role if record.role in (Role.MASTER, Role.REPLICA) else None


def _summary(rule: Rule, m: re.Match[str], message: str) -> tuple[str, dict[str, str]]:
    if "{" not in rule.summary:  # most rules: a fixed summary, no fields
        return rule.summary, {}
    details = {k: v for k, v in m.groupdict().items() if v is not None}
    values = {**{k: "(unknown)" for k in m.groupdict()}, **details, "message": message.strip()}
    if rule.kind == "client.output_buffer_limit":
        values["addr"] = _client_field(details.get("client", ""), "addr") or "?"
    text = rule.summary.format(**values)
    return (text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 3] + "..."), details


def _client_field(client: str, name: str) -> str:
    for part in client.split(" "):
        if part.startswith(name + "="):
            return part[len(name) + 1 :]
    return ""


def _event(
    record: LogRecord,
    kind: str,
    severity: Severity,
    role: Role,
    summary: str,
    *,
    details: dict[str, str] | None = None,
) -> Event:
    return Event(record.time, kind, severity, record.source, role, summary, record.line, details or {})


def extract(records: Iterable[LogRecord]) -> Iterator[Event]:
    """Events from one replica's records in time order (several replicas may be mixed: the
    rules keep their memory per lane, so a merged stream works too)."""
    lanes: dict[tuple[str, str, str], _Lane] = {}
    for record in records:
        lane = lanes.get(record.source.lane)
        if lane is None:
            lane = lanes[record.source.lane] = _Lane()
        if lane.held and lane.held_until is not None and record.time > lane.held_until:
            yield from _release(lane)
        events = _on_record(lane, record)
        if lane.held:
            _explain_held(lane, events)
            lane.held.extend(events)
        elif any(e.kind == "role.observed" for e in events):
            lane.held = events
            lane.held_until = record.time + DEDUPE_WINDOW
            lane.held_role = next(e.role for e in events if e.kind == "role.observed")
        else:
            yield from events
    for lane in lanes.values():
        yield from _release(lane)


def _explain_held(lane: _Lane, events: list[Event]) -> None:
    """An explicit role message confirms the held guess: it replaces ``role.observed`` (and a
    demotion derived from the guess moves after it, where the message put it)."""
    explicit = next(
        (e for e in events if e.kind in ("role.master", "role.replica") and e.role == lane.held_role), None
    )
    if explicit is None:
        return
    demoted = [e for e in lane.held if e.kind == "failover.demoted"]
    lane.held = [e for e in lane.held if e.kind not in ("role.observed", "failover.demoted")]
    if demoted and not any(e.kind == "failover.demoted" for e in events):
        moved = dataclasses.replace(
            demoted[0], time=explicit.time, line=explicit.line, details=explicit.details
        )
        events.insert(events.index(explicit) + 1, moved)


def _release(lane: _Lane) -> list[Event]:
    out, lane.held, lane.held_until, lane.held_role = lane.held, [], None, None
    return out


def _on_record(lane: _Lane, record: LogRecord) -> list[Event]:
    # Redis logs every message of the rules at notice or warning level; debug and verbose
    # lines (Accepted..., Client closed connection...) only tell the role letter.
    found = None
    if record.level >= Level.NOTICE:
        found = match(record.message)
        if found is None and record.continuation:
            found = _crash_in_continuation(record)
    rule = found[0] if found else None
    letter = _letter_role(record)
    events: list[Event] = []
    kind = rule.kind if rule is not None else ""
    if kind.startswith("role."):
        # The message says what the role is; the letter it is written with may be the old
        # one ("Reconfiguring myself as a replica" is written as M), so it proves nothing.
        if letter is not None:
            lane.letter = letter
    elif kind != "server.start":
        events += _observe_letter(lane, record, letter)
    if rule is not None and found is not None:
        events += _apply(lane, record, rule, found[1])
    elif record.level is Level.WARNING:
        events += _generic_warning(lane, record)
    if kind == "server.start":  # a new process: its first letter is news
        events += _observe_letter(lane, record, letter)
    _track_process(lane, record)
    return events


def _track_process(lane: _Lane, record: LogRecord) -> None:
    """Follow runs of one process's lines (see :meth:`_Lane.previous_process_last`)."""
    pid_changed = lane.pid is not None and record.pid != lane.pid
    lane.pid = record.pid
    if pid_changed or lane.last_time is None or record.time - lane.last_time > STARTUP_WINDOW:
        lane.before_burst = lane.last_time
        lane.burst_start = record.time
    lane.last_time = record.time


def _observe_letter(lane: _Lane, record: LogRecord, letter: Role | None) -> list[Event]:
    if letter is None or letter == lane.letter:
        return []
    lane.letter = letter
    if lane.role == letter:
        return []
    before = lane.role
    lane.role = letter
    out = [_event(record, "role.observed", INF, letter, f"role from the line prefix: {letter.value}")]
    if before == Role.MASTER and letter == Role.REPLICA:
        out.append(_event(record, "failover.demoted", WRN, letter, "was master, now a replica"))
    if letter == Role.MASTER:
        out += _promoted(lane, record)
    return out


def _promoted(lane: _Lane, record: LogRecord) -> list[Event]:
    """``failover.promoted`` when the master link was lost shortly before becoming master."""
    lost = lane.link_lost_at
    lane.link_lost_at = None
    if lost is None:
        return []
    waited = (record.time - lost).total_seconds()
    if not 0 <= waited <= FAILOVER_WINDOW.total_seconds():
        return []
    return [
        _event(
            record,
            "failover.promoted",
            CRT,
            Role.MASTER,
            f"promoted to master {waited:.1f} s after losing its master link",
            details={"link_lost_at": iso_utc(lost), "seconds": f"{waited:.3f}"},
        )
    ]


def _crash_in_continuation(record: LogRecord) -> tuple[Rule, re.Match[str]] | None:
    """A crash line that is not a record of its own (a raw write, a torn prefix)."""
    for line in record.continuation[:8]:
        found = match(line)
        if found is not None and found[0].kind == "crash":
            return found
    return None


def _generic_warning(lane: _Lane, record: LogRecord) -> list[Event]:
    text = record.message.strip()
    if not text or text.startswith(BENIGN):
        return []
    if record.pid is not None and record.pid in lane.crashed:
        return []  # the rest of a crash report
    summary = text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 3] + "..."
    return [_event(record, "warning", WRN, _role_now(lane, record), summary)]


def _role_now(lane: _Lane, record: LogRecord) -> Role:
    if lane.role != Role.UNKNOWN:
        return lane.role
    return _letter_role(record) or Role.UNKNOWN


_RECENT_KEEP = timedelta(seconds=10)  # longer than any window the ``recent`` times serve


def _deduped(lane: _Lane, kind: str, key: str, now: datetime) -> bool:
    if kind not in _DEDUPE:
        return False
    last = lane.recent.get((kind, key))
    lane.recent[(kind, key)] = now
    if len(lane.recent) > 256:  # peers come and go (ports): keep memory flat over weeks
        lane.recent = {k: t for k, t in lane.recent.items() if timedelta(0) <= now - t <= _RECENT_KEEP}
    return last is not None and timedelta(0) <= now - last <= DEDUPE_WINDOW


def _apply(lane: _Lane, record: LogRecord, rule: Rule, m: re.Match[str]) -> list[Event]:
    """One matched rule: the state it changes and the event(s) it yields."""
    kind, now = rule.kind, record.time
    summary, details = _summary(rule, m, record.message)
    if rule.side:
        details["side"] = rule.side
    out: list[Event] = []

    if kind == "server.start":
        if _deduped_start(lane, record):
            return out
        last = lane.previous_process_last(record)
        if last is not None and not lane.down:
            out.append(
                _event(
                    record,
                    "server.unclean_restart",
                    CRT,
                    Role.UNKNOWN,
                    "restarted without a logged shutdown or crash (killed?); last line before at "
                    + iso_utc(last),
                    details={"last_seen": iso_utc(last)},
                )
            )
        lane.restart(record.pid)
        out.append(_event(record, kind, rule.severity, Role.UNKNOWN, summary, details=details))
        return out

    if kind == "crash":
        if record.pid is not None and record.pid in lane.crashed:
            return out
        if record.pid is not None:
            lane.crashed.add(record.pid)
        lane.down = True
        out.append(_event(record, kind, rule.severity, _role_now(lane, record), summary, details=details))
        return out

    if kind in ("role.master", "role.replica"):
        target = Role.MASTER if kind == "role.master" else Role.REPLICA
        if rule.only_on_change and lane.role == target:
            return out
        before = lane.role
        lane.role = target
        if kind == "role.replica" and "peer" not in details and "node" not in details:
            summary = "became a replica"
        out.append(_event(record, kind, rule.severity, target, summary, details=details))
        if target == Role.MASTER:
            out += _promoted(lane, record)
        if target == Role.REPLICA and before == Role.MASTER:
            out.append(
                _event(record, "failover.demoted", WRN, target, "was master, now a replica", details=details)
            )
        return out

    if kind == "server.shutdown":
        if not lane.down:
            lane.role_before_shutdown = lane.role
        lane.down = True
    elif kind in _LIFE_END:
        lane.down = True
    elif kind == "server.shutdown_failed":
        lane.down = False
        lane.role = lane.role_before_shutdown
    elif kind == "master_link.lost":
        if lane.link_lost_at is None:
            lane.link_lost_at = now
    elif kind == "sync.started":
        lane.attempt_full = False
    elif kind == "aof.rewrite_started":
        lane.aof_done = False
    elif kind in ("aof.rewrite_finished", "aof.rewrite_failed"):
        if lane.aof_done:
            return out
        lane.aof_done = True
    elif kind == "sync.full":
        if rule.side == "replica":
            if lane.attempt_full and "receiving" in rule.pattern.pattern:
                return out
            lane.attempt_full = True
        elif rule.pattern.pattern.startswith("Starting BGSAVE"):
            last = lane.recent.get(("sync.full", "master"))
            if last is not None and timedelta(0) <= now - last <= timedelta(seconds=5):
                return out
        if rule.side == "master":
            lane.recent[("sync.full", "master")] = now
    elif kind == "client.output_buffer_limit":
        client = details.get("client", "")
        flags = _client_field(client, "flags")
        if "S" in flags or _client_field(client, "cmd") in ("psync", "sync"):
            kind = "replica.lost"
            details = {
                "peer": _client_field(client, "addr"),
                "reason": "output buffer limit",
                "side": "master",
            }
            summary = f"lost replica {details['peer'] or '?'}: output buffer limit"

    if _deduped(lane, kind, details.get("peer", ""), now):
        return out
    role = _role_now(lane, record)
    out.append(_event(record, kind, rule.severity, role, summary, details=details))

    if kind in ("sync.finished", "sync.partial") and rule.side == "replica" and lane.link_lost_at is not None:
        down = (now - lane.link_lost_at).total_seconds()
        out.append(
            _event(
                record,
                "master_link.restored",
                INF,
                role,
                f"master link restored after {down:.1f} s",
                details={"link_lost_at": iso_utc(lane.link_lost_at), "seconds": f"{down:.3f}"},
            )
        )
        lane.link_lost_at = None
    if kind == "sync.full":
        out += _storm(lane, record, role)
    return out


def _deduped_start(lane: _Lane, record: LogRecord) -> bool:
    """A second start line from the process that just started (within the dedupe window,
    nothing stopped in between) is the same start, whatever mix of versions wrote it."""
    return (
        lane.start_pid is not None
        and lane.start_pid == record.pid
        and lane.last_time is not None
        and timedelta(0) <= record.time - lane.last_time <= DEDUPE_WINDOW
        and not lane.down
    )


def _storm(lane: _Lane, record: LogRecord, role: Role) -> list[Event]:
    now = record.time
    lane.fulls.append(now)
    while lane.fulls and now - lane.fulls[0] > STORM_WINDOW:
        lane.fulls.popleft()
    if len(lane.fulls) < STORM_COUNT:
        return []
    if lane.storm_at is not None and now - lane.storm_at <= STORM_WINDOW:
        return []
    lane.storm_at = now
    minutes = STORM_WINDOW.total_seconds() / 60
    return [
        _event(
            record,
            "sync.resync_storm",
            CRT,
            role,
            f"{len(lane.fulls)} full resyncs within {minutes:g} min",
            details={"count": str(len(lane.fulls)), "since": iso_utc(lane.fulls[0])},
        )
    ]


# --------------------------------------------------------------------------- output


def iso_utc(moment: datetime) -> str:
    """``2026-11-27T10:00:00.123Z``: UTC, milliseconds, the form every output uses."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


SEVERITY_NAMES = {s: s.name.lower() for s in Severity}
ROLE_NAMES = {r: r.value for r in Role}


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an event (``harvester events --json``, a bundle's ``events.jsonl``)."""
    source: LogSource = event.source
    return {
        "time": iso_utc(event.time),
        "kind": event.kind,
        "severity": SEVERITY_NAMES[event.severity],
        "instance": source.instance,
        "instance_id": source.instance_id,
        "shard": source.shard,
        "replica": source.replica,
        "role": ROLE_NAMES[event.role],
        "summary": event.summary,
        "file": source.path,
        "line": event.line,
        "details": dict(event.details),
    }


if __name__ == "__main__":  # pragma: no cover - kept for the README's earlier command
    sys.stdout.write(markdown_table() + "\n")
