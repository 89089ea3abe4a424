"""Pure decisions: which days to collect, which files to download, when to wait, retry and relink.

Nothing here performs I/O, reads the clock or touches an event loop: ``today`` and ``now`` are
passed in. That keeps every rule testable with plain values, and it keeps the engine
(:mod:`harvester.engine`) a matter of plumbing: it asks this module, then acts.

It is longer than the ~400 lines a module should stay under, on purpose: it is the one place
where the harvester's rules are read and unit-tested together (days, pending days, waits,
files, shards, links, one file's attempts, instances), each section pure and small; split
across modules, the rules a reviewer checks against the API contract would be scattered.

Dates: DCS labels a run log with the UTC day it covers (``time``, ``yyyy-MM-dd``); callers pass
``today`` as a UTC date (see :func:`today_utc`).
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import itertools
import re
from collections.abc import Container, Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from harvester.config.schema import InstanceRef, LimitsSettings
from harvester.errors import (
    Action,
    LinkRefusedError,
    StorageError,
    TransportError,
    UsageError,
    classify,
    is_disk_full,
)
from harvester.models import QUERY_TIMES, ArchiveKey, Instance, LogFile

RETENTION_DAYS = 7
#: The ``query_time`` values that reach back before today (0 means today itself).
_PAST_QUERY_TIMES = tuple(q for q in QUERY_TIMES if q > 0)
#: How long a download link lives when it does not say (contract section 2.3).
LINK_LIFETIME = timedelta(hours=24)
# An ``Expires`` further out than this is not from a DCS link: fall back to the documented 24 h.
_LINK_MAX_LIFETIME = timedelta(days=7)

StatusClass = Literal["ready", "failed", "pending"]


# --------------------------------------------------------------------------- days


def today_utc(now: datetime) -> date:
    """The UTC day of an aware datetime: DCS names run logs by UTC day."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).date()


def parse_log_day(text: str) -> date:
    """The day a run-log item covers, from its ``time`` field (``yyyy-MM-dd``); ValueError if not."""
    return date.fromisoformat(text.strip()[:10])


def complete_days(today: date, retention: int = RETENTION_DAYS) -> list[date]:
    """Days that are over and still kept by DCS (files live 7 days), newest first."""
    return [today - timedelta(days=n) for n in range(1, retention + 1)]


def missing_days(
    today: date, archived: Set[date], empty: Set[date], *, include_today: bool = False
) -> list[date]:
    """Complete days still worth collecting, newest first; today first when asked for.

    ``empty`` holds days already known to have no log (a quiet Redis may write none): asking
    again would only repeat a collection. Today is never "known empty": the day is not over.
    """
    days = [d for d in complete_days(today) if d not in archived and d not in empty]
    if include_today and today not in archived:
        days.insert(0, today)
    return days


def after_watermark(days: Iterable[date], pruned_through: date | None) -> set[date]:
    """The days a run may still collect: none at or before prune's retention watermark.

    ``harvester prune`` deleted every day up to ``pruned_through`` on purpose; collecting one
    again would only refill what the operator chose to drop (and prune would delete it again).
    """
    if pruned_through is None:
        return set(days)
    return {d for d in days if d > pruned_through}


def query_time_for(today: date, days: Iterable[date]) -> int | None:
    """The smallest ``query_time`` whose window covers every wanted day before today.

    The window of N is the N days before today (what the emulator does; contract section 2.1
    marks this [?]), so the smallest covering N wastes the least collection work. ``0`` when
    only today is wanted, ``None`` when nothing can be collected. Today is collected by a
    separate ``query_time=0`` request, see :func:`collection_requests`. Days outside the
    retention window or in the future are ignored: no request can bring them back.
    """
    wanted = set(days)
    back = [(today - d).days for d in wanted if 1 <= (today - d).days <= max(_PAST_QUERY_TIMES)]
    if back:
        oldest = max(back)
        return next(n for n in _PAST_QUERY_TIMES if n >= oldest)
    return 0 if today in wanted else None


def collection_requests(today: date, days: Iterable[date]) -> tuple[int, ...]:
    """The ``query_time`` values to POST, ascending: ``(3,)``, ``(0, 3)`` with today, ``()``."""
    wanted = set(days)
    past = query_time_for(today, wanted - {today})
    out = [0] if today in wanted else []
    if past:
        out.append(past)
    return tuple(out)


# --------------------------------------------------------------------------- pending days
#
# DCS says when a collection is accepted (204), never when it is done, and a quiet Redis may log
# nothing on a day; how DCS shows that is undocumented (contract section 8). So a replica-day
# without a file is *pending*, not empty: it is re-collected every night and reported, until
# the evidence is overwhelming (``QUIET_NIGHTS`` separate nights on which DCS produced a later
# day's file of that replica and none for it) or the day leaves DCS's window. Timing decides
# only how long one night waits (:func:`wait_end`), never whether a day is given up.

#: Separate nights of evidence after which a day without a file is "no log produced".
QUIET_NIGHTS = 2


@dataclass(frozen=True, slots=True)
class PendingDay:
    """What the archive remembers about a replica-day that has no archived file yet.

    ``evidence`` holds the nights (UTC run dates) on which this day looked quiet; ``final``
    marks a day already reported as "no log produced": it is never collected again.
    """

    key: ArchiveKey
    since: date  # the first night it was found missing
    collections: int = 0  # collections of ours that covered it and left it without a file
    evidence: frozenset[date] = frozenset()
    final: bool = False
    reason: str = ""  # why it was still missing the last time it was looked at


def requested_days(today: date, query_times: Iterable[int]) -> frozenset[date]:
    """The complete days the collections ``query_times`` asked for: ``N`` is the N days before
    today (our reading of contract section 2.1). Today's partial log is never a complete day, so
    ``0`` adds nothing here, and neither does a file DCS lists for any other day."""
    return frozenset(today - timedelta(days=n) for qt in query_times for n in range(1, qt + 1))


def quiet_evidence(
    requested: Set[date], ready: Set[date], today: date, *, listed: Set[date] = frozenset()
) -> frozenset[date]:
    """Requested days that look quiet tonight: no file for them at all by the end of the wait,
    while the same collections produced a ready file for a LATER requested complete day.

    Only requested days count on either side: a file for today (a partial log some clouds list
    after a ``query_time`` > 0 collection) or for a day outside the windows proves nothing about
    the days that were asked for, and neither does a replica that produced nothing at all (its
    collection may simply not have run). ``listed``: days with a file in any status (not ready
    yet, failed): such a day produced a log, it is not quiet, it is late.
    """
    produced = {d for d in ready if d in requested and d < today}
    if not produced:
        return frozenset()
    newest = max(produced)
    return frozenset(d for d in requested if d < newest and d not in ready and d not in listed)


def void_evidence(record: PendingDay) -> PendingDay:
    """A file for the day was listed after all (any status, any collection, any night): the day
    did produce a log, so every night that called it quiet was a timing accident, not evidence.

    The nights of evidence are dropped and a "no log produced" verdict is withdrawn: the day is
    collected again. This is what lets one night's wait be short without a short wait ever
    giving a day up: a file that shows up after the wait ended voids the guess it caused.
    """
    if not record.evidence and not record.final:
        return record
    return PendingDay(record.key, since=record.since, collections=record.collections, reason=record.reason)


def note_missing(
    record: PendingDay | None,
    key: ArchiveKey,
    night: date,
    *,
    covered: bool,
    evidence: bool,
    reason: str,
    seen: bool = False,
) -> PendingDay:
    """The record of a day still without a file after tonight's run.

    ``covered``: one of tonight's collections asked for the day. ``evidence``: tonight is a
    night of evidence for it (:func:`quiet_evidence`). ``seen``: a file for the day was listed
    tonight (not ready, failed, or not downloaded): earlier evidence is void
    (:func:`void_evidence`) and tonight is none. Nights are run dates, so two runs on one
    night count once. The day becomes final once :data:`QUIET_NIGHTS` nights agree.
    """
    base = record if record is not None else PendingDay(key, since=night)
    if seen:
        base, evidence = void_evidence(base), False
    nights = base.evidence | {night} if evidence else base.evidence
    return PendingDay(
        key,
        since=base.since,
        collections=base.collections + (1 if covered else 0),
        evidence=frozenset(nights),
        final=base.final or len(nights) >= QUIET_NIGHTS,
        reason=reason,
    )


def left_window(day: date, today: date, retention: int = RETENTION_DAYS) -> bool:
    """Whether DCS no longer keeps the day's file: no collection can bring it back."""
    return (today - day).days > retention


def expired_reason(record: PendingDay, today: date) -> str | None:
    """The one-line failure for a pending day that left DCS's window unharvested, else None.

    A final day ("no log produced") is not a failure: it was reported when it became final.
    """
    if record.final or not left_window(record.key.day, today):
        return None
    what = record.reason or "no file listed"
    return (
        f"left DCS's {RETENTION_DAYS}-day window unharvested: {what} after "
        f"{record.collections} collection(s) since {record.since.isoformat()}"
    )


def no_log_reason(record: PendingDay) -> str:
    """What the summary says once a day is taken as quiet."""
    nights = ", ".join(d.isoformat() for d in sorted(record.evidence))
    return (
        f"no log produced: DCS produced later days' files without one for this day "
        f"on {len(record.evidence)} nights ({nights})"
    )


class WaitEnd(enum.Enum):
    """Why one replica's wait for its collection ended tonight."""

    COMPLETE = "complete"  # a final file is listed for every day it was asked for
    SETTLED = "settled"  # its part of the listing stopped changing for the settle period
    TIMED_OUT = "timed_out"  # collect.wait_timeout


#: The first listing after a collection request comes this soon (seconds); each later gap is
#: :data:`POLL_GROWTH` times the one before, up to ``collect.poll_interval``. DCS often has a
#: replica's file within a second or two (the emulator's default is 1 s), so a fixed 5 s first
#: look wasted most of a short night; a slow cloud still costs no more than one listing per
#: ``poll_interval`` per instance once the gaps have grown.
FIRST_POLL = 0.5
POLL_GROWTH = 1.5


def poll_delay(polls: int, cap: float) -> float:
    """Seconds to wait before the next listing, after ``polls`` listings since the request:
    0.5, 0.75, 1.1, 1.7, ... capped at ``cap`` (``collect.poll_interval``)."""
    return min(cap, FIRST_POLL * POLL_GROWTH ** min(max(polls, 0), 64))


#: A replica's listing must stay unchanged at least this long (seconds) before its wait ends
#: with days missing, however fast its files came ...
SETTLE_FLOOR = 1.0
#: ... and at least this many times how long a collection took to show its first file (for a
#: replica with none yet: the slowest collection this run saw finish) ...
LATENCY_FACTOR = 1.5
#: ... and this many times the longest gap between two of the replica's own new files: files
#: that trickle in are waited for generously, since the next one is evidently on its way.
TRICKLE_FACTOR = 3.0
#: Listings of one instance are never closer together than this (seconds), even when a
#: replica's settle deadline is nearer: it bounds the polls a wait can make.
MIN_POLL_GAP = 0.1


def settle_period(changes: Sequence[float], started: float, slowest: float | None) -> float | None:
    """How long a replica's listing must stay unchanged before tonight's wait for it ends.

    Decided from what was asked and what appeared, not from the poll interval: the time the
    collection took to show its first file (or, for a replica with none yet, the slowest
    collection this run has seen finish) times :data:`LATENCY_FACTOR`, and the longest gap
    between its own files times :data:`TRICKLE_FACTOR`; at least :data:`SETTLE_FLOOR`.
    ``None`` while there is nothing to measure: then only a complete listing or
    ``wait_timeout`` ends the wait (a cloud whose first file takes long is waited for).

    Short on purpose: ending a wait gives nothing up. A day still missing stays pending and is
    collected again; the quiet-day evidence it may record is voided if its file shows up later
    (:func:`void_evidence`), so a wait that was too short costs a night, never a day.
    """
    latency = [changes[0] - started] if changes else []
    if slowest is not None:
        latency.append(slowest)
    trickle = [b - a for a, b in itertools.pairwise(changes)]
    if not latency:
        return None
    return max(SETTLE_FLOOR, LATENCY_FACTOR * max(latency), TRICKLE_FACTOR * max(trickle, default=0.0))


def collection_yardstick(siblings: Sequence[float], slowest: float | None) -> float | None:
    """How long a collection is taken to need, for a replica that shows no file yet.

    The instance's own replicas whose files all arrived (``siblings``: request to last file)
    were asked at the same moment as it: their slowest is the best evidence of how long this
    instance's collection takes. Without one, the slowest collection this run saw finish
    (``slowest``, any instance). ``None``: nothing to measure yet.
    """
    return max(siblings) if siblings else slowest


def settle_deadline(changes: Sequence[float], started: float, slowest: float | None) -> float | None:
    """The moment (same clock as ``changes``) a replica's wait ends if nothing changes by then."""
    settle = settle_period(changes, started, slowest)
    if settle is None:
        return None
    return (changes[-1] if changes else started) + settle


def next_poll(polls: int, cap: float, *, now: float, deadlines: Iterable[float | None]) -> float:
    """Seconds until the next listing: :func:`poll_delay`'s schedule, or sooner when a waiting
    replica's settle deadline (or the wait timeout) comes first, so that a wait ends on a fresh
    listing at its deadline instead of up to a whole poll gap later. Never below
    :data:`MIN_POLL_GAP`."""
    delay = poll_delay(polls, cap)
    for deadline in deadlines:
        if deadline is not None:
            # A hair past the deadline: an event loop may wake a timer a clock tick early.
            delay = min(delay, deadline - now + 0.005)
    return max(MIN_POLL_GAP, delay)


def wait_end(
    *,
    wanted: Set[date],
    final_days: Set[date],
    started: float,
    now: float,
    changes: Sequence[float],
    slowest: float | None,
    wait_timeout: float,
) -> WaitEnd | None:
    """Whether tonight's wait for one replica is over, and why; ``None``: keep polling.

    ``final_days``: days with a final (ready or failed) file of this run's collections;
    ``changes``: the moments the replica's part of the listing changed. Whatever is still
    missing when the wait ends stays pending: this decides how long to wait, nothing more.
    """
    if wanted <= final_days:
        return WaitEnd.COMPLETE
    deadline = settle_deadline(changes, started, slowest)
    if deadline is not None and now >= deadline:
        return WaitEnd.SETTLED
    if now - started >= wait_timeout:
        return WaitEnd.TIMED_OUT
    return None


# --------------------------------------------------------------------------- files


def classify_status(status: str) -> StatusClass:
    """``succeed`` is downloadable, ``failed`` is final; anything else (unknown too) is not ready yet."""
    s = status.strip().lower()
    if s == "succeed":
        return "ready"
    if s == "failed":
        return "failed"
    return "pending"


def _download_order(item: LogFile) -> tuple[date, str, str, str, str, str, str]:
    k = item.key
    return (k.day, k.project_id, k.instance_id, k.group_name, k.replication_ip, item.file_name, item.log_id)


def select_downloads(
    listed: Iterable[LogFile],
    archived: Container[ArchiveKey],  # a set, or the run's ArchiveIndex
    today: date,
    *,
    include_today: bool = False,
    wanted_days: Set[date] | None = None,
) -> list[LogFile]:
    """The listed files to fetch: ready, of a finished day (or today if asked), not yet archived.

    Each collection creates new items even for a day collected before, so one replica-day can
    be listed several times. The one listed LAST wins: DCS (and the emulator) append new
    collections, so the last is the newest, and a file collected while its day was still
    running is superseded by the complete one collected later.

    The result is sorted oldest day first (those are the next to fall out of the 7-day
    retention), then by project, instance, group, replica: a stable order for logs and tests.
    """
    chosen: dict[ArchiveKey, LogFile] = {}
    for item in listed:
        if classify_status(item.status) != "ready":
            continue
        if item.day > today or (item.day == today and not include_today):
            continue
        if wanted_days is not None and item.day not in wanted_days:
            continue
        key = item.key
        if key not in archived:
            chosen[key] = item
    return sorted(chosen.values(), key=_download_order)


# --------------------------------------------------------------------------- sharding


def in_shard(project_id: str, instance_id: str, shard: int, of: int) -> bool:
    """Whether an instance belongs to shard ``shard`` of ``of``.

    Each instance's shard depends on its own ids only, so adding or removing instances never
    moves another one to a different machine (and its archive lock).
    """
    if not 0 <= shard < of:
        raise ValueError(f"shard must satisfy 0 <= shard < of (got {shard}/{of})")
    digest = hashlib.sha256(f"{project_id}/{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % of == shard


_SHARD_RE = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``."""
    m = _SHARD_RE.fullmatch(text)
    if m is None:
        raise UsageError(f"shard must look like K/N, e.g. 0/4 (got {text!r})")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise UsageError(f"shard {k}/{n}: K must be between 0 and N-1 and N at least 1")
    return k, n


# --------------------------------------------------------------------------- links


def _query(url: str) -> dict[str, str]:
    return {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def link_expires_at(url: str, obtained_at: datetime) -> datetime:
    """When a signed link stops working, in UTC.

    Read from the link's own ``Expires`` (OBS/S3 V2, unix seconds) or ``X-Amz-Date`` plus
    ``X-Amz-Expires`` (V4); a value that is missing, unparsable, not after ``obtained_at`` or
    more than 7 days out is distrusted in favour of the documented 24 hours.
    """
    if obtained_at.tzinfo is None:
        raise ValueError("obtained_at must be timezone-aware")
    obtained = obtained_at.astimezone(UTC)
    q = _query(url)
    candidate: datetime | None = None
    try:
        if "expires" in q:
            candidate = datetime.fromtimestamp(int(q["expires"]), UTC)
        elif "x-amz-date" in q and "x-amz-expires" in q:
            signed = datetime.strptime(q["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            candidate = signed + timedelta(seconds=int(q["x-amz-expires"]))
    except (ValueError, OverflowError, OSError):
        candidate = None
    if candidate is not None and obtained < candidate <= obtained + _LINK_MAX_LIFETIME:
        return candidate
    return obtained + LINK_LIFETIME


#: The transfer rate assumed when judging whether a held link still has time for its download:
#: conservative on purpose (OBS usually serves far faster), so a big file relinks early.
ASSUMED_RATE = float(1 << 20)  # bytes per second


def link_still_usable(
    expires_at: datetime, now: datetime, *, expected_bytes: int, margin: float, rate: float = ASSUMED_RATE
) -> bool:
    """Whether a link obtained EARLIER may start its download now, or must be renewed first.

    It may when it has more left than the download needs: ``margin`` (clock skew between us
    and OBS) plus the expected transfer time at ``rate``. A FRESH link is never judged by this:
    it is used at once whatever its lifetime (OBS checks expiry when the GET starts), so a cloud
    that signs short links still works; a link that dies anyway gets a 403 and is renewed.
    """
    needed = margin + max(0, expected_bytes) / rate
    return (expires_at - now).total_seconds() > needed


# --------------------------------------------------------------------------- request rate
#
# No numeric DCS API limit is published; the API gateway answers 429 with a Retry-After (HWC
# advises waiting 2-5 s). So the per-project rate starts at ``limits.requests_per_second`` and
# adapts like TCP's window: halved on a 429 (at most once per :data:`THROTTLE_COOLDOWN`, so one
# burst of 429s is one cut), then recovered additively, a little each second, back up to the
# configured rate. A cloud that never throttles is never slowed; one that does is obeyed at once
# and approached again slowly.

#: One halving per this many seconds, however many requests a burst of 429s answered.
THROTTLE_COOLDOWN = 2.0
#: The rate never falls below this share of the configured rate (nor below one request a second).
RATE_FLOOR_SHARE = 1 / 32
#: After a cut, the rate grows back by this share of the configured rate each second (20 s
#: from half back to full).
RATE_RECOVERY_SHARE = 1 / 40


def rate_after_throttle(rate: float, ceiling: float) -> float:
    """The per-project request rate after a 429: halved, not below the floor."""
    return max(min(ceiling, max(1.0, ceiling * RATE_FLOOR_SHARE)), rate / 2)


def rate_recovered(rate: float, ceiling: float, elapsed: float) -> float:
    """The rate ``elapsed`` seconds later without a 429: additive increase up to ``ceiling``."""
    return min(ceiling, rate + max(0.0, elapsed) * ceiling * RATE_RECOVERY_SHARE)


# --------------------------------------------------------------------------- one file's attempts
#
# The engine's per-file loop (:mod:`harvester.engine.fetch`) links and downloads; after each
# failed attempt it asks :func:`after_download_error` what to do next and does exactly that.

#: A Retry-After larger than this is a misconfigured gateway, not advice (API calls and OBS alike).
MAX_RETRY_AFTER = 300.0


class FailureKind(enum.Enum):
    """What one failed attempt's error says about the next attempt."""

    FATAL = "fatal"  # nothing else can work either (credentials refused): stop the run
    REFUSED = "refused"  # the link points where we do not send it: no attempt can work
    STORAGE = "storage"  # the archive could not take this file
    DISK_FULL = "disk_full"  # ... nor any file after it
    RELINK = "relink"  # OBS refused the link (403): a fresh link may work
    RETRY = "retry"  # transient (reset, stall, short body, 5xx): the same link may work
    FINAL = "final"  # anything else: this file fails, the others go on


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt as the decisions see it: its kind, its one-line reason, and the
    Retry-After OBS sent with it (when it asked us to slow down)."""

    kind: FailureKind
    reason: str
    retry_after: float | None = None

    @classmethod
    def of(cls, exc: BaseException) -> AttemptError:
        """Read an exception (and its causes, for a full disk): no I/O, nothing retried."""
        retry_after = exc.retry_after if isinstance(exc, TransportError) else None
        if isinstance(exc, LinkRefusedError):
            kind = FailureKind.REFUSED
        elif isinstance(exc, StorageError):
            kind = FailureKind.DISK_FULL if is_disk_full(exc) else FailureKind.STORAGE
        else:
            kind = {
                Action.FATAL: FailureKind.FATAL,
                Action.RELINK: FailureKind.RELINK,
                Action.RETRY: FailureKind.RETRY,
            }.get(classify(exc).action, FailureKind.FINAL)
        return cls(kind, str(exc), retry_after)


class Step(enum.Enum):
    """What the engine does next with one file."""

    RETRY = "retry"  # back off, then download again (the held link, if still usable)
    RELINK = "relink"  # drop the link and ask DCS for a fresh one, then download again
    GIVE_UP = "give_up"  # this file fails with ``Decision.reason``; the others go on
    STOP = "stop"  # raise: the whole run stops


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    reason: str = ""  # GIVE_UP: the file's failure, one line
    wait: float = 0.0  # RETRY: seconds to back off first
    stop_writes: bool = False  # GIVE_UP: the disk is full, no later file is attempted either


def download_backoff(retry_after: float | None, attempts: int) -> float:
    """OBS's own Retry-After when it throttles (capped), else exponential from half a second."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(0.5 * 2.0 ** (attempts - 1), 10.0)


def storage_failure(error: str, *, disk_full: bool, what: str = "") -> str:
    """A file the archive could not take, in words; a full disk says so first."""
    reason = f"{what}: {error}" if what else error
    return f"disk full: {reason}" if disk_full else reason


def after_download_error(
    error: AttemptError, attempts: int, relinks: int, limits: LimitsSettings
) -> Decision:
    """The next step after a failed download: ``attempts`` made (this one included) and
    ``relinks`` done so far (not counting one this error may ask for).

    A transient failure is retried up to ``download_attempts`` transfers, a refused link is
    renewed up to ``relink_attempts`` times; a full disk or an unwritable archive folder fails
    the file at once (and a full disk every later file), and credentials refused stop the run.
    """
    kind = error.kind
    if kind is FailureKind.FATAL:
        return Decision(Step.STOP)
    if kind in (FailureKind.STORAGE, FailureKind.DISK_FULL):
        full = kind is FailureKind.DISK_FULL
        return Decision(Step.GIVE_UP, storage_failure(error.reason, disk_full=full), stop_writes=full)
    if kind is FailureKind.RELINK:
        if relinks >= limits.relink_attempts:
            return Decision(Step.GIVE_UP, f"links kept being refused: {error.reason}")
        return Decision(Step.RELINK)
    if kind is FailureKind.RETRY and attempts < limits.download_attempts:
        return Decision(Step.RETRY, wait=download_backoff(error.retry_after, attempts))
    return Decision(Step.GIVE_UP, error.reason)


def after_link_error(error: AttemptError) -> Decision:
    """DCS gave no download link (its call was already retried): the file fails, unless the
    credentials were refused, which stops the run."""
    if error.kind is FailureKind.FATAL:
        return Decision(Step.STOP)
    return Decision(Step.GIVE_UP, f"no download link: {error.reason}")


def may_attempt(attempts: int, limits: LimitsSettings) -> bool:
    """A bound on one file's transfers whatever the errors: every retry and every relink.

    :func:`after_download_error` gives up before this in every sequence of errors; the bound
    is what keeps a file from looping should a new kind of error ever slip through."""
    return attempts < limits.download_attempts + limits.relink_attempts


def gave_up_reason(attempts: int, last_error: str) -> str:
    return f"gave up after {attempts} attempts: {last_error}"


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True, slots=True)
class InstanceMatch:
    """How one configured :class:`InstanceRef` resolved: an instance, or why not.

    Resolution problems are per reference, so the engine can harvest the instances that did
    resolve and report the others, or raise ``error`` to stop, as it sees fit.
    """

    ref: InstanceRef
    instance: Instance | None
    error: UsageError | None = None


_MAX_CANDIDATES = 5


def _label(inst: Instance) -> str:
    return f"{inst.name} ({inst.instance_id})"


def suggest(name: str, instances: Sequence[Instance]) -> list[Instance]:
    """Instances a mistyped name probably meant: substring either way, or a close spelling."""
    folded = name.casefold()
    near = [i for i in instances if folded in i.name.casefold() or i.name.casefold() in folded]
    by_name = {i.name: i for i in instances}
    close = difflib.get_close_matches(name, list(by_name), n=_MAX_CANDIDATES, cutoff=0.6)
    out = list(dict.fromkeys([*near, *(by_name[c] for c in close)]))
    return out[:_MAX_CANDIDATES]


def match_instances(
    refs: Sequence[InstanceRef], instances: Sequence[Instance], *, project: str = ""
) -> list[InstanceMatch]:
    """Resolve configured ids and names against a project's listing, one result per ref.

    Ids match exactly (case-insensitively). Names match exactly; several instances with that
    name is an error listing their ids, and a near miss (other case, substring, typo) is an
    error listing the candidates: harvesting a guessed instance would be worse than stopping.
    """
    where = f"project {project}: " if project else ""
    by_id = {i.instance_id.lower(): i for i in instances}
    out: list[InstanceMatch] = []
    for ref in refs:
        if ref.id is not None:
            found = by_id.get(ref.id.lower())
            if found is not None:
                out.append(InstanceMatch(ref, found))
            else:
                msg = f"{where}no instance with id {ref.id} ({len(instances)} instances listed)"
                out.append(InstanceMatch(ref, None, UsageError(msg)))
            continue
        name = ref.name or ""
        exact = [i for i in instances if i.name == name]
        if len(exact) == 1:
            out.append(InstanceMatch(ref, exact[0]))
            continue
        if exact:
            ids = ", ".join(i.instance_id for i in exact)
            msg = (
                f"{where}instance name {name!r} is ambiguous: "
                f"{len(exact)} instances have it ({ids}); list it by id"
            )
        else:
            near = suggest(name, instances)
            hint = (
                f"did you mean: {', '.join(_label(i) for i in near)}"
                if near
                else f"{len(instances)} instances listed"
            )
            msg = f"{where}no instance named {name!r}; {hint}"
        out.append(InstanceMatch(ref, None, UsageError(msg)))
    return out


_VERSION_RE = re.compile(r"\s*(\d+)(?:\.(\d+))?")


def should_harvest(status: str, engine_version: str) -> str | None:
    """``None`` when the instance can have run logs; else the reason it is skipped.

    An unparsable engine version is given the benefit of the doubt: DCS itself refuses
    (``DCS.4007``) if the instance cannot collect, and the engine reports that.
    """
    s = status.strip().upper()
    if s != "RUNNING":
        return f"status is {s or 'unknown'} (only RUNNING instances are harvested)"
    m = _VERSION_RE.match(engine_version)
    if m is not None and (int(m.group(1)), int(m.group(2) or 0)) < (4, 0):
        return f"engine {engine_version.strip()} does not support run logs (needs Redis >= 4.0)"
    return None
