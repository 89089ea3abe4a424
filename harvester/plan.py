"""Pure decisions: which days to collect, which files to download, when to wait and relink.

Nothing here performs I/O, reads the clock or touches an event loop: ``today`` and ``now`` are
passed in. That keeps every rule testable with plain values, and it keeps the engine
(``harvest.py``) a matter of plumbing: it asks this module, then acts.

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

from harvester.config.schema import InstanceRef
from harvester.errors import UsageError
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


def quiet_evidence(requested: Set[date], ready: Set[date], today: date) -> frozenset[date]:
    """Requested days that look quiet tonight: no ready file for them by the end of the wait,
    while the same collections produced a ready file for a LATER requested complete day.

    Only requested days count on either side: a file for today (a partial log some clouds list
    after a ``query_time`` > 0 collection) or for a day outside the windows proves nothing about
    the days that were asked for, and neither does a replica that produced nothing at all (its
    collection may simply not have run).
    """
    produced = {d for d in ready if d in requested and d < today}
    if not produced:
        return frozenset()
    newest = max(produced)
    return frozenset(d for d in requested if d < newest and d not in ready)


def note_missing(
    record: PendingDay | None,
    key: ArchiveKey,
    night: date,
    *,
    covered: bool,
    evidence: bool,
    reason: str,
) -> PendingDay:
    """The record of a day still without a file after tonight's run.

    ``covered``: one of tonight's collections asked for the day. ``evidence``: tonight is a
    night of evidence for it (:func:`quiet_evidence`). Nights are run dates, so two runs on one
    night count once. The day becomes final once :data:`QUIET_NIGHTS` nights agree.
    """
    base = record if record is not None else PendingDay(key, since=night)
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


#: Whatever the timings say, a replica's listing must stay unchanged for at least this share of
#: ``collect.wait_timeout`` before its wait ends with days missing: a first file that comes fast
#: says little about how long the last one takes.
SETTLE_SHARE = 0.25


def settle_period(
    changes: Sequence[float], started: float, slowest: float | None, poll: float, wait_timeout: float
) -> float | None:
    """How long a replica's listing must stay unchanged before tonight's wait for it ends.

    Twice the longest interval seen so far (from the request to its first file, and between
    its files: files that trickle in are waited for), and twice the slowest collection this run
    has seen finish; at least :data:`SETTLE_SHARE` of ``wait_timeout`` and three polls.
    ``None`` while there is nothing to measure: then only a complete listing or
    ``wait_timeout`` ends the wait (a cloud whose first file takes long is waited for).
    """
    times = [started, *changes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if slowest is not None:
        gaps.append(slowest)
    if not gaps:
        return None
    return max(3 * poll, SETTLE_SHARE * wait_timeout, 2 * max(gaps))


def wait_end(
    *,
    wanted: Set[date],
    final_days: Set[date],
    started: float,
    now: float,
    changes: Sequence[float],
    slowest: float | None,
    poll: float,
    wait_timeout: float,
) -> WaitEnd | None:
    """Whether tonight's wait for one replica is over, and why; ``None``: keep polling.

    ``final_days``: days with a final (ready or failed) file of this run's collections;
    ``changes``: the moments the replica's part of the listing changed. Whatever is still
    missing when the wait ends stays pending: this decides how long to wait, nothing more.
    """
    if wanted <= final_days:
        return WaitEnd.COMPLETE
    settle = settle_period(changes, started, slowest, poll, wait_timeout)
    last = changes[-1] if changes else started
    if settle is not None and now - last >= settle:
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
