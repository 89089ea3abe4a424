"""Each replica's role over time (master / replica / down / unknown), from its events.

The timeline draws these spans as bands. Only evidence moves a role: a start makes it
unknown until a role event or the line prefix says otherwise; a shutdown, a stop, a crash or
a failed load makes it down; a failed shutdown restores the role it had; an unclean restart
says the old process died at some point after it last wrote (``last_seen``), so the replica
is down from then. Before a lane's first evidence, its role is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from harvester.logs.model import Event, LogSource, Role, RoleSpan

__all__ = ["role_spans"]

_TO_ROLE = {"role.master": Role.MASTER, "role.replica": Role.REPLICA, "failover.promoted": Role.MASTER}
_DOWN = frozenset({"server.shutdown", "server.stopped", "crash", "server.load_failed"})


class _LaneRoles:
    def __init__(self, source: LogSource, start: datetime) -> None:
        self.source = source
        self.role = Role.UNKNOWN
        self.since = start
        self.before_down = Role.UNKNOWN
        self.spans: list[RoleSpan] = []

    def set(self, role: Role, at: datetime, start: datetime, end: datetime) -> None:
        at = min(max(at, start), end)
        if role == self.role:
            return
        if at > self.since:
            self._close(at)
        self.role, self.since = role, max(at, self.since)

    def _close(self, at: datetime) -> None:
        if self.spans and self.spans[-1].role == self.role and self.spans[-1].end == self.since:
            last = self.spans.pop()
            self.spans.append(RoleSpan(last.source, last.role, last.start, at))
        else:
            self.spans.append(RoleSpan(self.source, self.role, self.since, at))

    def finish(self, end: datetime) -> list[RoleSpan]:
        if end > self.since:
            self._close(end)
        return self.spans


def role_spans(events: Iterable[Event], *, start: datetime, end: datetime) -> list[RoleSpan]:
    """Spans covering ``[start, end]`` for every lane that has events, sorted by lane then time.

    Events before ``start`` set the role a lane enters the window with; events after
    ``end`` are ignored. Events must be in time order per lane (a merged stream is fine).
    """
    lanes: dict[tuple[str, str, str], _LaneRoles] = {}
    for event in events:
        lane = lanes.get(event.source.lane)
        if lane is None:
            lane = lanes[event.source.lane] = _LaneRoles(event.source, start)
        if event.time > end:
            continue
        role = _role_after(lane, event)
        if role is None:
            continue
        if event.kind == "server.unclean_restart":
            last_seen = _parse(event.details.get("last_seen"))
            if last_seen is not None:
                lane.set(Role.DOWN, last_seen, start, end)
        lane.set(role, event.time, start, end)
    out: list[RoleSpan] = []
    for key in sorted(lanes):
        out.extend(lanes[key].finish(end))
    return out


def _role_after(lane: _LaneRoles, event: Event) -> Role | None:
    """The role the lane holds after ``event``, or None when the event says nothing of it."""
    kind = event.kind
    if kind in _TO_ROLE:
        return _TO_ROLE[kind]
    if kind == "server.shutdown":
        if lane.role != Role.DOWN:
            lane.before_down = lane.role
        return Role.DOWN
    if kind in _DOWN:
        return Role.DOWN
    if kind == "server.shutdown_failed":
        return lane.before_down
    if kind in ("server.start", "server.unclean_restart"):
        return Role.UNKNOWN
    if kind == "role.observed" or lane.role == Role.UNKNOWN:
        # The extractor stamps each event with the role it knew; it fills an unknown gap.
        return event.role if event.role in (Role.MASTER, Role.REPLICA) else None
    return None


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
