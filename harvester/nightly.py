"""``harvester run``: the nightly harvest of complete days into the dated archive.

Per instance: list what DCS already has, collect only the days still missing (one POST per
replica with the smallest covering ``query_time``), wait for those files, then download every
``succeed`` file whose archive key is not yet in a manifest. A second run the same night finds
everything archived and requests nothing but the days still pending.

A needed day without a file is never given up on one night's timing: it is reported as
pending and collected again until the rules in :mod:`harvester.plan` call it "no log produced"
(evidence on two nights) or it leaves DCS's window (a failure, reported once). Every needed
replica-day ends in exactly one outcome record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import PurePosixPath

import anyio
import anyio.to_thread
import structlog

from harvester import plan
from harvester.archive.index import archived_keys
from harvester.archive.paths import archive_relpath, date_folder
from harvester.archive.state import InstanceKey, PendingDays, instance_of, pruned_through
from harvester.errors import HarvesterError
from harvester.harvest import Collected, Destination, Engine, file_result, is_fatal
from harvester.models import ArchiveKey, FileResult, LogFile, Outcome, Replica, RunSummary, Target
from harvester.plan import PendingDay

log = structlog.get_logger("harvester")


@dataclass(frozen=True, slots=True)
class NightlyOptions:
    dry_run: bool = False
    include_today: bool = False
    only: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    # verify --repair: only these keys are collected and fetched, as if not archived.
    repair: frozenset[ArchiveKey] | None = None


@dataclass(frozen=True, slots=True)
class DryRunLine:
    """One line of ``--dry-run`` output: what would happen to one replica."""

    target: Target
    replica: str
    collect: tuple[int, ...]
    download: tuple[str, ...]


class Nightly:
    def __init__(self, engine: Engine, options: NightlyOptions) -> None:
        self.engine = engine
        self.options = options
        self.today: date = plan.today_utc(engine.now())
        self.archived: set[ArchiveKey] = set()
        self.store = PendingDays(engine.archive)
        self.pending: dict[ArchiveKey, PendingDay] = {}
        # The pending-day records of each instance this run worked on, saved at the end.
        self.updates: dict[InstanceKey, dict[ArchiveKey, PendingDay]] = {}
        self.dry_run_lines: list[DryRunLine] = []
        self.pruned_through: date | None = None  # prune's retention watermark, read in run()
        # Days this run may collect: the retention window, or what ``collect.days`` pins.
        fixed = engine.settings.collect.days
        if fixed is None:
            self.window = set(plan.complete_days(self.today)) | {self.today}
        elif fixed == 0:
            self.window = {self.today}
        else:
            self.window = set(plan.complete_days(self.today, fixed)) | {self.today}

    async def run(self) -> RunSummary:
        engine = self.engine
        root = engine.archive.root
        since = self.today - timedelta(days=plan.RETENTION_DAYS)
        self.archived = await anyio.to_thread.run_sync(partial(archived_keys, root, recheck_since=since))
        self.pruned_through = pruned_through(root)
        self.window = plan.after_watermark(self.window, self.pruned_through)
        if self.options.repair is not None:
            self.archived -= self.options.repair
        self.pending = self.store.load()
        keep = None
        if self.options.shard is not None:
            k, n = self.options.shard

            def keep(project_id: str, instance_id: str) -> bool:
                return plan.in_shard(project_id, instance_id, k, n)

        try:
            targets = await engine.resolve_targets(self.options.only, keep=keep)
            if self.options.repair is not None:
                damaged = {k.instance_id for k in self.options.repair}
                targets = [t for t in targets if t.instance_id in damaged]
            if self.options.shard is not None:
                log.info("harvest.shard_selected", shard=f"{k}/{n}", instances=len(targets))
            await engine.for_each(targets, self._instance, limit=engine.instance_parallelism)
        finally:
            if not self.options.dry_run:
                # Whatever happened, keep what this run learned about pending days.
                with anyio.CancelScope(shield=True):
                    await self._save_state()
        return engine.summary

    async def _save_state(self) -> None:
        changed = {
            inst: records
            for inst, records in self.updates.items()
            if records != {k: r for k, r in self.pending.items() if instance_of(k) == inst}
        }
        try:
            await self.store.save(changed, self.today)
        except HarvesterError as exc:
            # The harvest itself happened; losing tonight's notes only delays a verdict.
            log.error("harvest.state_not_saved", reason=str(exc))

    def _days_for(self, replica: Replica, keys: Iterable[ArchiveKey]) -> set[date]:
        return {k.day for k in keys if replica.owns(k)}

    async def _instance(self, target: Target) -> None:
        with structlog.contextvars.bound_contextvars(project=target.project, instance=target.instance_name):
            try:
                await self._harvest_instance(target)
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                self.engine.instance_failed(
                    target.project, f"{target.instance_name} ({target.instance_id})", str(exc)
                )

    def _records_of(self, target: Target) -> dict[ArchiveKey, PendingDay]:
        """This instance's pending-day records, without the days archived since."""
        mine = (target.project_id, target.instance_id)
        archived = {(k.group_name, k.replication_ip, k.day) for k in self.archived if instance_of(k) == mine}
        archived_days = {k.day for k in self.archived if instance_of(k) == mine}
        out: dict[ArchiveKey, PendingDay] = {}
        for key, record in self.pending.items():
            if instance_of(key) != mine:
                continue
            single = not key.group_name and not key.replication_ip
            done = (
                key.day in archived_days
                if single
                else (key.group_name, key.replication_ip, key.day) in archived
            )
            if not done:
                out[key] = record
        return out

    def _expire(self, target: Target, records: dict[ArchiveKey, PendingDay]) -> None:
        """Days that left DCS's window: a pending one is a failure, reported once; then forgotten."""
        for key, record in sorted(records.items(), key=lambda kr: (kr[0].day, kr[0].group_name)):
            if not plan.left_window(key.day, self.today):
                continue
            del records[key]
            reason = plan.expired_reason(record, self.today)
            if reason is None:
                continue
            self._record_day(target, key, Outcome.FAILED, reason)
            log.warning(
                "harvest.day_expired",
                replica=key.replication_ip or "-",
                day=key.day.isoformat(),
                reason=reason,
            )

    def _record_day(self, target: Target, key: ArchiveKey, outcome: Outcome, reason: str) -> None:
        replica = Replica(target, key.group_name, key.replication_ip, None)
        lf = LogFile(replica, "", "", key.day, "")
        self.engine.record(file_result(lf, outcome, reason=reason))

    async def _harvest_instance(self, target: Target) -> None:
        engine = self.engine
        settings = engine.settings
        replicas = await engine.replicas(target)
        items = await engine.list_logs(target, replicas)

        records = self._records_of(target)
        if not self.options.dry_run:
            self._expire(target, records)
            self.updates[(target.project_id, target.instance_id)] = records
        need: dict[Replica, list[date]] = {}
        for replica in replicas:
            have = self._days_for(replica, self.archived)
            final = {k.day for k, r in records.items() if r.final and replica.owns(k)}
            missing = plan.missing_days(self.today, have, final, include_today=self.options.include_today)
            wanted = [d for d in missing if d in self.window]
            if self.options.repair is not None:
                wanted = [d for d in wanted if d in self._days_for(replica, set(self.options.repair))]
            if wanted:
                need[replica] = wanted
        requests = {r: self._requests(days) for r, days in need.items()}

        if self.options.dry_run:
            self._dry_run(target, replicas, items, need, requests)
            return
        if engine.disk_full is not None:
            self._not_collected(target, need, records, engine.disk_full, Outcome.FAILED)
            return

        # DCS items carry no collection time, and one collected while its day was still running
        # (an incident bundle, --include-today) lists as `succeed` with part of the log. So with
        # collection on, only files this run collected, after their day ended, are downloaded;
        # with it off, what DCS lists is all there is.
        collected: Collected | None = None
        try:
            if not settings.collect.enabled:
                listed = items
            elif any(requests.values()):
                before = {lf.log_id for lf in items}
                posts = [(r, qt) for r, query_times in requests.items() for qt in query_times]

                async def post(request: tuple[Replica, int]) -> None:
                    await engine.collect(*request)

                await engine.for_each(posts, post)
                wanted_now = {r: frozenset(need[r]) for r, q in requests.items() if q}
                collected = await engine.wait_for_collection(target, wanted_now, before, replicas=replicas)
                listed = [lf for lf in collected.items if lf.log_id not in before]
            else:
                listed = []
        except anyio.get_cancelled_exc_class():
            # Stopped while DCS was collecting: every needed day still gets its one outcome.
            self._not_collected(
                target, need, None, "run interrupted while waiting for DCS to collect", Outcome.CANCELLED
            )
            raise
        except HarvesterError as exc:
            if not is_fatal(exc):  # the instance failure is reported by the caller
                self._note_days(target, need, records, f"collection failed: {exc}")
            raise

        wanted_days = {d for days in need.values() for d in days} | self._all_complete_days()
        chosen = plan.select_downloads(
            listed,
            self.archived,
            self.today,
            include_today=self.options.include_today,
            wanted_days=wanted_days,
        )
        if self.options.repair is not None:
            chosen = [lf for lf in chosen if lf.key in self.options.repair]
        fetching: dict[tuple[Replica, date], LogFile] = {}
        for lf in chosen:
            owner = next((r for r in need if r.owns(lf.key) and lf.day in need[r]), None)
            if owner is not None:
                fetching[(owner, lf.day)] = lf
        self._report_unavailable(
            target,
            need=need,
            requests=requests,
            listed=listed,
            fetching=fetching,
            collected=collected,
            records=records,
        )
        self._report_present(target, {lf.key for lf in chosen})
        results = await engine.fetch_all((lf, self._destination(target, lf)) for lf in chosen)
        self._note_fetched(target, fetching, results, records)

    @staticmethod
    def _destination(target: Target, lf: LogFile) -> Destination:
        relpath = archive_relpath(target, lf.replica.group_name, lf.file_name, lf.replica.replication_ip)
        return Destination(date_folder(lf.day), relpath)

    def _requests(self, days: list[date]) -> tuple[int, ...]:
        """Automatic catch-up picks the smallest covering query_time; ``collect.days`` pins it."""
        fixed = self.engine.settings.collect.days
        if fixed is None:
            return plan.collection_requests(self.today, days)
        return (fixed,) if days else ()

    def _all_complete_days(self) -> set[date]:
        days = set(plan.complete_days(self.today))
        if self.options.include_today:
            days.add(self.today)
        return plan.after_watermark(days, self.pruned_through)

    # -- pending days -------------------------------------------------------------------

    def _note(
        self,
        records: dict[ArchiveKey, PendingDay],
        key: ArchiveKey,
        *,
        covered: bool,
        evidence: bool,
        reason: str,
    ) -> PendingDay:
        record = plan.note_missing(
            records.get(key), key, self.today, covered=covered, evidence=evidence, reason=reason
        )
        if key.day != self.today:  # today is not over: nothing to remember about it
            records[key] = record
        return record

    def _note_days(
        self,
        target: Target,
        need: dict[Replica, list[date]],
        records: dict[ArchiveKey, PendingDay],
        reason: str,
    ) -> None:
        for replica, days in need.items():
            for day in days:
                self._note(
                    records, _record_key(target, replica, day), covered=False, evidence=False, reason=reason
                )

    def _not_collected(
        self,
        target: Target,
        need: dict[Replica, list[date]],
        records: dict[ArchiveKey, PendingDay] | None,
        reason: str,
        outcome: Outcome,
    ) -> None:
        """Every needed day of an instance that could not be collected tonight gets one outcome."""
        if records is not None:
            self._note_days(target, need, records, reason)
        for replica, days in need.items():
            for day in days:
                self._record_day(target, _record_key(target, replica, day), outcome, reason)

    def _report_unavailable(
        self,
        target: Target,
        *,
        need: dict[Replica, list[date]],
        requests: dict[Replica, tuple[int, ...]],
        listed: Sequence[LogFile],
        fetching: dict[tuple[Replica, date], LogFile],
        collected: Collected | None,
        records: dict[ArchiveKey, PendingDay],
    ) -> None:
        """Each needed day without a file to fetch: pending, no log produced, or failed.

        A day is never given up on one night's timing: it stays pending (reported, collected
        again next night) until :data:`plan.QUIET_NIGHTS` nights of evidence say DCS produces
        no log for it, or it leaves DCS's window (then :meth:`_expire` reports it as failed).
        """
        engine = self.engine
        collect = engine.settings.collect
        for replica, days in need.items():
            ran = collected is not None and replica in collected.ended
            requested = plan.requested_days(self.today, requests.get(replica, ())) if ran else frozenset()
            mine = [lf for lf in listed if replica.owns(lf.key)]
            ready = {lf.day for lf in mine if plan.classify_status(lf.status) == "ready"}
            evidence = plan.quiet_evidence(requested, ready, self.today)
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
                key = _record_key(target, replica, day)
                record = self._note(
                    records, key, covered=day in requested, evidence=day in evidence, reason=short
                )
                if record.final:
                    outcome, reason = Outcome.NO_LOG, plan.no_log_reason(record)
                elif "failed" in statuses:
                    outcome, reason = Outcome.FAILED, cause
                else:
                    outcome, reason = Outcome.PENDING, self._pending_reason(record, cause)
                self._record_day(target, key, outcome, reason)
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

    def _note_fetched(
        self,
        target: Target,
        fetching: dict[tuple[Replica, date], LogFile],
        results: Sequence[FileResult],
        records: dict[ArchiveKey, PendingDay],
    ) -> None:
        """An archived day leaves the records; a file that failed to download stays pending."""
        by_file = {(r.group_name, r.replication_ip, r.day): r for r in results}
        for (replica, day), lf in fetching.items():
            result = by_file.get((lf.replica.group_name, lf.replica.replication_ip, day))
            key = _record_key(target, replica, day)
            if result is None or result.outcome is Outcome.CANCELLED:
                continue
            if result.outcome is Outcome.ARCHIVED:
                records.pop(key, None)
            else:
                self._note(
                    records, key, covered=True, evidence=False, reason=f"download failed: {result.reason}"
                )

    def _report_present(self, target: Target, chosen: set[ArchiveKey]) -> None:
        """Days of the retention window already in the archive count as done, not as nothing."""
        window = set(plan.complete_days(self.today))
        for key in sorted(self.archived, key=lambda k: (k.day, k.group_name, k.replication_ip)):
            if (
                key.project_id == target.project_id
                and key.instance_id == target.instance_id
                and key.day in window
                and key not in chosen
            ):
                replica = Replica(target, key.group_name, key.replication_ip, None)
                lf = LogFile(replica, "", "", key.day, "succeed")
                self.engine.record(file_result(lf, Outcome.PRESENT))

    def _dry_run(
        self,
        target: Target,
        replicas: Sequence[Replica],
        items: Sequence[LogFile],
        need: dict[Replica, list[date]],
        requests: dict[Replica, tuple[int, ...]],
    ) -> None:
        """What a real run would do: the collections, and the days (or files) it would fetch."""
        collect = self.engine.settings.collect.enabled
        listed = list(items) if not collect else []
        chosen = plan.select_downloads(
            listed,
            self.archived,
            self.today,
            include_today=self.options.include_today,
            wanted_days=self._all_complete_days(),
        )
        for replica in replicas:
            if collect:
                fetch = tuple(f"day {d.isoformat()}" for d in sorted(need.get(replica, [])))
            else:
                fetch = tuple(
                    str(PurePosixPath(date_folder(lf.day)) / self._destination(target, lf).relpath)
                    for lf in chosen
                    if replica.owns(lf.key)
                )
            label = replica.replication_ip or "(single node)"
            self.dry_run_lines.append(
                DryRunLine(target, label, requests.get(replica, ()) if collect else (), fetch)
            )


def _rkey(replica: Replica) -> tuple[str, str]:
    return (replica.group_name, replica.replication_ip)


def _record_key(target: Target, replica: Replica, day: date) -> ArchiveKey:
    """The pending-day key of a replica-day: a single node's is the instance's (no group, no IP)."""
    group, ip = _rkey(replica) if replica.replication_id is not None else ("", "")
    return ArchiveKey(target.project_id, target.instance_id, group, ip, day)
