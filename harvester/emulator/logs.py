"""Deterministic Redis run-log content, produced block by block.

A log file is a sequence of fixed-size blocks; block ``k`` depends only on
``(seed, replica ip, day, k)`` and on the size of the complete day's file (which sets how
the day's 24 hours are spread over the blocks). So any byte range can be produced without
generating what precedes it, a 2 GiB file costs one block of memory, and today's partial file
is a prefix of what the full day will become, exactly like a growing log.

Incidents (:mod:`.incidents`) are scripted lines with absolute times of the day, so they do not
depend on the file's size: block ``k`` merges in the script lines that fall in its time span,
keeps room for them, follows the script's role changes and stays silent in its quiet windows.
Both sides of a failover therefore show the same moments whatever their files' sizes.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from .incidents import Incident, Script, script_for

BLOCK_SIZE = 64 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MIN_LINE_ROOM = 64

_BANNER = (
    "C # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
    "C # Redis version={version}, bits=64, commit=00000000, modified=0, pid=1, just started",
    "C # Configuration loaded",
    "M * monotonic clock: POSIX clock_gettime",
    "M * Running mode=standalone, port=6379.",
    "M # WARNING: The TCP backlog setting of 511 cannot be enforced because "
    "/proc/sys/net/core/somaxconn is set to the lower value of 128.",
    "M # Server initialized",
    "M # WARNING overcommit_memory is set to 0! Background save may fail under low memory condition. "
    "To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the "
    "command 'sysctl vm.overcommit_memory=1' for this to take effect.",
    "M * Loading RDB produced by version {version}",
    "M * RDB age 12 seconds",
    "M * DB loaded from disk: 0.013 seconds",
    "M * Ready to accept connections",
)


@dataclass(frozen=True, slots=True)
class LogSpec:
    """Everything that determines a log file's bytes."""

    seed: int
    ip: str
    day: date
    size: int
    full_size: int
    role: str = "master"
    peer_ip: str = "192.168.0.1"
    version: str = "6.2.6"
    incidents: tuple[Incident, ...] = ()  # the instance-day's incidents (see .incidents.plan_day)
    started: bool = True  # the process started at midnight: the file opens with the start banner

    def etag(self) -> str:
        raw = f"{self.seed}|{self.ip}|{self.day}|{self.size}|{self.full_size}"
        if self.incidents:
            raw += f"|{self.incidents!r}"
        if not self.started:
            raw += "|running"
        return '"' + hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest() + '"'

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes ``[start, end]`` (inclusive, like HTTP ranges) one block at a time."""
        last = self.size - 1 if end is None else min(end, self.size - 1)
        pos = max(0, start)
        while pos <= last:
            k, inner = divmod(pos, BLOCK_SIZE)
            block = self.block(k)
            stop = min(len(block), last - k * BLOCK_SIZE + 1)
            chunk = block[inner:stop]
            if pos + len(chunk) == self.size:
                chunk = chunk[:-1] + b"\n"
            yield chunk
            pos += len(chunk)

    def read_all(self) -> bytes:
        """The whole file; for tests and small files only."""
        return b"".join(self.iter_range())

    def block(self, k: int) -> bytes:
        length = min(BLOCK_SIZE, self.full_size - k * BLOCK_SIZE)
        if length <= 0:
            return b""
        return _render_block(self, k, length)


class _FilePlan:
    """One file's incident script, rendered for its day, and the time warp that skips its quiet windows.

    Routine lines are spread over the file's *active* time: the day minus the script's quiet
    windows. Block ``k`` covers an equal share of active time, so no block ever falls wholly in a
    quiet window (even in a 2 GiB file whose blocks span 2.6 s), and a quiet window costs no bytes:
    the routine line after it simply carries a later time. Each script line sits at the active
    instant where its quiet window begins.
    """

    def __init__(self, script: Script, day: str) -> None:
        self.lines = [_fmt(day, t, (who, msg)) for t, who, msg in script.lines]
        self._starts = [a for a, _ in script.quiet]
        self._ends = [b for _, b in script.quiet]
        self._active_starts: list[int] = []  # active instant at which each quiet window begins
        self._shift: list[int] = []  # quiet milliseconds up to the end of each window
        shift = 0
        for a, b in script.quiet:
            self._active_starts.append(a - shift)
            shift += b - a
            self._shift.append(shift)
        self.active_day = 86_400_000 - shift
        self.pos = [self.active(t) for t, _, _ in script.lines]
        self.roles = script.roles
        self._role_starts = [w.start_ms for w in script.roles]

    def active(self, t: int) -> int:
        """The active instant of real time ``t`` (a time in a quiet window maps to its start)."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0:
            return t
        if t < self._ends[i]:
            return self._active_starts[i]
        return t - self._shift[i]

    def real(self, u: int) -> tuple[int, int]:
        """Real time of active instant ``u`` (after any window starting there), and the window index."""
        i = bisect.bisect_right(self._active_starts, u) - 1
        return (u + self._shift[i], i) if i >= 0 else (u, -1)

    def state_at(self, t: int, role: str, peer: str) -> tuple[str, str]:
        """Role and peer at real time ``t``: the script's window if one holds, else the fleet's."""
        i = bisect.bisect_right(self._role_starts, t) - 1
        if i >= 0 and t < self.roles[i].end_ms:
            return self.roles[i].role, self.roles[i].peer
        return role, peer


@functools.lru_cache(maxsize=256)
def _file_plan(seed: int, ip: str, day: date, incidents: tuple[Incident, ...]) -> _FilePlan:
    stamp = f"{day.day:02d} {_MONTHS[day.month - 1]} {day.year}"
    return _FilePlan(script_for(seed, incidents, ip), stamp)


def _render_block(spec: LogSpec, k: int, length: int) -> bytes:
    """Block ``k`` covers the share of the day's active time its bytes are of the whole file."""
    rng = random.Random(f"{spec.seed}|{spec.ip}|{spec.day.isoformat()}|{k}")
    day = f"{spec.day.day:02d} {_MONTHS[spec.day.month - 1]} {spec.day.year}"
    plan = _file_plan(spec.seed, spec.ip, spec.day, spec.incidents) if spec.incidents else None
    active_day = plan.active_day if plan is not None else 86_400_000
    u0 = k * BLOCK_SIZE * active_day // spec.full_size
    u1 = (k * BLOCK_SIZE + length) * active_day // spec.full_size
    span_ms = max(1, u1 - u0)
    pending: list[str] = []
    pos: list[int] = []
    if plan is not None:
        lo = bisect.bisect_left(plan.pos, u0)
        hi = bisect.bisect_left(plan.pos, u1 if u1 < active_day else active_day + 1)
        pending, pos = plan.lines[lo:hi], plan.pos[lo:hi]
    reserve = sum(len(x) for x in pending)
    while pending and reserve > length // 2:  # a tiny file keeps the start of its incident only
        reserve -= len(pending.pop())
    banner = _banner_lines(spec) if k == 0 and spec.started else []
    role, peer, window = spec.role, spec.peer_ip, -1
    stream = _events(spec.ip, role, peer, rng)
    rnd = rng.random
    out: list[str] = []
    remaining = length
    step2 = 2 * max(1, span_ms // max(8, (length - reserve) // 70))
    u, u_max = u0, min(u0 + span_ms - 1, active_day - 1)
    hms_second, hms = -1, ""
    p = 0
    while True:
        if p < len(pending) and not banner and pos[p] <= u:
            out.append(pending[p])
            remaining -= len(pending[p])
            reserve -= len(pending[p])
            p += 1
            continue
        t = u
        if plan is not None and not banner:
            t, w = plan.real(u)
            state = plan.state_at(t, spec.role, spec.peer_ip)
            if state != (role, peer) or w != window:  # no routine group straddles an incident
                (role, peer), window = state, w
                stream = _events(spec.ip, role, peer, rng)
        who, msg = banner.pop(0) if banner else next(stream)
        second, ms = divmod(t, 1000)
        if second != hms_second:
            h, rest = divmod(second, 3600)
            hms_second, hms = second, f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"
        line = f"{who} {day} {hms}.{ms:03d} {msg}\n"
        if remaining - reserve - len(line) < (_MIN_LINE_ROOM if out else 0):
            break
        out.append(line)
        remaining -= len(line)
        u = min(u + (1 + int(rnd() * 3) if banner else 1 + int(rnd() * step2)), u_max)
    out.extend(pending[p:])
    remaining -= sum(len(x) for x in pending[p:])
    if out and remaining > 0:  # trailing blanks on the last line make the block end on a newline
        out[-1] = out[-1][:-1] + " " * remaining + "\n"
    elif remaining > 0:
        out.append(" " * (remaining - 1) + "\n")
    return "".join(out).encode()[:length]


def _fmt(day: str, t_ms: int, role_msg: tuple[str, str]) -> str:
    s, ms = divmod(t_ms, 1000)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{role_msg[0]} {day} {h:02d}:{m:02d}:{sec:02d}.{ms:03d} {role_msg[1]}\n"


def _banner_lines(spec: LogSpec) -> list[tuple[str, str]]:
    """The start banner; past the configuration a replica's lines carry S, as Redis 4+ writes them."""
    out = []
    for raw in _BANNER:
        role, msg = raw.split(" ", 1)
        if role == "M" and spec.role != "master":
            role = "S"
        out.append((f"1:{role}", msg.format(version=spec.version)))
    return out


def _events(ip: str, role: str, peer_ip: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """An endless, plausible sequence of routine Redis log lines for one replica in ``role``.

    Routine means what a healthy replica writes all day: RDB saves and AOF rewrites, now and
    then a replication blip resumed by a partial resync, rarely a client dropped for its output
    buffer. Nothing here is an incident: full resyncs, failovers, restarts, fork failures and
    slow fsyncs come from :mod:`.incidents`, on their seeded days only.
    """
    me = "1:M" if role == "master" else "1:S"
    while True:
        roll = rng.random()
        child = f"{100 + int(rng.random() * 65000)}:C"
        if roll < 0.015:
            offset = rng.randrange(10**6, 10**11)
            if role != "master":
                yield me, "# Connection with master lost."
                yield me, "* Caching the disconnected master state."
                yield me, f"* Connecting to MASTER {peer_ip}:6379"
                yield me, "* MASTER <-> REPLICA sync started"
                yield me, "* Non blocking connect for SYNC fired the event."
                yield me, "* Master replied to PING, replication can continue..."
                yield (
                    me,
                    f"* Trying a partial resynchronization (request {rng.getrandbits(160):040x}:{offset}).",
                )
                yield me, "* Successful partial resynchronization with master."
                yield me, "* MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization."
            else:
                yield me, f"# Connection with replica {peer_ip}:6379 lost."
                yield me, f"* Replica {peer_ip}:6379 asks for synchronization"
                yield (
                    me,
                    f"* Partial resynchronization request from {peer_ip}:6379 accepted. "
                    f"Sending {rng.randrange(20_000)} bytes of backlog starting from offset {offset}.",
                )
        elif roll < 0.02 and role == "master":
            cid, omem = rng.randint(1000, 999_999), rng.randint(33_554_432, 67_108_864)
            app = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(2, 250)}"
            yield (
                me,
                (
                    f"# Client id={cid} addr={app}:{rng.randint(30000, 60000)} laddr={ip}:6379 "
                    f"fd={rng.randint(8, 900)} name= age={rng.randint(1, 90000)} idle=0 flags=N db=0 "
                    "sub=1 psub=0 multi=-1 qbuf=0 "
                    f"qbuf-free=0 argv-mem=0 obl=0 oll={omem // 16384} omem={omem} tot-mem={omem + 22000} "
                    "events=rw cmd=subscribe user=default redir=-1 "
                    "scheduled to be closed ASAP for overcoming of output buffer limits."
                ),
            )
        elif roll < 0.65:
            changes, secs = rng.choice(((1, 3600), (100, 300), (10000, 60)))
            yield me, f"* {changes} changes in {secs} seconds. Saving..."
            yield me, f"* Background saving started by pid {child[:-2]}"
            yield child, "* DB saved on disk"
            yield child, f"* Fork CoW for RDB: current {rng.randint(0, 9)} MB, peak {rng.randint(0, 9)} MB"
            yield me, "* Background saving terminated with success"
        else:
            yield me, f"* Background append only file rewriting started by pid {child[:-2]}"
            yield child, "* SYNC append only file rewrite performed"
            yield me, "* AOF rewrite child asks to stop sending diffs."
            yield me, "* Background AOF rewrite terminated with success"
            yield (
                me,
                "* Residual parent diff successfully flushed to the rewritten AOF "
                f"(0.{rng.randrange(99):02d} MB)",
            )
            yield me, "* Background AOF rewrite finished successfully"
