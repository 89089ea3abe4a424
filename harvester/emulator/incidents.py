"""Seeded incidents in the generated run logs: failover, full resync, fork failure, slow fsync, restart.

Every instance has an incident on one day in ``period`` (the phase is seeded per instance,
so over any ``period`` consecutive days each instance has exactly one); the kind rotates
from one incident day to the next. An incident is planned for the whole instance, then
*scripted* for every replica it touches, so both sides of it agree: the old master and the
promoted replica of a failover log the same moments, with each other's IPs and cluster node
ids, and the other shards' masters of a cluster vote in the same election.

The scripts use Redis's own message strings (replication.c, cluster.c, rdb.c, aof.c,
server.c, Redis 5-7 wording) in the Redis 4+ line format. A script is plain data: lines
with their millisecond of the day, the windows in which a replica holds another role than
the fleet's (a failover, until the planned switch back), and the "quiet" windows in which
the replica logs nothing but the incident (so no routine line contradicts it, and a
restarted server logs nothing while it is down). :mod:`.logs` merges it into the blocks.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from .fleet import Instance

KINDS = ("failover", "full_resync", "restart", "fork_failure", "slow_fsync")
# The order an instance's incident days go through; the failover, the headline, comes twice.
_ROTATION = ("failover", "full_resync", "restart", "failover", "fork_failure", "slow_fsync")
_NEEDS_PEER = frozenset({"failover", "full_resync"})
_FIRST_MS = 30 * 60_000  # no incident before 00:30 ...
_LAST_MS = 21 * 3_600_000  # ... nor starting after 21:00 (the failover's switch back ends before 23:00)
_SLOW_FSYNC = (
    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without "
    "waiting for fsync to complete, this may slow down Redis."
)
_SYNTHESIZE = (
    "Before turning into a replica, using my own master parameters to synthesize a cached master: "
    "I may be able to synchronize with the new master with just a partial transfer."
)
_NO_REPLID = "0" * 40


@dataclass(frozen=True, slots=True)
class Incident:
    """One planned incident of an instance-day, with the topology its script needs."""

    kind: str  # one of KINDS
    day: date
    at_ms: int  # when it starts, milliseconds after the day's midnight (UTC)
    instance_id: str
    shard: str  # group name of the shard it happens in
    subject: str  # the replica it is about: failing master, resyncing replica, restarted/forking node
    peer: str  # the other side: promoted replica, or the resyncing replica's master; "" if none
    shard_ips: tuple[str, ...]  # the subject's shard, master first (fleet order)
    other_ips: tuple[str, ...]  # every replica of the instance's other shards
    other_masters: tuple[str, ...]  # the other shards' masters (they vote in a cluster election)
    cluster: bool  # Redis Cluster (elections) rather than HA (a controller sends REPLICAOF)
    controller: str  # address the HA controller's commands come from (the instance's IP)
    version: str  # Redis version, e.g. "6.2.6"


@dataclass(frozen=True, slots=True)
class Window:
    """From ``start_ms`` (inclusive) to ``end_ms`` (exclusive) a replica is ``role`` with ``peer``."""

    start_ms: int
    end_ms: int
    role: str  # "master" | "slave"
    peer: str


@dataclass(frozen=True, slots=True)
class Script:
    """What one replica's log shows of its incidents."""

    lines: tuple[tuple[int, str, str], ...]  # (ms of day, "pid:R", "L message"), in time order
    roles: tuple[Window, ...]  # where its role or peer differs from the fleet's
    quiet: tuple[tuple[int, int], ...]  # [start, end) windows with no routine lines, sorted, disjoint


EMPTY = Script((), (), ())


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def redis_version(engine_version: str) -> str:
    """The full Redis version a DCS engine version runs (what the start banner prints)."""
    major = engine_version.split(".", maxsplit=1)[0]
    return f"{major}.{'2.6' if major == '6' else '0.14'}"


def plan_day(seed: int, instance: Instance, day: date, period: int = 4) -> tuple[Incident, ...]:
    """The incidents of one instance-day: one on the instance's incident day, else none.

    ``period`` <= 0 disables incidents. Pure: same inputs, same plan, whatever the clock.
    """
    if period <= 0 or not instance.groups:
        return ()
    phase = int(_unit(seed, "incident-phase", instance.instance_id) * period)
    n = day.toordinal() + phase
    if n % period:
        return ()
    multi = [g for g in instance.groups if len(g.replicas) >= 2]
    kinds = [k for k in _ROTATION if multi or k not in _NEEDS_PEER]
    offset = int(_unit(seed, "incident-kind", instance.instance_id) * len(kinds))
    kind = kinds[(n // period + offset) % len(kinds)]
    groups = multi if kind in _NEEDS_PEER else list(instance.groups)
    group = groups[int(_unit(seed, "incident-shard", instance.instance_id, day) * len(groups))]
    ips = tuple(r.ip for r in group.replicas)
    if kind == "failover":
        subject, peer = ips[0], ips[1]
    elif kind == "full_resync":
        subject = ips[1 + int(_unit(seed, "incident-replica", instance.instance_id, day) * (len(ips) - 1))]
        peer = ips[0]
    else:
        subject = ips[int(_unit(seed, "incident-replica", instance.instance_id, day) * len(ips))]
        peer = ips[0] if subject != ips[0] else ""
    others = [g for g in instance.groups if g.group_name != group.group_name]
    at_ms = _FIRST_MS + int(_unit(seed, "incident-time", instance.instance_id, day) * (_LAST_MS - _FIRST_MS))
    return (
        Incident(
            kind=kind,
            day=day,
            at_ms=at_ms,
            instance_id=instance.instance_id,
            shard=group.group_name,
            subject=subject,
            peer=peer,
            shard_ips=ips,
            other_ips=tuple(r.ip for g in others for r in g.replicas),
            other_masters=tuple(g.replicas[0].ip for g in others),
            cluster=instance.cache_mode == "cluster",
            controller=instance.ip,
            version=redis_version(instance.engine_version),
        ),
    )


def script_for(seed: int, incidents: tuple[Incident, ...], ip: str) -> Script:
    """Everything ``ip``'s log shows of ``incidents``, merged and in time order."""
    if not incidents:
        return EMPTY
    return _script_for(seed, incidents, ip)


@functools.lru_cache(maxsize=4096)
def _script_for(seed: int, incidents: tuple[Incident, ...], ip: str) -> Script:
    parts = [_scripts(seed, inc).get(ip, EMPTY) for inc in incidents]
    lines = sorted((x for p in parts for x in p.lines), key=lambda x: x[0])
    roles = sorted((w for p in parts for w in p.roles), key=lambda w: w.start_ms)
    return Script(tuple(lines), tuple(roles), _merge(q for p in parts for q in p.quiet))


def _merge(windows: Iterator[tuple[int, int]] | list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _scripts(seed: int, inc: Incident) -> dict[str, Script]:
    book = _Book(seed, inc)
    {
        "failover": _failover,
        "full_resync": _full_resync,
        "restart": _restart,
        "fork_failure": _fork_failure,
        "slow_fsync": _slow_fsync,
    }[inc.kind](book, inc)
    return book.scripts()


def node_id(seed: int, ip: str) -> str:
    """A replica's 40-hex Redis Cluster node name, the same in every file that mentions it."""
    return hashlib.sha1(f"{seed}|cluster-node|{ip}".encode(), usedforsecurity=False).hexdigest()


class _Book:
    """Collects each replica's lines; one phase = one burst whose span is a quiet window."""

    def __init__(self, seed: int, inc: Incident) -> None:
        self.seed = seed
        self.rng = random.Random(f"{seed}|incident|{inc.kind}|{inc.instance_id}|{inc.day}|{inc.at_ms}")
        self.lines: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
        self.roles: dict[str, list[Window]] = defaultdict(list)
        self.extra_quiet: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.phase = 0
        self._seq = itertools.count()
        self._phase_of: dict[int, int] = {}

    def log(self, ip: str, t: int, letter: str, text: str, pid: int = 1) -> None:
        seq = next(self._seq)
        self._phase_of[seq] = self.phase
        self.lines[ip].append((t, seq, f"{pid}:{letter}", text))

    def role(self, ip: str, start: int, end: int, role: str, peer: str) -> None:
        self.roles[ip].append(Window(start, end, role, peer))

    def hex40(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def pid(self) -> int:
        return self.rng.randint(100, 65000)

    def node(self, ip: str) -> str:
        return node_id(self.seed, ip)

    def scripts(self) -> dict[str, Script]:
        out = {}
        for ip in set(self.lines) | set(self.roles) | set(self.extra_quiet):
            rows = sorted(self.lines.get(ip, []), key=lambda x: (x[0], x[1]))
            spans: dict[int, tuple[int, int]] = {}
            for t, seq, _, _ in rows:
                ph = self._phase_of[seq]
                a, b = spans.get(ph, (t, t))
                spans[ph] = (min(a, t), max(b, t))
            quiet = [(a, b + 1) for a, b in spans.values()] + self.extra_quiet.get(ip, [])
            out[ip] = Script(
                tuple((t, who, text) for t, _, who, text in rows),
                tuple(sorted(self.roles.get(ip, []), key=lambda w: w.start_ms)),
                _merge(quiet),
            )
        return out


def _client_info(book: _Book, ip: str, controller: str) -> str:
    """The CLIENT LIST line of the HA controller's connection, as REPLICAOF logs it."""
    r = book.rng
    return (
        f"id={r.randint(5, 9000)} addr={controller}:{r.randint(30000, 60000)} laddr={ip}:6379 "
        f"fd={r.randint(8, 40)} name=ha-{book.hex40()[:8]}-cmd age={r.randint(60, 900000)} idle=0 "
        "flags=x db=0 sub=0 psub=0 multi=4 qbuf=188 qbuf-free=20286 argv-mem=4 obl=45 oll=0 omem=0 "
        "tot-mem=61468 events=r cmd=exec user=default redir=-1"
    )


def _shift_id(old: str, offset: int, new: str) -> str:
    """What a promoted replica logs as it keeps its old master's history valid up to ``offset``."""
    return (
        f"# Setting secondary replication ID to {old}, valid up to offset: {offset}. "
        f"New replication ID is {new}"
    )


def _cow(version: str, what: str, mb: int) -> str:
    """The child's copy-on-write report: 6.2+ wording, else the older one."""
    if version >= "6.2":
        return f"* Fork CoW for {what}: current {mb} MB, peak {mb} MB, average {mb // 2} MB"
    return f"* {'RDB' if what == 'RDB' else 'AOF rewrite'}: {mb} MB of memory used by copy-on-write"


def _bgsave(book: _Book, ip: str, t: int, *, letter: str, version: str, for_sync: bool) -> int:
    """A successful BGSAVE on ``ip`` starting at ``t``; returns when it ends."""
    r = book.rng
    child = book.pid()
    if for_sync:
        book.log(ip, t, letter, "* Starting BGSAVE for SYNC with target: disk")
    book.log(ip, t + 1, letter, f"* Background saving started by pid {child}")
    done = t + r.randint(8_000, 25_000)
    book.log(ip, done, "C", "* DB saved on disk", pid=child)
    book.log(ip, done + 1, "C", _cow(version, "RDB", r.randint(2, 400)), pid=child)
    book.log(ip, done + 60, letter, "* Background saving terminated with success")
    return done + 60


def _connect(book: _Book, ip: str, t: int, master: str) -> int:
    book.log(ip, t, "S", f"* Connecting to MASTER {master}:6379")
    book.log(ip, t, "S", "* MASTER <-> REPLICA sync started")
    book.log(ip, t + 1, "S", "* Non blocking connect for SYNC fired the event.")
    book.log(ip, t + 2, "S", "* Master replied to PING, replication can continue...")
    return t + 3


def _partial(
    book: _Book, ip: str, t: int, master: str, *, replid: str, offset: int, new_id: str | None
) -> int:
    """``ip`` reconnects to ``master`` and continues from ``offset`` (both sides log it)."""
    t = _connect(book, ip, t, master)
    book.log(ip, t, "S", f"* Trying a partial resynchronization (request {replid}:{offset}).")
    book.log(master, t + 1, "M", f"* Replica {ip}:6379 asks for synchronization")
    book.log(
        master,
        t + 1,
        "M",
        f"* Partial resynchronization request from {ip}:6379 accepted. "
        f"Sending 0 bytes of backlog starting from offset {offset}.",
    )
    book.log(ip, t + 2, "S", "* Successful partial resynchronization with master.")
    if new_id:
        book.log(ip, t + 2, "S", f"# Master replication ID changed to {new_id}")
    book.log(ip, t + 2, "S", "* MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.")
    return t + 3


def _load(book: _Book, ip: str, t: int, version: str) -> int:
    """The replica's side of receiving and loading a full sync payload."""
    r = book.rng
    size = r.randint(20_000_000, 900_000_000)
    book.log(ip, t, "S", f"* MASTER <-> REPLICA sync: receiving {size} bytes from master to disk")
    t += size // 100_000
    book.log(ip, t, "S", "* MASTER <-> REPLICA sync: Flushing old data")
    t += r.randint(50, 2000)
    book.log(ip, t, "S", "* MASTER <-> REPLICA sync: Loading DB in memory")
    book.log(ip, t + 1, "S", f"* Loading RDB produced by version {version}")
    book.log(ip, t + 1, "S", f"* RDB age {r.randint(1, 30)} seconds")
    book.log(ip, t + 1, "S", f"* RDB memory usage when created {size * 1.9 / 1_048_576:.2f} Mb")
    t += size // 60_000
    if version >= "7":
        book.log(
            ip, t, "S", f"* Done loading RDB, keys loaded: {size // 900}, keys expired: {r.randint(0, 999)}."
        )
    book.log(ip, t, "S", "* MASTER <-> REPLICA sync: Finished with success")
    return t + 1


def _full_sync(
    book: _Book, ip: str, t: int, master: str, *, inc: Incident, asked: str, cached: bool = True
) -> int:
    """``ip`` (already connected and past PING) gets a full resync from ``master``: both sides."""
    r = book.rng
    book.log(master, t, "M", f"* Replica {ip}:6379 asks for synchronization")
    book.log(master, t, "M", asked)
    replid, offset = book.hex40(), r.randint(10**6, 10**10)
    end = _bgsave(book, master, t + 1, letter="M", version=inc.version, for_sync=True)
    book.log(ip, t + 3, "S", f"* Full resync from master: {replid}:{offset}")
    if cached:
        book.log(ip, t + 3, "S", "* Discarding previously cached master state.")
    done = _load(book, ip, end + 5, inc.version)
    book.log(master, done + 2, "M", f"* Synchronization with replica {ip}:6379 succeeded")
    return done + 3


def _failover(book: _Book, inc: Incident) -> None:
    """The master's host drops off the network; its replica takes over; later a planned switch back."""
    r, old, new = book.rng, inc.subject, inc.peer
    rest = tuple(ip for ip in inc.shard_ips if ip not in (old, new))
    t0 = inc.at_ms
    replid, offset = book.hex40(), r.randint(10**7, 10**11)
    # Phase 1: the link is lost, the replicas retry, the promotion happens.
    for ip in (new, *rest):
        book.log(ip, t0, "S", "# Connection with master lost.")
        book.log(ip, t0, "S", "* Caching the disconnected master state.")
        for i in range(1, 4):
            t = t0 + i * 1000 + r.randint(0, 40)
            book.log(ip, t, "S", f"* Connecting to MASTER {old}:6379")
            book.log(ip, t, "S", "* MASTER <-> REPLICA sync started")
            book.log(ip, t + 1, "S", "# Error condition on socket for SYNC: No route to host")
    new_id = book.hex40()
    if inc.cluster:
        won = _cluster_election(book, inc, t0, replid=replid, offset=offset, new_id=new_id)
    else:
        won = t0 + 10_000 + r.randint(0, 3000)
        book.log(new, won, "M", "* Discarding previously cached master state.")
        book.log(
            new,
            won,
            "M",
            _shift_id(replid, offset + 1, new_id),
        )
        book.log(
            new,
            won,
            "M",
            f"* MASTER MODE enabled (user request from '{_client_info(book, new, inc.controller)}')",
        )
        book.log(new, won + 3, "M", "# CONFIG REWRITE executed with success.")
    for ip in rest:
        t = won + r.randint(20, 900)
        if inc.cluster:
            book.log(
                ip,
                t,
                "S",
                f"# Configuration change detected. Reconfiguring myself as a replica of {book.node(new)}",
            )
        else:
            info = _client_info(book, ip, inc.controller)
            book.log(ip, t, "S", f"* REPLICAOF {new}:6379 enabled (user request from '{info}')")
            book.log(ip, t + 2, "S", "# CONFIG REWRITE executed with success.")
        _partial(book, ip, t + 90, new, replid=replid, offset=offset + 1, new_id=new_id)
    # The old master comes back, finds itself demoted, and resyncs in full (it took writes alone).
    back = t0 + r.randint(20_000, 45_000)
    book.extra_quiet[old].append((t0, back))  # cut off from its replicas: no routine sync lines
    if inc.cluster:
        book.log(old, t0 + 5200 + r.randint(0, 300), "M", "# Cluster state changed: fail")
    for ip in (new, *rest):
        book.log(old, back, "M", f"# Connection with replica {ip}:6379 lost.")
    demoted = back + r.randint(30, 1500)
    if inc.cluster:
        book.log(
            old,
            demoted,
            "M",
            f"# Configuration change detected. Reconfiguring myself as a replica of {book.node(new)}",
        )
        book.log(old, demoted, "S", f"* {_SYNTHESIZE}")
    else:
        book.log(old, demoted, "S", f"* {_SYNTHESIZE}")
        info = _client_info(book, old, inc.controller)
        book.log(old, demoted, "S", f"* REPLICAOF {new}:6379 enabled (user request from '{info}')")
        book.log(old, demoted + 2, "S", "# CONFIG REWRITE executed with success.")
    t = _connect(book, old, demoted + 80, new)
    if inc.cluster:
        book.log(old, t, "S", "# Cluster state changed: ok")
        for ip in (new, *rest, *inc.other_ips):
            book.log(
                ip,
                demoted + r.randint(40, 400),
                _letter(ip, inc, new),
                f"* Clear FAIL state for node {book.node(old)}: replica is reachable again.",
            )
    ahead = offset + 1 + r.randint(1000, 900_000)
    book.log(old, t, "S", f"* Trying a partial resynchronization (request {replid}:{ahead}).")
    asked = (
        "* Partial resynchronization not accepted: Requested offset for second ID was "
        f"{ahead}, but I can reply up to {offset + 1}"
    )
    synced = _full_sync(book, old, t + 1, new, inc=inc, asked=asked)
    # Phase 2: the planned switch back, 40 to 80 minutes later.
    book.phase += 1
    sb = synced + r.randint(40, 80) * 60_000
    offset2 = offset + r.randint(10**6, 10**8)
    final_id = book.hex40()
    if inc.cluster:
        back_won = _manual_failover(book, inc, sb, offset=offset2, cur_id=new_id, final_id=final_id)
        demote_new = back_won + 4
    else:
        back_won = sb
        book.log(
            old,
            sb,
            "M",
            _shift_id(new_id, offset2, final_id),
        )
        book.log(old, sb, "M", "# Connection with master lost.")
        book.log(old, sb, "M", "* Caching the disconnected master state.")
        book.log(old, sb, "M", "* Discarding previously cached master state.")
        book.log(
            old,
            sb,
            "M",
            f"* MASTER MODE enabled (user request from '{_client_info(book, old, inc.controller)}')",
        )
        book.log(old, sb + 2, "M", "# CONFIG REWRITE executed with success.")
        demote_new = sb + r.randint(300, 900)
        book.log(new, sb + 1, "M", f"# Connection with replica {old}:6379 lost.")
        book.log(new, demote_new, "S", f"* {_SYNTHESIZE}")
        info = _client_info(book, new, inc.controller)
        book.log(new, demote_new, "S", f"* REPLICAOF {old}:6379 enabled (user request from '{info}')")
        book.log(new, demote_new + 2, "S", "# CONFIG REWRITE executed with success.")
    _partial(book, new, demote_new + 80, old, replid=new_id, offset=offset2, new_id=final_id)
    for ip in rest:
        t = demote_new + r.randint(5, 200)
        if inc.cluster:
            book.log(
                ip,
                t,
                "S",
                f"# Configuration change detected. Reconfiguring myself as a replica of {book.node(old)}",
            )
        else:
            info = _client_info(book, ip, inc.controller)
            book.log(ip, t, "S", f"* REPLICAOF {old}:6379 enabled (user request from '{info}')")
            book.log(ip, t + 2, "S", "# CONFIG REWRITE executed with success.")
        _partial(book, ip, t + 90, old, replid=new_id, offset=offset2, new_id=final_id)
    # Roles between the two switches (the routine lines follow them).
    book.role(new, won, demote_new, "master", old)
    book.role(old, demoted, back_won, "slave", new)
    for ip in rest:
        book.role(ip, won, demote_new, "slave", new)


def _letter(ip: str, inc: Incident, new_master: str) -> str:
    """The role letter of a bystander during a failover: masters stay M, the promoted one is M."""
    return "M" if ip == new_master or ip in inc.other_masters else "S"


def _cluster_election(book: _Book, inc: Incident, t0: int, *, replid: str, offset: int, new_id: str) -> int:
    """FAIL detection, the replica's election and the other masters' votes; returns the promotion time."""
    r, old, new = book.rng, inc.subject, inc.peer
    rest = tuple(ip for ip in inc.shard_ips if ip not in (old, new))
    failed = t0 + 5000 + r.randint(0, 300)
    voters = inc.other_masters
    reporter = voters[0] if voters else new
    book.log(
        reporter,
        failed,
        _letter(reporter, inc, ""),
        f"* Marking node {book.node(old)} as failing (quorum reached).",
    )
    book.log(reporter, failed, _letter(reporter, inc, ""), "# Cluster state changed: fail")
    for ip in (new, *rest, *inc.other_ips):
        if ip == reporter:
            continue
        t = failed + r.randint(0, 3)
        book.log(
            ip,
            t,
            _letter(ip, inc, ""),
            f"* FAIL message received from {book.node(reporter)} about {book.node(old)}",
        )
        book.log(ip, t, _letter(ip, inc, ""), "# Cluster state changed: fail")
    delay = r.randint(500, 1000)
    epoch = r.randint(5, 60)
    book.log(
        new,
        failed + 4,
        "S",
        f"# Start of election delayed for {delay} milliseconds (rank #0, offset {offset}).",
    )
    for rank, ip in enumerate(rest, start=1):
        book.log(
            ip,
            failed + 4,
            "S",
            f"# Start of election delayed for {delay + 1000 * rank} milliseconds "
            f"(rank #{rank}, offset {offset}).",
        )
    start = failed + 4 + delay
    book.log(new, start, "S", f"# Starting a failover election for epoch {epoch}.")
    for ip in voters:
        book.log(ip, start + 2, "M", f"# Failover auth granted to {book.node(new)} for epoch {epoch}")
    won = start + 5
    book.log(new, won, "S", "# Failover election won: I'm the new master.")
    book.log(new, won, "S", f"# configEpoch set to {epoch} after successful failover")
    book.log(
        new,
        won,
        "M",
        _shift_id(replid, offset + 1, new_id),
    )
    book.log(new, won, "M", "* Discarding previously cached master state.")
    book.log(new, won, "M", "# Cluster state changed: ok")
    for ip in (*rest, *inc.other_ips):
        book.log(ip, won + r.randint(2, 60), _letter(ip, inc, new), "# Cluster state changed: ok")
    return won


def _manual_failover(book: _Book, inc: Incident, sb: int, *, offset: int, cur_id: str, final_id: str) -> int:
    """CLUSTER FAILOVER on the old master (now a replica): both sides; returns its promotion time."""
    r, old, new = book.rng, inc.subject, inc.peer
    epoch = r.randint(61, 120)
    book.log(old, sb, "S", "# Manual failover user request accepted.")
    book.log(new, sb, "M", f"# Manual failover requested by replica {book.node(old)}.")
    book.log(
        old, sb + 60, "S", f"# Received replication offset for paused master manual failover: {offset - 1}"
    )
    book.log(old, sb + 62, "S", "# All master replication stream processed, manual failover can start.")
    book.log(
        old, sb + 62, "S", f"# Start of election delayed for 0 milliseconds (rank #0, offset {offset - 1})."
    )
    book.log(old, sb + 160, "S", f"# Starting a failover election for epoch {epoch}.")
    for ip in inc.other_masters:
        book.log(ip, sb + 163, "M", f"# Failover auth granted to {book.node(old)} for epoch {epoch}")
    won = sb + 168
    book.log(old, won, "S", "# Failover election won: I'm the new master.")
    book.log(old, won, "S", f"# configEpoch set to {epoch} after successful failover")
    book.log(
        old,
        won,
        "M",
        _shift_id(cur_id, offset, final_id),
    )
    book.log(old, won, "M", "# Connection with master lost.")
    book.log(old, won, "M", "* Caching the disconnected master state.")
    book.log(old, won, "M", "* Discarding previously cached master state.")
    book.log(new, won + 1, "M", f"# Connection with replica {old}:6379 lost.")
    book.log(
        new,
        won + 4,
        "M",
        f"# Configuration change detected. Reconfiguring myself as a replica of {book.node(old)}",
    )
    book.log(new, won + 4, "S", f"* {_SYNTHESIZE}")
    return won


def _client_overflow(book: _Book, master: str, replica: str) -> str:
    r = book.rng
    omem = r.randint(268_435_456, 1_073_741_824)
    return (
        f"# Client id={r.randint(5, 900000)} addr={replica}:{r.randint(30000, 60000)} laddr={master}:6379 "
        f"fd={r.randint(8, 400)} name= age={r.randint(60, 900000)} idle=0 flags=S db=0 sub=0 psub=0 "
        f"multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 obl=0 oll={omem // 16384} omem={omem} "
        f"tot-mem={omem + 22000} events=r cmd=psync user=default redir=-1 "
        "scheduled to be closed ASAP for overcoming of output buffer limits."
    )


def _full_resync(book: _Book, inc: Incident) -> None:
    """A write burst overflows the replica's output buffer twice: two full resyncs, the second one holds."""
    r, rep, master = book.rng, inc.subject, inc.peer
    t0 = inc.at_ms
    replid, offset = book.hex40(), r.randint(10**7, 10**11)
    book.log(master, t0, "M", _client_overflow(book, master, rep))
    book.log(master, t0 + 1, "M", f"# Connection with replica {rep}:6379 lost.")
    book.log(rep, t0 + 2, "S", "# Connection with master lost.")
    book.log(rep, t0 + 2, "S", "* Caching the disconnected master state.")
    t = _connect(book, rep, t0 + 600, master)
    book.log(rep, t, "S", f"* Trying a partial resynchronization (request {replid}:{offset}).")
    book.log(master, t + 1, "M", f"* Replica {rep}:6379 asks for synchronization")
    book.log(
        master,
        t + 1,
        "M",
        f"* Unable to partial resync with replica {rep}:6379 for lack of backlog "
        f"(Replica request was: {offset}).",
    )
    end = _bgsave(book, master, t + 2, letter="M", version=inc.version, for_sync=True)
    book.log(rep, t + 4, "S", f"* Full resync from master: {book.hex40()}:{offset + r.randint(10**6, 10**8)}")
    book.log(rep, t + 4, "S", "* Discarding previously cached master state.")
    book.log(
        rep,
        end + 5,
        "S",
        f"* MASTER <-> REPLICA sync: receiving {r.randint(10**8, 10**9)} bytes from master to disk",
    )
    cut = end + r.randint(5_000, 20_000)
    book.log(master, cut, "M", _client_overflow(book, master, rep))
    book.log(master, cut + 1, "M", f"# Connection with replica {rep}:6379 lost.")
    book.log(rep, cut + 2, "S", "# I/O error trying to sync with MASTER: connection lost")
    t = _connect(book, rep, cut + 1000, master)
    book.log(rep, t, "S", "* Partial resynchronization not possible (no cached master)")
    _full_sync(
        book,
        rep,
        t + 1,
        master,
        inc=inc,
        asked=f"* Full resync requested by replica {rep}:6379",
        cached=False,
    )


def _restart(book: _Book, inc: Incident) -> None:
    """A planned restart: the shutdown sequence, a few seconds down, the start banner, the resync."""
    r, ip = book.rng, inc.subject
    is_master = ip == inc.shard_ips[0]
    me = "M" if is_master else "S"
    replicas = inc.shard_ips[1:] if is_master else ()
    t0 = inc.at_ms
    book.log(ip, t0, me, "# User requested shutdown...")
    book.log(ip, t0 + 1, me, "* Saving the final RDB snapshot before exiting.")
    saved = t0 + r.randint(200, 4000)
    book.log(ip, saved, me, "* DB saved on disk")
    book.log(ip, saved, me, "* Removing the pid file.")
    bye = saved + 1
    book.log(ip, bye, me, "# Redis is now ready to exit, bye bye...")
    up = bye + (r.randint(2_000, 4_000) if is_master else r.randint(20_000, 60_000))
    book.extra_quiet[ip].append((bye + 1, up))
    replid, offset = book.hex40(), r.randint(10**7, 10**11)
    if inc.peer and not is_master:
        book.log(inc.peer, bye + 1, "M", f"# Connection with replica {ip}:6379 lost.")
    for rep in replicas:
        book.log(rep, bye + 1, "S", "# Connection with master lost.")
        book.log(rep, bye + 1, "S", "* Caching the disconnected master state.")
        for t in range(bye + 800, up, 1000):
            book.log(rep, t, "S", f"* Connecting to MASTER {ip}:6379")
            book.log(rep, t, "S", "* MASTER <-> REPLICA sync started")
            book.log(rep, t, "S", "# Error condition on socket for SYNC: Connection refused")
    t = _banner(book, inc, ip, up, me)
    if is_master:
        new_id = book.hex40()
        for rep in replicas:
            c = _connect(book, rep, t + r.randint(100, 1000), ip)
            book.log(rep, c, "S", f"* Trying a partial resynchronization (request {replid}:{offset}).")
            asked = (
                "* Partial resynchronization not accepted: Replication ID mismatch (Replica asked for "
                f"'{replid}', my replication IDs are '{new_id}' and '{_NO_REPLID}')"
            )
            _full_sync(book, rep, c + 1, ip, inc=inc, asked=asked)
    elif inc.peer:
        _partial(book, ip, t + 1, inc.peer, replid=replid, offset=offset, new_id=None)


def _banner(book: _Book, inc: Incident, ip: str, t: int, me: str) -> int:
    """The start banner of a restarted server; returns when it is ready."""
    r = book.rng
    v = inc.version
    book.log(ip, t, "C", "# oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo")
    book.log(ip, t, "C", f"# Redis version={v}, bits=64, commit=00000000, modified=0, pid=1, just started")
    book.log(ip, t, "C", "# Configuration loaded")
    t += r.randint(1, 5)
    if v >= "6.2":
        book.log(ip, t, me, "* monotonic clock: POSIX clock_gettime")
    if inc.cluster:
        book.log(ip, t, me, f"* Node configuration loaded, I'm {book.node(ip)}")
    book.log(ip, t, me, f"* Running mode={'cluster' if inc.cluster else 'standalone'}, port=6379.")
    book.log(ip, t, me, "# Server initialized")
    book.log(ip, t + 1, me, f"* Loading RDB produced by version {v}")
    book.log(ip, t + 1, me, f"* RDB age {r.randint(3, 90)} seconds")
    load = r.randint(100, 9000)
    t += 1 + load
    book.log(ip, t, me, f"* DB loaded from disk: {load / 1000:.3f} seconds")
    if me == "S":
        book.log(ip, t, me, f"* {_SYNTHESIZE}")
    book.log(ip, t, me, "* Ready to accept connections")
    if inc.cluster:
        book.log(ip, t + r.randint(500, 2000), me, "# Cluster state changed: ok")
    return t + 1


def _fork_failure(book: _Book, inc: Incident) -> None:
    """BGSAVE cannot fork (no memory left for the child); retried every 5 s until it can."""
    r, ip = book.rng, inc.subject
    me = "M" if ip == inc.shard_ips[0] else "S"
    t = inc.at_ms
    changes, secs = r.choice(((10000, 60), (100, 300)))
    for _ in range(r.randint(3, 6)):
        book.log(ip, t, me, f"* {changes} changes in {secs} seconds. Saving...")
        book.log(ip, t, me, "# Can't save in background: fork: Cannot allocate memory")
        t += 5000 + r.randint(0, 100)
    book.log(ip, t, me, f"* {changes} changes in {secs} seconds. Saving...")
    _bgsave(book, ip, t, letter=me, version=inc.version, for_sync=False)


def _slow_fsync(book: _Book, inc: Incident) -> None:
    """An AOF rewrite saturates the disk; the main thread stops waiting for fsync, repeatedly."""
    r, ip = book.rng, inc.subject
    me = "M" if ip == inc.shard_ips[0] else "S"
    child = book.pid()
    t = inc.at_ms
    book.log(ip, t, me, f"* Background append only file rewriting started by pid {child}")
    for _ in range(r.randint(4, 8)):
        t += r.randint(2_000, 30_000)
        book.log(ip, t, me, f"* {_SLOW_FSYNC}")
    t += r.randint(1_000, 20_000)
    book.log(ip, t, "C", "* SYNC append only file rewrite performed", pid=child)
    book.log(ip, t + 1, "C", _cow(inc.version, "AOF rewrite", r.randint(2, 300)), pid=child)
    book.log(ip, t + 60, me, "* Background AOF rewrite terminated with success")
    book.log(
        ip,
        t + 61,
        me,
        f"* Residual parent diff successfully flushed to the rewritten AOF ({r.random():.2f} MB)",
    )
    book.log(ip, t + 61, me, "* Background AOF rewrite finished successfully")


def fleet_incidents(
    seed: int, instances: tuple[Instance, ...], days: list[date], period: int = 4
) -> list[str]:
    """One line per planned incident of ``instances`` on ``days``: what ``--list-incidents`` prints."""
    rows = []
    for day in days:
        for inst in instances:
            for inc in plan_day(seed, inst, day, period):
                s = inc.at_ms // 1000
                other = (
                    f" -> {inc.peer}"
                    if inc.kind == "failover"
                    else f" (master {inc.peer})"
                    if inc.peer
                    else ""
                )
                rows.append(
                    f"{day.isoformat()} {s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}  {inst.name}  "
                    f"{inst.cache_mode}  {inc.shard}  {inc.kind}  {inc.subject}{other}"
                )
    return rows
