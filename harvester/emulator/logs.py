"""Deterministic Redis run-log content, produced block by block.

A log file is a sequence of fixed-size blocks; block ``k`` depends only on
``(seed, replica ip, day, k)`` and on the size of the complete day's file (which sets how
the day's 24 hours are spread over the blocks). So any byte range can be produced without
generating what precedes it, a 2 GiB file costs one block of memory, and today's partial file
is a prefix of what the full day will become, exactly like a growing log.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

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

    def etag(self) -> str:
        raw = f"{self.seed}|{self.ip}|{self.day}|{self.size}|{self.full_size}".encode()
        return '"' + hashlib.md5(raw, usedforsecurity=False).hexdigest() + '"'

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
        blocks = max(1, -(-self.full_size // BLOCK_SIZE))
        ms_per_block = 86_400_000 // blocks
        return _render_block(self, k, length, k * ms_per_block, ms_per_block)


def _render_block(spec: LogSpec, k: int, length: int, t0_ms: int, span_ms: int) -> bytes:
    rng = random.Random(f"{spec.seed}|{spec.ip}|{spec.day.isoformat()}|{k}")
    day = f"{spec.day.day:02d} {_MONTHS[spec.day.month - 1]} {spec.day.year}"
    banner = _banner_lines(spec) if k == 0 else []
    stream = _events(spec, rng)
    rnd = rng.random
    out: list[str] = []
    remaining = length
    step2 = 2 * max(1, span_ms // max(8, length // 70))
    t, t_max = t0_ms, min(t0_ms + span_ms - 1, 86_399_999)
    hms_second, hms = -1, ""
    while True:
        who, msg = banner.pop(0) if banner else next(stream)
        second, ms = divmod(t, 1000)
        if second != hms_second:
            h, rest = divmod(second, 3600)
            hms_second, hms = second, f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"
        line = f"{who} {day} {hms}.{ms:03d} {msg}\n"
        if remaining - len(line) < _MIN_LINE_ROOM:
            break
        out.append(line)
        remaining -= len(line)
        t = min(t + (1 + int(rnd() * 3) if banner else 1 + int(rnd() * step2)), t_max)
    out.append(_pad_line(day, t, remaining))
    return "".join(out).encode()[:length]


def _fmt(day: str, t_ms: int, role_msg: tuple[str, str]) -> str:
    s, ms = divmod(t_ms, 1000)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{role_msg[0]} {day} {h:02d}:{m:02d}:{sec:02d}.{ms:03d} {role_msg[1]}\n"


def _pad_line(day: str, t_ms: int, room: int) -> str:
    """A last line filling the block exactly, so every block ends on a newline."""
    line = _fmt(day, t_ms, ("1:M", "* DB saved on disk"))
    if room < len(line):
        return " " * (room - 1) + "\n" if room > 0 else ""
    return line[:-1] + " " * (room - len(line)) + "\n"


def _banner_lines(spec: LogSpec) -> list[tuple[str, str]]:
    out = []
    for raw in _BANNER:
        role, msg = raw.split(" ", 1)
        out.append((f"1:{role}", msg.format(version=spec.version)))
    return out


def _events(spec: LogSpec, rng: random.Random) -> Iterator[tuple[str, str]]:
    """An endless, plausible sequence of Redis log events for one replica."""
    me = "1:M" if spec.role == "master" else "1:S"
    while True:
        roll = rng.random()
        child = f"{100 + int(rng.random() * 65000)}:C"
        if roll < 0.45:
            changes, secs = rng.choice(((1, 3600), (100, 300), (10000, 60)))
            yield me, f"* {changes} changes in {secs} seconds. Saving..."
            yield me, f"* Background saving started by pid {child[:-2]}"
            yield child, "* DB saved on disk"
            yield child, f"* Fork CoW for RDB: current {rng.randint(0, 9)} MB, peak {rng.randint(0, 9)} MB"
            yield me, "* Background saving terminated with success"
        elif roll < 0.65:
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
        elif roll < 0.85 and spec.role != "master":
            yield me, f"* Connecting to MASTER {spec.peer_ip}:6379"
            yield me, "* MASTER <-> REPLICA sync started"
            yield me, "* Non blocking connect for SYNC fired the event."
            yield me, "* Master replied to PING, replication can continue..."
            yield (
                me,
                f"* MASTER <-> REPLICA sync: receiving {rng.randrange(9_000_000)} bytes from master to disk",
            )
            yield me, "* MASTER <-> REPLICA sync: Flushing old data"
            yield me, "* MASTER <-> REPLICA sync: Loading DB in memory"
            yield me, "* MASTER <-> REPLICA sync: Finished with success"
        elif roll < 0.85:
            yield me, f"* Replica {spec.peer_ip}:6379 asks for synchronization"
            yield me, "* Full resync requested by replica; starting BGSAVE for SYNC with target: disk"
            yield me, f"* Background saving started by pid {child[:-2]}"
            yield child, "* DB saved on disk"
            yield me, f"* Synchronization with replica {spec.peer_ip}:6379 succeeded"
        elif roll < 0.93:
            yield (
                me,
                (
                    "# WARNING: The TCP backlog setting of 511 cannot be enforced because "
                    "/proc/sys/net/core/somaxconn is set to the lower value of 128."
                ),
            )
        else:
            cid = rng.randint(1000, 999_999)
            yield (
                me,
                (
                    f"# Client id={cid} addr={spec.peer_ip}:{rng.randint(30000, 60000)} "
                    f"laddr={spec.ip}:6379 fd=12 name= age=0 idle=0 flags=N db=0 cmd=psync "
                    "closed for overcoming of output buffer limits."
                ),
            )
