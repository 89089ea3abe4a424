"""Typed records that flow one way through the pipeline.

config -> Instance -> Target -> Replica (in a Group) -> LogFile -> SignedLink -> ArchivedFile -> manifest

The DCS client (:mod:`harvester.cloud.dcs`) turns the wire JSON into these records once, at
its boundary; nothing past it sees a dict from the API (except ``raw``, kept verbatim for
incident bundles).

Every file's journey ends in exactly one :class:`FileResult`; the run summary and the exit
code are computed from those records alone, so there is one place that decides "did it work".
Secrets travel in :class:`Secret` and signed URLs in :class:`SignedUrl`: both refuse to print
their sensitive part, so a stray ``repr`` in a log line or exception cannot leak them.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, TypeVar, cast
from urllib.parse import SplitResult, urlsplit, urlunsplit

#: The ``query_time`` values DCS accepts when asked to collect run logs (contract section 2.1):
#: ``0`` is today so far, ``N`` the N complete days before today.
QUERY_TIMES = (0, 1, 3, 7)

Clock = Callable[[], datetime]
_V = TypeVar("_V", str, date)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the one clock every default reads."""
    return datetime.now(UTC)


def _no_raw() -> Mapping[str, Any]:
    return MappingProxyType({})


class Secret:
    """A credential that never shows itself in ``str``/``repr``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def redact_url(url: str) -> str:
    """Drop query string, fragment and userinfo: what remains is safe to log and store."""
    return _redacted(urlsplit(url))


def _redacted(parts: SplitResult) -> str:
    netloc = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a malformed port must not turn redaction into a crash
        port = None
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class SignedUrl:
    """A pre-signed OBS URL: its query string is a bearer credential, so it prints redacted."""

    __slots__ = ("_redacted", "_split", "_url")

    def __init__(self, url: str) -> None:
        self._url = url
        # Worked out once, when first asked: every download names its link's host, scheme and
        # redacted form several times (vetting, error labels), and the URL never changes.
        self._split: SplitResult | None = None
        self._redacted: str | None = None

    def reveal(self) -> str:
        return self._url

    def _parts(self) -> SplitResult:
        if self._split is None:
            self._split = urlsplit(self._url)
        return self._split

    @property
    def redacted(self) -> str:
        if self._redacted is None:
            self._redacted = _redacted(self._parts())
        return self._redacted

    @property
    def host(self) -> str:
        return (self._parts().hostname or "").lower()

    @property
    def scheme(self) -> str:
        return self._parts().scheme.lower()

    def __repr__(self) -> str:
        return f"SignedUrl({self.redacted!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignedUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


@dataclass(frozen=True, slots=True)
class Instance:
    """A DCS instance as the API lists or shows it (contract section 3.1).

    The listing leaves some fields out (``cache_mode`` in particular is only sure in the
    show-instance answer): they are ``""``/``None`` then, never guessed.
    """

    instance_id: str
    name: str
    status: str = ""
    engine_version: str = ""
    engine: str = ""
    cache_mode: str = ""
    ip: str = ""
    port: int | None = None
    tags: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=_no_raw, compare=False, repr=False)  # as returned


@dataclass(frozen=True, slots=True)
class Target:
    """One DCS instance the run will harvest, resolved from config and the instance API."""

    project: str  # the config label, used in archive paths
    project_id: str
    region: str
    instance_id: str
    instance_name: str
    cache_mode: str = ""
    engine_version: str = ""
    status: str = ""

    @classmethod
    def of(cls, instance: Instance, *, project: str, project_id: str, region: str) -> Target:
        """The instance as the run works on it: with the project it was found in."""
        return cls(
            project=project,
            project_id=project_id,
            region=region,
            instance_id=instance.instance_id,
            instance_name=instance.name,
            cache_mode=instance.cache_mode,
            engine_version=instance.engine_version,
            status=instance.status,
        )

    @property
    def label(self) -> str:
        """How summaries and log lines name it: ``name (id)``."""
        return f"{self.instance_name} ({self.instance_id})"


@dataclass(frozen=True, slots=True)
class Replica:
    """One Redis node: run logs are collected and named per replica."""

    target: Target
    group_name: str
    replication_ip: str
    replication_id: str | None  # None for single-node instances
    role: str = "master"

    def owns(self, key: ArchiveKey) -> bool:
        """Whether a file (or pending day) with this key is this replica's.

        A single node owns everything of its instance; a replica of a cluster or a
        master/standby instance owns what carries its group and IP.
        """
        t = self.target
        if (key.project_id, key.instance_id) != (t.project_id, t.instance_id):
            return False
        return self.replication_id is None or (key.group_name, key.replication_ip) == (
            self.group_name,
            self.replication_ip,
        )


@dataclass(frozen=True, slots=True)
class Group:
    """A shard (or the one group of a master/standby instance) and the replicas it holds."""

    group_id: str
    group_name: str
    replicas: tuple[Replica, ...]
    raw: Mapping[str, Any] = field(default_factory=_no_raw, compare=False, repr=False)  # as returned


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """What makes a log file unique in the archive, independent of the API's ephemeral ids."""

    project_id: str
    instance_id: str
    group_name: str
    replication_ip: str
    day: date


@dataclass(frozen=True, slots=True)
class LogFile:
    """A run-log item as listed by DCS."""

    replica: Replica
    log_id: str
    file_name: str
    day: date
    status: str  # "succeed", "failed", or anything else meaning "not ready yet"

    @property
    def key(self) -> ArchiveKey:
        t = self.replica.target
        return ArchiveKey(
            t.project_id, t.instance_id, self.replica.group_name, self.replica.replication_ip, self.day
        )


@dataclass(frozen=True, slots=True)
class SignedLink:
    """A download link and the moment it stops working."""

    url: SignedUrl
    expires_at: datetime
    obtained_at: datetime


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A file that is complete on disk: fsynced, renamed, hashed."""

    relpath: str  # relative to its date folder, POSIX separators
    size: int
    sha256: str


class Outcome(enum.Enum):
    """How one needed file (or replica-day) ended this run; exactly one per file and day."""

    ARCHIVED = "archived"
    PRESENT = "present"  # already in the archive, nothing fetched
    FAILED = "failed"
    CANCELLED = "cancelled"
    PENDING = "pending"  # no file yet: kept, reported, collected again next night (not a failure)
    NO_LOG = "no_log"  # DCS produced no log for the day (evidence on several nights): reported once


@dataclass(frozen=True, slots=True)
class FileResult:
    """The single outcome of one file's journey."""

    project: str
    instance_id: str
    instance_name: str
    group_name: str
    replication_ip: str
    day: date
    outcome: Outcome
    file_name: str = ""
    size: int = 0
    attempts: int = 0
    reason: str = ""

    @classmethod
    def of(
        cls, lf: LogFile, outcome: Outcome, *, attempts: int = 0, reason: str = "", size: int = 0
    ) -> FileResult:
        """The outcome of one listed file (or, with an empty ``lf.file_name``, of a replica-day)."""
        t = lf.replica.target
        return cls(
            t.project,
            t.instance_id,
            t.instance_name,
            lf.replica.group_name,
            lf.replica.replication_ip,
            lf.day,
            outcome,
            file_name=lf.file_name,
            size=size,
            attempts=attempts,
            reason=reason,
        )


class Shared:
    """One copy of each repeated value of the outcome records a run keeps.

    A run keeps one :class:`FileResult` per file until its summary is written (100,000 at
    fleet scale). Their project, instance, group, IP, day and reason repeat across thousands of
    records, but each listing parse made its own copies (a string or date per field per file);
    sharing them keeps a record at about a third of the bytes.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[object, object] = {}

    def __call__(self, value: _V) -> _V:
        """``value``, or the equal value seen first (the same object from then on)."""
        # Equal keys here are of one type (a str never equals a date), so this is a _V.
        return cast("_V", self._seen.setdefault(value, value))

    def result(self, r: FileResult) -> FileResult:
        """``r`` with its repeated fields replaced by their shared copies (equal to ``r``)."""
        return FileResult(
            self(r.project),
            self(r.instance_id),
            self(r.instance_name),
            self(r.group_name),
            self(r.replication_ip),
            self(r.day),
            r.outcome,
            file_name=r.file_name,
            size=r.size,
            attempts=r.attempts,
            reason=self(r.reason),
        )


@dataclass(frozen=True, slots=True)
class InstanceFailure:
    """An instance (or one of its replicas) that could not be worked on at all."""

    project: str
    instance: str  # name or id as known
    reason: str
    skipped: bool = False  # True: deliberately left out (not RUNNING, engine too old), not an error


@dataclass(slots=True)
class RunSummary:
    """Everything the run did; the only input of the exit code and the printed summary."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    config_path: str = ""
    files: list[FileResult] = field(default_factory=list)
    instances: list[InstanceFailure] = field(default_factory=list)
    collections: int = 0
    collections_by_instance: dict[str, int] = field(default_factory=dict)  # instance id -> POSTs
    retries: int = 0
    retries_by_project: dict[str, int] = field(default_factory=dict)
    interrupted_by: int | None = None  # signal number
    fatal: str | None = None
    # project -> why one of its endpoints could not be reached (first such failure): one
    # "harvester: error:" line each, so an operator sees the dead endpoint, not N file failures.
    unreachable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tally:
    """The outcome records counted by kind: every number a run reports comes from one of these.

    The printed and JSON summaries, the metrics file and the exit code all count through
    :func:`tally`, so no two of them can disagree about what "failed" means.
    """

    archived: int = 0
    present: int = 0  # already in the archive
    failed: int = 0
    cancelled: int = 0
    pending: int = 0
    no_log: int = 0
    bytes: int = 0  # of the archived files
    instances_failed: int = 0
    instances_skipped: int = 0  # deliberately left out: not an error

    @property
    def not_archived(self) -> int:
        """Files that were needed and did not land: failed, or stopped before they finished."""
        return self.failed + self.cancelled

    @property
    def good(self) -> int:
        """Files that are in the archive now: fetched by this run or already there."""
        return self.archived + self.present


def tally(files: Iterable[FileResult], instances: Iterable[InstanceFailure] = ()) -> Tally:
    """Count outcome records (and instance problems) by kind."""
    by_outcome: Counter[Outcome] = Counter()
    archived_bytes = 0
    for f in files:
        by_outcome[f.outcome] += 1
        if f.outcome is Outcome.ARCHIVED:
            archived_bytes += f.size
    skipped = Counter(i.skipped for i in instances)
    return Tally(
        archived=by_outcome[Outcome.ARCHIVED],
        present=by_outcome[Outcome.PRESENT],
        failed=by_outcome[Outcome.FAILED],
        cancelled=by_outcome[Outcome.CANCELLED],
        pending=by_outcome[Outcome.PENDING],
        no_log=by_outcome[Outcome.NO_LOG],
        bytes=archived_bytes,
        instances_failed=skipped[False],
        instances_skipped=skipped[True],
    )
