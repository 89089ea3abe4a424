# ruff: noqa: E501 - the rule table reads best one rule per line, with its example
"""The table of Redis messages the event rules recognise: kind, severity, pattern, example.

Each rule is a regex anchored at the start of a record's message, written from the messages
in Redis's sources (``server.c``, ``replication.c``, ``networking.c``, ``rdb.c``, ``aof.c``,
``cluster.c``, ``debug.c``) from 2.x to 7.x; where the wording changed (``SLAVE`` became
``REPLICA`` in 5.0, ``Server started`` became ``Redis is starting`` in 4.0), both are
listed. Rules are looked up by the message's first word, then tested with ``startswith``
on their literal prefix before the regex, so a record costs a dict lookup and rarely more
than one regex. The table is also the README's (``python -m harvester.logs.rules``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from harvester.logs.model import Severity

__all__ = ["BENIGN", "FIRST_WORDS", "KINDS", "RULES", "Rule", "markdown_table", "match"]

INF, WRN, CRT = Severity.INFO, Severity.WARNING, Severity.CRITICAL
_PLAIN_WORD = re.compile(r"[\w=<>:/'!-]+")


@dataclass(frozen=True, slots=True)
class Rule:
    """One recognised message: ``pattern`` matches the message start; ``summary`` is a
    ``str.format`` template over its named groups plus ``{message}``."""

    kind: str
    severity: Severity
    pattern: re.Pattern[str]
    summary: str
    example: str  # the message as Redis writes it (with a version note when it matters)
    side: str = ""  # replication rules: "replica" or "master" side of the link
    only_on_change: bool = False  # role rules that repeat on every reconnection attempt
    words: tuple[str, ...] = ()  # the message's possible first words, when not plain in the regex
    prefix: str = ""  # literal text every match starts with: a cheap test before the regex

    @property
    def first_words(self) -> tuple[str, ...]:
        if self.words:
            return self.words
        word = self.pattern.pattern.split(" ", 1)[0]
        if not _PLAIN_WORD.fullmatch(word):
            raise ValueError(f"rule {self.kind} {self.pattern.pattern!r} needs explicit first words")
        return (word,)


def _r(kind: str, severity: Severity, regex: str, summary: str, example: str, **kw: Any) -> Rule:
    return Rule(kind, severity, re.compile(regex), summary, example, prefix=_literal_prefix(regex), **kw)


def _literal_prefix(regex: str) -> str:
    """The plain text a pattern starts with (up to its first special character)."""
    out = []
    escaped = False
    for ch in regex:
        if escaped:
            if ch.isalnum():  # \d, \w, \S...: a class, not a character
                break
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ".^$*+?{}[]|()":
            break
        else:
            out.append(ch)
    if out and regex[len("".join(out)) :][:1] in ("?", "*", "{"):
        out.pop()  # "x?" makes its last character optional
    return "".join(out)


_PEER = r"(?P<peer>\S+?)"

RULES: tuple[Rule, ...] = (
    # --- process life -----------------------------------------------------------------------
    _r("server.start", INF, r"oO0OoO0OoO0Oo Redis is starting", "Redis is starting",
       "oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo (4.0+)"),
    _r("server.start", INF, r"Server started, Redis version (?P<version>\S+)", "Redis {version} started",
       "Server started, Redis version 3.2.12 (2.x, 3.x)"),
    _r("server.ready", INF, r"Ready to accept connections", "ready to accept connections",
       "Ready to accept connections [tcp|unix|tls] (4.0+)"),
    _r("server.ready", INF, r"The server is now ready to accept connections", "ready to accept connections",
       "The server is now ready to accept connections on port 6379 (2.x, 3.x)"),
    _r("server.shutdown", WRN, r"Received (?P<signal>SIG[A-Z]+),? scheduling shutdown",
       "shutdown requested ({signal})", "Received SIGTERM scheduling shutdown... (2.x: 'SIGTERM, scheduling')"),
    _r("server.shutdown", WRN, r"User requested shutdown", "shutdown requested (SHUTDOWN command)",
       "User requested shutdown..."),
    _r("server.shutdown", WRN, r"Received shutdown signal during loading", "shutdown requested while loading",
       "Received shutdown signal during loading, scheduling shutdown."),
    _r("server.shutdown", WRN, r"You insist", "second SIGINT: exiting now", "You insist... exiting now."),
    _r("server.stopped", INF, r"Redis is now ready to exit", "stopped", "Redis is now ready to exit, bye bye..."),
    _r("server.shutdown_failed", CRT, r"Error trying to save the DB, can't exit",
       "shutdown failed (could not save), still running", "Error trying to save the DB, can't exit."),
    _r("server.shutdown_failed", CRT, r"Errors trying to (?:SHUTDOWN|shut down the server)",
       "shutdown failed, still running", "Errors trying to shut down the server. Check the logs for more information."),
    _r("server.load_failed", CRT, r"Fatal error loading the DB", "{message}",
       "Fatal error loading the DB: Invalid argument. Exiting."),
    _r("server.load_failed", CRT, r"Short read or OOM loading DB", "{message}",
       "Short read or OOM loading DB. Unrecoverable error, aborting now."),
    _r("server.load_failed", CRT, r"Bad file format reading the append only file", "{message}",
       "Bad file format reading the append only file: make a backup of your AOF file, then use ..."),
    _r("server.load_failed", CRT, r"Unrecoverable error reading the append only file", "{message}",
       "Unrecoverable error reading the append only file: ..."),
    _r("server.load_failed", CRT, r"Wrong RDB checksum", "{message}",
       "Wrong RDB checksum expected: (...) but got (...). Aborting now."),
    _r("crash", CRT, r"Redis (?P<version>\S+) crashed by signal: ?(?P<signal>\d+)",
       "crashed by signal {signal}", "Redis 6.2.6 crashed by signal: 11, si_code: 1 (2.6-5.x: no si_code)"),
    _r("crash", CRT, r"Crashed by signal: ?(?P<signal>\d+)", "crashed by signal {signal}",
       "Crashed by signal: 11, si_code: 1 (8.x)"),
    _r("crash", CRT, r"=== ASSERTION FAILED ===", "crashed: assertion failed", "=== ASSERTION FAILED ==="),
    _r("crash", CRT, r"Guru Meditation: (?P<reason>.*)", "crashed: {reason}",
       "Guru Meditation: Redis aborting for OUT OF MEMORY... #server.c:5201 (a panic)"),
    _r("memory.oom", CRT, r"Out Of Memory allocating (?P<bytes>\d+) bytes", "out of memory allocating {bytes} bytes",
       "Out Of Memory allocating 1048576 bytes!"),
    # --- roles ------------------------------------------------------------------------------
    _r("role.master", WRN, r"MASTER MODE enabled \((?P<request>user|failover) request",
       "became master (MASTER MODE enabled, {request} request)",
       "MASTER MODE enabled (user request from 'id=5 addr=... name=sentinel-...') (2.x: '(user request)')"),
    _r("role.master", WRN, r"Failover election won", "became master (won the cluster failover election)",
       "Failover election won: I'm the new master."),
    _r("role.replica", WRN, r"(?:REPLICAOF|SLAVE OF) (?P<peer>\S+) enabled", "became replica of {peer}",
       "REPLICAOF 10.0.0.1:6379 enabled (user request from '...') (before 5.0: SLAVE OF ...)",
       words=("REPLICAOF", "SLAVE")),
    _r("role.replica", WRN, r"Configuration change detected\. Reconfiguring myself as a replica of (?P<node>\w+)",
       "cluster made it a replica of node {node}",
       "Configuration change detected. Reconfiguring myself as a replica of <node id>"),
    _r("role.replica", WRN, r"Connecting to MASTER(?: (?P<peer>[^\s.]\S*))?", "replica of {peer}",
       "Connecting to MASTER 10.0.0.1:6379 (only when not already a replica)", only_on_change=True),
    _r("role.replica", WRN, r"Reconnecting to MASTER(?: (?P<peer>[^\s.]\S*))?", "replica of {peer}",
       "Reconnecting to MASTER 10.0.0.1:6379 after failure (7.x; only when not already a replica)",
       only_on_change=True),
    # --- the master link, replica side -----------------------------------------------------
    _r("master_link.lost", WRN, r"Connection with master lost", "lost the link to its master",
       "Connection with master lost.", side="replica"),
    _r("master_link.lost", WRN, r"MASTER time ?out: no data nor PING received", "master timed out (no data nor PING)",
       "MASTER timeout: no data nor PING received...", side="replica"),
    _r("sync.started", INF, r"MASTER <-> (?:REPLICA|SLAVE) sync started", "sync with master started",
       "MASTER <-> REPLICA sync started (before 5.0: MASTER <-> SLAVE)", side="replica"),
    _r("sync.full", WRN, r"Full resync from master: (?P<replid>\w+):(?P<offset>-?\d+)",
       "full resync from master (offset {offset})", "Full resync from master: <replid>:<offset>", side="replica"),
    _r("sync.full", WRN, r"MASTER <-> (?:REPLICA|SLAVE) sync: receiving (?:(?P<bytes>\d+) bytes|streamed RDB)",
       "full resync: receiving the RDB from master",
       "MASTER <-> SLAVE sync: receiving 123 bytes from master (2.x, when no 'Full resync' line came first)",
       side="replica"),
    _r("sync.partial", INF, r"Successful partial resynchronization with master", "partial resync with master",
       "Successful partial resynchronization with master.", side="replica"),
    _r("sync.partial", INF, r"MASTER <-> (?:REPLICA|SLAVE) sync: Master accepted a Partial Resynchronization",
       "partial resync with master", "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.",
       side="replica"),
    _r("sync.finished", INF, r"MASTER <-> (?:REPLICA|SLAVE) sync: Finished with success", "sync with master finished",
       "MASTER <-> REPLICA sync: Finished with success", side="replica"),
    *(
        _r("sync.failed", WRN, regex, "{message}", example, side="replica")
        for regex, example in (
            (r"Error condition on socket for SYNC", "Error condition on socket for SYNC: Connection refused"),
            (r"Timeout connecting to the MASTER", "Timeout connecting to the MASTER..."),
            (r"Timeout receiving bulk data from MASTER", "Timeout receiving bulk data from MASTER... If the problem ..."),
            (r"Unable to connect to MASTER", "Unable to connect to MASTER: Connection refused"),
            (r"I/O error (?:trying to sync with|reading bulk count from|writing to) MASTER",
             "I/O error trying to sync with MASTER: connection lost"),
            (r"MASTER aborted replication with an error", "MASTER aborted replication with an error: ERR ..."),
            (r"Failed trying to load the MASTER synchronization DB",
             "Failed trying to load the MASTER synchronization DB from disk"),
            (r"Master does not support PSYNC or is in error state",
             "Master does not support PSYNC or is in error state (reply: ...)"),
            (r"Master is currently unable to PSYNC", "Master is currently unable to PSYNC but should be in the future: ..."),
            (r"Error reply to PING from master", "Error reply to PING from master: '-NOAUTH Authentication required.'"),
            (r"Unable to AUTH to MASTER", "Unable to AUTH to MASTER: -ERR invalid password"),
            (r"Master did not respond to command during SYNC handshake",
             "Master did not respond to command during SYNC handshake"),
            (r"Opening the temp file needed for MASTER <-> (?:REPLICA|SLAVE) synchronization",
             "Opening the temp file needed for MASTER <-> REPLICA synchronization: Permission denied"),
            (r"Write error or short write writing to the DB dump file needed for MASTER",
             "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: ..."),
        )
    ),
    # --- replicas, master side ---------------------------------------------------------------
    _r("replica.attached", INF, r"(?:Replica|Slave) " + _PEER + r" asks for synchronization",
       "replica {peer} asks for sync", "Replica 10.0.0.2:6379 asks for synchronization (before 5.0: Slave ...)",
       side="master", words=("Replica", "Slave")),
    _r("replica.attached", INF, r"Slave ask for synchronization", "a replica asks for sync",
       "Slave ask for synchronization (2.x)", side="master"),
    _r("sync.full", WRN, r"Full resync requested by (?:replica|slave) " + _PEER + r"(?: |$)",
       "full resync requested by replica {peer}", "Full resync requested by replica 10.0.0.2:6379", side="master"),
    _r("sync.full", WRN, r"Starting BGSAVE for SYNC", "full resync: BGSAVE for a replica",
       "Starting BGSAVE for SYNC with target: disk (2.x; only without a 'Full resync requested' line)",
       side="master"),
    _r("sync.partial", INF, r"Partial resynchronization request from " + _PEER + r" accepted",
       "partial resync accepted for replica {peer}",
       "Partial resynchronization request from 10.0.0.2:6379 accepted. Sending 120 bytes of backlog ...",
       side="master"),
    _r("sync.finished", INF, r"Synchronization with (?:replica|slave)(?: (?P<peer>\S+))? succeeded",
       "sync with replica {peer} finished", "Synchronization with replica 10.0.0.2:6379 succeeded", side="master"),
    _r("sync.finished", INF, r"Streamed RDB transfer with (?:replica|slave) " + _PEER + r" succeeded",
       "diskless sync with replica {peer} finished",
       "Streamed RDB transfer with replica 10.0.0.2:6379 succeeded (socket). Waiting for REPLCONF ACK ...",
       side="master"),
    _r("sync.failed", WRN, r"SYNC failed\.", "{message}", "SYNC failed. BGSAVE child returned an error", side="master"),
    _r("sync.failed", WRN, r"BGSAVE for replication failed", "{message}", "BGSAVE for replication failed",
       side="master"),
    _r("sync.failed", WRN, r"Diskless rdb transfer, (?:read|write) error", "{message}",
       "Diskless rdb transfer, write error sending DB to replica: ...", side="master"),
    _r("replica.lost", WRN, r"Connection with (?:replica|slave) (?P<peer>.+?) lost", "lost replica {peer}",
       "Connection with replica 10.0.0.2:6379 lost. (before 5.0: slave)", side="master"),
    _r("replica.lost", WRN, r"Disconnecting timedout (?:replica|slave)(?: \(\w+ sync\))?: " + _PEER + r"$",
       "replica {peer} timed out", "Disconnecting timedout replica: 10.0.0.2:6379", side="master"),
    _r("client.output_buffer_limit", WRN,
       r"Client (?P<client>.+?) (?:scheduled to be )?closed (?:ASAP )?for overcoming of output buffer limits",
       "client {addr} closed: output buffer limit",
       "Client id=7 addr=10.0.0.2:6379 ... closed for overcoming of output buffer limits. "
       "(6.x+: 'scheduled to be closed ASAP'; a replica client (flags=S) is reported as replica.lost)"),
    # --- persistence -------------------------------------------------------------------------
    _r("bgsave.started", INF, r"Background saving started by pid (?P<child>\d+)", "BGSAVE started (child {child})",
       "Background saving started by pid 1234"),
    _r("bgsave.started", INF, r"Background RDB transfer started by pid (?P<child>\d+)",
       "diskless BGSAVE started (child {child})", "Background RDB transfer started by pid 1234"),
    _r("bgsave.succeeded", INF, r"Background saving terminated with success", "BGSAVE succeeded",
       "Background saving terminated with success"),
    _r("bgsave.succeeded", INF, r"Background RDB transfer terminated with success", "diskless BGSAVE succeeded",
       "Background RDB transfer terminated with success"),
    _r("bgsave.failed", CRT, r"Background saving error", "BGSAVE failed", "Background saving error"),
    _r("bgsave.failed", CRT, r"Background saving terminated by signal (?P<signal>\d+)",
       "BGSAVE child killed by signal {signal}", "Background saving terminated by signal 9"),
    _r("bgsave.failed", CRT, r"Background transfer error", "diskless BGSAVE failed", "Background transfer error"),
    _r("bgsave.failed", CRT, r"Background transfer terminated by signal (?P<signal>\d+)",
       "diskless BGSAVE child killed by signal {signal}", "Background transfer terminated by signal 9"),
    _r("bgsave.fork_failed", CRT, r"Can't save in background: fork: (?P<reason>.*)",
       "BGSAVE could not fork: {reason}", "Can't save in background: fork: Cannot allocate memory"),
    _r("aof.rewrite_started", INF, r"Background append only file rewriting started by pid (?P<child>\d+)",
       "AOF rewrite started (child {child})", "Background append only file rewriting started by pid 1234"),
    _r("aof.rewrite_finished", INF, r"Background AOF rewrite terminated with success", "AOF rewrite finished",
       "Background AOF rewrite terminated with success"),
    _r("aof.rewrite_finished", INF, r"Background AOF rewrite finished successfully", "AOF rewrite finished",
       "Background AOF rewrite finished successfully"),
    _r("aof.rewrite_failed", CRT, r"Background AOF rewrite terminated with error", "AOF rewrite failed",
       "Background AOF rewrite terminated with error"),
    _r("aof.rewrite_failed", CRT, r"Background AOF rewrite terminated by signal (?P<signal>\d+)",
       "AOF rewrite child killed by signal {signal}", "Background AOF rewrite terminated by signal 9"),
    _r("aof.fork_failed", CRT, r"Can't rewrite append only file in background: fork: (?P<reason>.*)",
       "AOF rewrite could not fork: {reason}",
       "Can't rewrite append only file in background: fork: Cannot allocate memory"),
    _r("aof.fsync_slow", WRN, r"Asynchronous AOF fsync is taking too long", "slow AOF fsync (disk busy?)",
       "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting ..."),
    *(
        _r("disk.error", CRT, regex, "{message}", example)
        for regex, example in (
            (r"Write error saving DB on disk", "Write error saving DB on disk: No space left on device"),
            (r"Write error while saving DB to the disk", "Write error while saving DB to the disk(rdbSaveRio): ..."),
            (r"Failed opening (?:the )?(?:temp )?(?:RDB file|\.rdb)",
             "Failed opening the RDB file dump.rdb (in server root dir /data) for saving: Permission denied"),
            (r"Error moving temp DB file", "Error moving temp DB file temp-89.rdb on the final destination ..."),
            (r"Error writing to the AOF file", "Error writing to the AOF file: No space left on device"),
            (r"Short write while writing to the AOF file", "Short write while writing to the AOF file: ..."),
            (r"Exiting on error writing to the append-only file", "Exiting on error writing to the append-only file: ..."),
            (r"Error trying to rename the temporary AOF file", "Error trying to rename the temporary AOF file ..."),
            (r"Can't open the append-only file", "Can't open the append-only file: Permission denied"),
        )
    ),
    # --- memory, security, configuration ---------------------------------------------------------
    _r("memory.maxmemory", WRN, r"WARNING: the new maxmemory value set via CONFIG SET", "{message}",
       "WARNING: the new maxmemory value set via CONFIG SET (...) is smaller than the current memory usage (...)"),
    _r("memory.maxmemory", WRN, r"WARNING: 32 bit instance detected but no memory limit set", "{message}",
       "WARNING: 32 bit instance detected but no memory limit set. Setting 3 GB maxmemory limit ..."),
    _r("memory.maxmemory", WRN, r"WARNING: You specified a maxmemory value that is less than 1MB", "{message}",
       "WARNING: You specified a maxmemory value that is less than 1MB (current value is ... bytes). ..."),
    _r("security.attack", WRN, r"Possible SECURITY ATTACK detected", "possible cross-protocol attack (POST/Host:)",
       "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. ..."),
    _r("config.overcommit", WRN, r"WARNING overcommit_memory is set to 0", "vm.overcommit_memory is 0",
       "WARNING overcommit_memory is set to 0! Background save may fail under low memory condition. ..."),
    _r("config.overcommit", WRN, r"WARNING Memory overcommit must be enabled", "vm.overcommit_memory is 0",
       "WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail ... (7.x)"),
    _r("config.thp", WRN, r"WARNING:? (?:you have )?Transparent Huge Pages", "Transparent Huge Pages enabled",
       "WARNING you have Transparent Huge Pages (THP) support enabled in your kernel. ...",
       words=("WARNING", "WARNING:")),
    _r("config.tcp_backlog", WRN, r"WARNING: The TCP backlog setting of (?P<backlog>\d+) cannot be enforced",
       "TCP backlog {backlog} capped by somaxconn",
       "WARNING: The TCP backlog setting of 511 cannot be enforced because /proc/sys/net/core/somaxconn is ..."),
    _r("config.open_files", WRN, r"You requested maxclients of (?P<maxclients>\d+)", "{message}",
       "You requested maxclients of 10000 requiring at least 10032 max file descriptors."),
    _r("config.open_files", WRN, r"(?:Server|Redis) can't set maximum open files", "{message}",
       "Server can't set maximum open files to 10032 because of OS error: Operation not permitted.",
       words=("Server", "Redis")),
    # --- cluster -----------------------------------------------------------------------------------
    _r("cluster.state_fail", CRT, r"Cluster state changed: fail", "cluster state: fail", "Cluster state changed: fail"),
    _r("cluster.state_ok", INF, r"Cluster state changed: ok", "cluster state: ok", "Cluster state changed: ok"),
    _r("cluster.node_failing", WRN, r"Marking node (?P<node>\w+)(?: \([^)]*\))? as failing",
       "node {node} marked as failing", "Marking node <node id> as failing (quorum reached)."),
    _r("cluster.node_failing", WRN, r"FAIL message received from (?P<source>\w+)(?: \([^)]*\))? about (?P<node>\w+)",
       "node {node} reported failing", "FAIL message received from <node id> about <node id>"),
    _r("cluster.node_recovered", INF, r"Clear FAIL state for node (?P<node>\w+)", "node {node} no longer failing",
       "Clear FAIL state for node <node id>: is reachable again."),
    _r("cluster.election", WRN, r"Starting a failover election for epoch (?P<epoch>\d+)",
       "failover election started (epoch {epoch})", "Starting a failover election for epoch 8."),
    _r("cluster.failover_blocked", WRN, r"Currently unable to failover: (?P<reason>.*)", "cannot fail over: {reason}",
       "Currently unable to failover: Waiting for votes, but majority still not reached."),
    _r("cluster.manual_failover", WRN, r"Manual failover user request accepted", "manual failover requested",
       "Manual failover user request accepted."),
    _r("cluster.manual_failover", WRN, r"Forced failover user request accepted", "forced failover requested",
       "Forced failover user request accepted."),
    _r("cluster.vote", INF, r"Failover auth granted to (?P<node>\w+)(?: \([^)]*\))? for epoch (?P<epoch>\d+)",
       "voted for {node} (epoch {epoch})", "Failover auth granted to <node id> for epoch 8"),
)  # fmt: skip

#: Warning-level messages that are routine, not worth a ``warning`` event (by first words).
BENIGN: tuple[str, ...] = (
    "Server initialized",
    "Redis version=",
    "Configuration loaded",
    "Warning: no config file specified",
    "configEpoch set to",
    "Start of election delayed",
    "Setting secondary replication ID",
    "Bio thread for job type",
    # A crash report's opening lines: the crash event comes from the line naming the cause.
    "=== REDIS BUG REPORT START",
    "------",
    "!!! Software Failure",
)

#: Kinds the rules and derivations can produce, for ``--kind`` validation and the README.
KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [r.kind for r in RULES]
        + [
            "role.observed",
            "failover.promoted",
            "failover.demoted",
            "master_link.restored",
            "sync.resync_storm",
            "server.unclean_restart",
            "warning",
        ]
    )
)

_BY_WORD: dict[str, tuple[Rule, ...]] = {}
for _rule in RULES:
    for _word in _rule.first_words:
        _BY_WORD[_word] = (*_BY_WORD.get(_word, ()), _rule)
FIRST_WORDS = frozenset(_BY_WORD)


def match(message: str) -> tuple[Rule, re.Match[str]] | None:
    text = message.lstrip() if message[:1] == " " else message
    word = text.split(" ", 1)[0]
    for rule in _BY_WORD.get(word, ()):
        if text.startswith(rule.prefix):
            m = rule.pattern.match(text)
            if m is not None:
                return rule, m
    return None


def markdown_table() -> str:
    """The README's event table, generated from :data:`RULES` so the two never disagree."""
    rows = ["| kind | severity | Redis message (example) |", "|---|---|---|"]
    for rule in RULES:
        example = rule.example.replace("|", "\\|")
        rows.append(f"| `{rule.kind}` | {rule.severity.name.lower()} | `{example}` |")
    derived = (
        ("role.observed", "info", "the M/S role letter of the line prefix changed, no message said why"),
        ("failover.promoted", "critical", "master link lost, then became master within 5 min"),
        ("failover.demoted", "warning", "was master, became a replica"),
        ("master_link.restored", "info", "first successful sync after the master link was lost"),
        ("sync.resync_storm", "critical", "3 full resyncs within 10 min on one replica"),
        ("server.unclean_restart", "critical", "a start with no shutdown or crash logged before it"),
        ("warning", "warning", "any other `#` line, except the benign ones listed below"),
    )
    for kind, severity, what in derived:
        rows.append(f"| `{kind}` | {severity} | *derived:* {what} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    sys.stdout.write(markdown_table() + "\n")
