"""The exception tree, how each failure is handled, and the exit codes.

    HarvesterError                 every expected failure; ``str()`` is one safe line
    +-- ConfigError                bad YAML / key / value / missing credential   -> exit 2
    +-- UsageError                 bad command line, ambiguous instance name     -> exit 2
    |   +-- ArchiveRootError       the archive root is a system folder or not ours -> exit 2
    +-- ApiError                   an HTTP error answer from DCS or IAM (status + error code)
    |   +-- AuthError              credentials refused (401 at IAM or after a re-login)
    +-- TransportError             connection reset, refused, timed out          -> retry
    |   +-- EndpointUnavailableError   the endpoint's circuit breaker is open      -> fail dependent work
    +-- DownloadError              the OBS side of a transfer
    |   +-- LinkExpiredError       403 from OBS: ask DCS for a fresh link        -> relink
    |   +-- IncompleteBodyError    fewer bytes than Content-Length, or a stall   -> retry
    |   +-- LinkRefusedError       the link points to a host we do not trust     -> fail file
    +-- StorageError               the archive cannot be written                 -> exit 3
    |   +-- PartBusyError          another writer holds this file's .part        -> fail file
    |   +-- FolderNotWritableError one folder of the archive refuses writes      -> fail file
    |   +-- DiskFullError          ENOSPC / EDQUOT: nothing more can be written  -> exit 3
    +-- LockError                  another run holds the archive                 -> exit 3

Messages never contain a secret or a signed URL's query string: callers build them from
:class:`~harvester.models.SignedUrl.redacted` and error codes only.
"""

from __future__ import annotations

import enum
import errno
import os
from dataclasses import dataclass

from harvester.models import RunSummary, tally

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_NOTHING = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class HarvesterError(Exception):
    """Base of every failure the harvester expects and reports in one line."""


class ConfigError(HarvesterError):
    """The configuration is invalid; the message names the key path."""


class UsageError(HarvesterError):
    """The command line asks for something impossible or ambiguous."""


class ArchiveRootError(UsageError):
    """The archive root is a system folder, or holds content the harvester did not write."""


class ApiError(HarvesterError):
    """DCS or IAM answered with an HTTP error."""

    def __init__(
        self,
        status: int,
        code: str = "",
        message: str = "",
        *,
        what: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.api_message = message
        self.what = what
        self.retry_after = retry_after
        detail = f"HTTP {status}"
        if code:
            detail += f" {code}"
        if message:
            detail += f": {message}"
        super().__init__(f"{what}: {detail}" if what else detail)


class AuthError(ApiError):
    """Credentials were refused: nothing can be done with this project."""


class TransportError(HarvesterError):
    """The connection failed before an HTTP answer arrived (or OBS said "try later").

    ``endpoint`` (``scheme://host:port``) and ``cause`` are set when no connection could be
    made at all (refused, DNS, TLS, connect timeout): the run reports those per project.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        endpoint: str | None = None,
        cause: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.endpoint = endpoint
        self.cause = cause


class EndpointUnavailableError(TransportError):
    """The endpoint's circuit breaker is open: the call was not made (see harvester.cloud.breaker).

    Not retried: the breaker already waited out the outage that a retry would wait for, and
    every other call to the endpoint fails the same way, so dependent work fails at once.
    """


class DownloadError(HarvesterError):
    """Fetching a signed OBS URL failed."""


class LinkExpiredError(DownloadError):
    """OBS refused the link (403): it expired or its signature is not accepted."""


class IncompleteBodyError(DownloadError):
    """The body ended early or stalled: never archive it, try again."""


class LinkRefusedError(DownloadError):
    """The link's host is not in ``download.allowed_hosts``."""


class StorageError(HarvesterError):
    """The archive could not be written."""

    #: True for :class:`DiskFullError`: the engine fails the remaining files as "disk full".
    disk_full: bool = False


class PartBusyError(StorageError):
    """Another writer holds this file's ``.part``: this one file fails, the run goes on."""


class FolderNotWritableError(StorageError):
    """One folder refuses writes (read-only, permissions): that file fails, other days go on."""


class DiskFullError(StorageError):
    """The file system is full (or the quota spent): no later write can succeed either."""

    disk_full = True


class LockError(HarvesterError):
    """Another run holds the archive (or this shard of it)."""


class Action(enum.Enum):
    RETRY = "retry"  # transient: back off exponentially and try again
    THROTTLED = "throttled"  # 429: wait as Retry-After says, on its own budget
    RELINK = "relink"  # the link is dead: ask DCS for a new one
    SKIP = "skip"  # this file (or instance) fails, the others go on
    FATAL = "fatal"  # nothing else can work either: stop the run


@dataclass(frozen=True, slots=True)
class Classification:
    action: Action
    retry_after: float | None = None


RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


def classify(exc: BaseException) -> Classification:
    """Decide how the engine reacts to a failure; the one place this policy lives."""
    if isinstance(exc, AuthError):
        return Classification(Action.FATAL)
    if isinstance(exc, ApiError):
        if exc.status == 429:
            return Classification(Action.THROTTLED, exc.retry_after)
        if exc.status in RETRYABLE_STATUS:
            return Classification(Action.RETRY)
        return Classification(Action.SKIP)
    if isinstance(exc, EndpointUnavailableError):
        return Classification(Action.SKIP)
    if isinstance(exc, TransportError | IncompleteBodyError):
        return Classification(Action.RETRY)
    if isinstance(exc, LinkExpiredError):
        return Classification(Action.RELINK)
    if isinstance(exc, PartBusyError | FolderNotWritableError):
        return Classification(Action.SKIP)
    if isinstance(exc, StorageError | LockError):
        return Classification(Action.FATAL)
    return Classification(Action.SKIP)


def is_fatal(exc: BaseException) -> bool:
    """Errors that stop the whole run (credentials refused, archive unwritable)."""
    return classify(exc).action is Action.FATAL


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether a storage failure is the disk (or quota) being full: no later write can work."""
    if isinstance(exc, DiskFullError):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        current = current.__cause__ or current.__context__
    text = str(exc)
    return any(os.strerror(code) in text for code in _DISK_FULL)


def exit_code(summary: RunSummary) -> int:
    """The run's exit code, from its outcome records alone."""
    if summary.interrupted_by is not None:
        return 128 + summary.interrupted_by
    if summary.fatal is not None:
        return EXIT_NOTHING
    counts = tally(summary.files, summary.instances)
    if counts.not_archived == 0 and counts.instances_failed == 0:
        return EXIT_OK
    if counts.good == 0:
        return EXIT_NOTHING
    return EXIT_PARTIAL


def leaves(exc: BaseException) -> list[BaseException]:
    """The real exceptions inside (nested) exception groups from task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def expected_failure(exc: BaseException) -> HarvesterError | None:
    """The failure to report when every leaf of ``exc`` is an expected one, else None (a bug).

    Config and usage errors win over others, then the first fatal one: they say why the run
    stopped, the rest are usually consequences.
    """
    found = leaves(exc)
    if not all(isinstance(e, HarvesterError) for e in found):
        return None
    errors = [e for e in found if isinstance(e, HarvesterError)]
    for kind in (ConfigError, UsageError, AuthError, StorageError, LockError):
        for e in errors:
            if isinstance(e, kind):
                return e
    return errors[0] if errors else None
