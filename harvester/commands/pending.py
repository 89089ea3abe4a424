"""The nightly run's ledger of one instance's needed days: every one ends in one outcome.

A needed replica-day without a file is never given up on one night's timing: it is recorded as
*pending* in the archive's state (:class:`~harvester.archive.state.PendingDays`), reported, and
collected again next night, until :mod:`harvester.plan` calls it "no log produced" (evidence on
:data:`~harvester.plan.QUIET_NIGHTS` nights) or it leaves DCS's window (a failure, reported
once). :class:`DayLedger` keeps those records for one instance during one run and writes the
day's outcome record for each needed day that has no file to fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import structlog

from harvester import plan
from harvester.config.schema import CollectSettings
from harvester.engine import Collected
from harvester.models import ArchiveKey, FileResult, LogFile, Outcome, Replica, Target
from harvester.plan import PendingDay

log = structlog.get_logger("harvester")

#: The days each replica needs tonight, newest first.
Need = dict[Replica, list[date]]


def record_key(target: Target, replica: Replica, day: date) -> ArchiveKey:
    """The pending-day key of a replica-day: a single node's is the instance's (no group, no IP)."""
    if replica.replication_id is None:
        return ArchiveKey(target.project_id, target.instance_id, "", "", day)
    return ArchiveKey(target.project_id, target.instance_id, replica.group_name, replica.replication_ip, day)


def day_result(target: Target, key: ArchiveKey, outcome: Outcome, reason: str = "") -> FileResult:
    """The outcome record of a replica-day (no file name: there is no file, or it is not fetched)."""
    replica = Replica(target, key.group_name, key.replication_ip, None)
    return FileResult.of(LogFile(replica, "", "", key.day, ""), outcome, reason=reason)


class DayLedger:
    """One instance's pending-day records for tonight, and the outcomes of its needed days.

    ``records`` is updated in place (the caller saves it at the end of the run); ``record``
    counts an outcome record into the run's summary.
    """

    def __init__(
        self,
        target: Target,
        records: dict[ArchiveKey, PendingDay],
        today: date,
        record: Callable[[FileResult], object],
    ) -> None:
        self.target = target
        self.records = records
        self.today = today
        self._record = record

    def record_day(self, key: ArchiveKey, outcome: Outcome, reason: str) -> None:
        self._record(day_result(self.target, key, outcome, reason))

    def expire(self) -> None:
        """Days that left DCS's window: a pending one is a failure, reported once; then forgotten."""
        for key, record in sorted(self.records.items(), key=lambda kr: (kr[0].day, kr[0].group_name)):
            if not plan.left_window(key.day, self.today):
                continue
            del self.records[key]
            reason = plan.expired_reason(record, self.today)
            if reason is None:
                continue
            self.record_day(key, Outcome.FAILED, reason)
            log.warning(
                "harvest.day_expired",
                replica=key.replication_ip or "-",
                day=key.day.isoformat(),
                reason=reason,
            )

    def note(
        self, key: ArchiveKey, *, covered: bool, evidence: bool, reason: str, seen: bool = False
    ) -> PendingDay:
        """Tonight's news about a day still without a file (see :func:`plan.note_missing`)."""
        record = plan.note_missing(
            self.records.get(key),
            key,
            self.today,
            covered=covered,
            evidence=evidence,
            reason=reason,
            seen=seen,
        )
        if key.day != self.today:  # today is not over: nothing to remember about it
            self.records[key] = record
        return record

    def saw(self, listed: Sequence[LogFile], replicas: Sequence[Replica]) -> None:
        """Days with a file in a listing (any status, from any collection, e.g. one that came
        after last night's wait ended) produced a log: their quiet-day evidence is void
        (:func:`plan.void_evidence`), a "no log produced" verdict included."""
        for lf in listed:
            for replica in replicas:
                if not replica.owns(lf.key):
                    continue
                key = record_key(self.target, replica, lf.day)
                record = self.records.get(key)
                if record is not None:
                    voided = plan.void_evidence(record)
                    if voided is not record:
                        self.records[key] = voided
                        log.info(
                            "harvest.day_evidence_void",
                            replica=key.replication_ip or "-",
                            day=lf.day.isoformat(),
                        )

    def note_days(self, need: Need, reason: str) -> None:
        for replica, days in need.items():
            for day in days:
                self.note(record_key(self.target, replica, day), covered=False, evidence=False, reason=reason)

    def not_collected(self, need: Need, reason: str, outcome: Outcome, *, remember: bool = True) -> None:
        """Every needed day of an instance that could not be collected tonight gets one outcome."""
        if remember:
            self.note_days(need, reason)
        for replica, days in need.items():
            for day in days:
                self.record_day(record_key(self.target, replica, day), outcome, reason)

    def report_unavailable(
        self,
        *,
        need: Need,
        requests: dict[Replica, tuple[int, ...]],
        listed: Sequence[LogFile],
        fetching: dict[tuple[Replica, date], LogFile],
        collected: Collected | None,
        collect: CollectSettings,
    ) -> None:
        """Each needed day without a file to fetch: pending, no log produced, or failed.

        A day is never given up on one night's timing: it stays pending (reported, collected
        again next night) until :data:`plan.QUIET_NIGHTS` nights of evidence say DCS produces
        no log for it, or it leaves DCS's window (then :meth:`expire` reports it as failed).
        """
        for replica, days in need.items():
            ran = collected is not None and replica in collected.ended
            requested = plan.requested_days(self.today, requests.get(replica, ())) if ran else frozenset()
            mine = [lf for lf in listed if replica.owns(lf.key)]
            ready = {lf.day for lf in mine if plan.classify_status(lf.status) == "ready"}
            evidence = plan.quiet_evidence(requested, ready, self.today, listed={lf.day for lf in mine})
            for day in days:
                if (replica, day) in fetching:
                    continue
                statuses = {plan.classify_status(lf.status) for lf in mine if lf.day == day}
                if "failed" in statuses:
                    short = cause = "DCS reported the log collection as failed"
                elif "pending" in statuses:
                    short = cause = "DCS still listed the file as not ready"
                elif not collect.enabled:
                    short = cause = "not listed by DCS and collect.enabled is false"
                elif collected is not None and replica in collected.ended:
                    short, cause = "no file listed", collected.why(replica, collect.wait_timeout)
                else:
                    short = cause = "no file listed"
                key = record_key(self.target, replica, day)
                record = self.note(
                    key, covered=day in requested, evidence=day in evidence, reason=short, seen=bool(statuses)
                )
                if record.final:
                    outcome, reason = Outcome.NO_LOG, plan.no_log_reason(record)
                elif "failed" in statuses:
                    outcome, reason = Outcome.FAILED, cause
                else:
                    outcome, reason = Outcome.PENDING, self._pending_reason(record, cause)
                self.record_day(key, outcome, reason)
                event = {
                    Outcome.NO_LOG: "harvest.day_no_log",
                    Outcome.FAILED: "harvest.day_unavailable",
                    Outcome.PENDING: "harvest.day_pending",
                }[outcome]
                level = log.warning if outcome is Outcome.FAILED else log.info
                level(event, replica=key.replication_ip or "-", day=day.isoformat(), reason=reason)

    def _pending_reason(self, record: PendingDay, cause: str) -> str:
        if record.key.day == self.today:
            return f"{cause}; today's log is collected again on the next run"
        nights = len(record.evidence)
        quiet = f", quiet on {nights} of {plan.QUIET_NIGHTS} nights needed" if nights else ""
        return (
            f"{cause}; pending since {record.since.isoformat()} "
            f"({record.collections} collection(s){quiet}), collected again next night"
        )

    def note_fetched(
        self, fetching: dict[tuple[Replica, date], LogFile], results: Sequence[FileResult]
    ) -> None:
        """An archived day leaves the records; a file that failed to download stays pending."""
        by_file = {(r.group_name, r.replication_ip, r.day): r for r in results}
        for (replica, day), lf in fetching.items():
            result = by_file.get((lf.replica.group_name, lf.replica.replication_ip, day))
            key = record_key(self.target, replica, day)
            if result is None or result.outcome is Outcome.CANCELLED:
                continue
            if result.outcome is Outcome.ARCHIVED:
                self.records.pop(key, None)
            else:
                self.note(
                    key, covered=True, evidence=False, reason=f"download failed: {result.reason}", seen=True
                )
