"""``harvester run``: the nightly harvest of complete days into the dated archive.

Per instance: list what DCS already has, collect only the days still missing (one POST per
replica with the smallest covering ``query_time``), wait for those files, then download every
``succeed`` file whose archive key is not yet in a manifest. A second run the same night finds
everything archived and requests nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import PurePosixPath

import anyio
import anyio.to_thread
import structlog

from harvester import plan
from harvester.dcs import RunlogItem
from harvester.errors import HarvesterError
from harvester.harvest import Destination, Engine, file_result, is_fatal, to_logfile
from harvester.manifest import EmptyDays, archived_keys
from harvester.models import ArchiveKey, LogFile, Outcome, Replica, RunSummary, Target
from harvester.prune import pruned_through

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
        self.empty_store = EmptyDays(engine.archive.root)
        self.empty: set[ArchiveKey] = set()
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
        self.empty = self.empty_store.load()
        keep = None
        if self.options.shard is not None:
            k, n = self.options.shard

            def keep(project_id: str, instance_id: str) -> bool:
                return plan.in_shard(project_id, instance_id, k, n)

        targets = await engine.resolve_targets(self.options.only, keep=keep)
        if self.options.repair is not None:
            damaged = {k.instance_id for k in self.options.repair}
            targets = [t for t in targets if t.instance_id in damaged]
        if self.options.shard is not None:
            log.info("harvest.shard_selected", shard=f"{k}/{n}", instances=len(targets))
        await engine.for_each(targets, self._instance, limit=engine.instance_parallelism)
        return engine.summary

    def _days_for(self, replica: Replica, keys: set[ArchiveKey]) -> set[date]:
        t = replica.target
        return {
            k.day
            for k in keys
            if k.project_id == t.project_id
            and k.instance_id == t.instance_id
            and (replica.replication_id is None or (k.group_name, k.replication_ip) == _rkey(replica))
        }

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

    async def _harvest_instance(self, target: Target) -> None:
        engine = self.engine
        settings = engine.settings
        replicas = await engine.replicas(target)
        items = await engine.list_logs(target)

        need: dict[Replica, list[date]] = {}
        for replica in replicas:
            have = self._days_for(replica, self.archived)
            empty = self._days_for(replica, self.empty)
            missing = plan.missing_days(self.today, have, empty, include_today=self.options.include_today)
            wanted = [d for d in missing if d in self.window]
            if self.options.repair is not None:
                wanted = [d for d in wanted if d in self._days_for(replica, set(self.options.repair))]
            if wanted:
                need[replica] = wanted
        requests = {r: self._requests(days) for r, days in need.items()}

        if self.options.dry_run:
            self._dry_run(target, replicas, items, need, requests)
            return

        # DCS items carry no collection time, and one collected while its day was still running
        # (an incident bundle, --include-today) lists as `succeed` with part of the log. So with
        # collection on, only files this run collected, after their day ended, are downloaded;
        # with it off, what DCS lists is all there is.
        timed_out: frozenset[Replica] = frozenset()
        no_files: frozenset[Replica] = frozenset()
        if not settings.collect.enabled:
            listed = [to_logfile(i, replicas, target) for i in items]
        elif any(requests.values()):
            before = {i.id for i in items}
            posts = [(r, qt) for r, query_times in requests.items() for qt in query_times]

            async def post(request: tuple[Replica, int]) -> None:
                await engine.collect(*request)

            await engine.for_each(posts, post)
            collected = await engine.wait_for_collection(
                target, [r for r, q in requests.items() if q], before
            )
            listed = [to_logfile(i, replicas, target) for i in collected.items if i.id not in before]
            timed_out, no_files = collected.timed_out, collected.no_files
            await self._remember_empty(need, listed, timed_out | no_files)
        else:
            listed = []

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
        chosen_keys = {lf.key for lf in chosen}
        self._report_unavailable(
            target, need=need, listed=listed, chosen=chosen_keys, timed_out=timed_out, no_files=no_files
        )
        self._report_present(target, chosen_keys)
        await engine.fetch_all((lf, self._destination(target, lf)) for lf in chosen)

    @staticmethod
    def _destination(target: Target, lf: LogFile) -> Destination:
        relpath = plan.archive_relpath(target, lf.replica.group_name, lf.file_name, lf.replica.replication_ip)
        return Destination(plan.date_folder(lf.day), relpath)

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

    async def _remember_empty(
        self, need: dict[Replica, list[date]], listed: Sequence[LogFile], unsure: frozenset[Replica]
    ) -> None:
        """Days a finished collection produced no file for are quiet days: never re-collect them.

        Only replicas that did produce files for other days count as finished; one that produced
        nothing at all (``unsure``) may just be slow, so its days are tried again next run.
        """
        quiet: list[ArchiveKey] = []
        for replica, days in need.items():
            if replica in unsure:
                continue
            present = {lf.day for lf in listed if _matches(lf, replica)}
            t = replica.target
            group, ip = _rkey(replica)
            quiet.extend(
                ArchiveKey(t.project_id, t.instance_id, group, ip, d)
                for d in days
                if d not in present and d != self.today
            )
        if quiet:
            await self.empty_store.add(quiet)
            log.info("harvest.quiet_days_recorded", count=len(quiet))

    def _report_unavailable(
        self,
        target: Target,
        *,
        need: dict[Replica, list[date]],
        listed: Sequence[LogFile],
        chosen: set[ArchiveKey],
        timed_out: frozenset[Replica],
        no_files: frozenset[Replica],
    ) -> None:
        """A needed day with no downloadable file is a failure the operator must see."""
        engine = self.engine
        collect = engine.settings.collect
        for replica, days in need.items():
            for day in days:
                mine = [lf for lf in listed if _matches(lf, replica) and lf.day == day]
                if any(lf.key in chosen for lf in mine):
                    continue
                statuses = {plan.classify_status(lf.status) for lf in mine}
                if "failed" in statuses:
                    reason = "DCS reported the log collection as failed"
                elif "pending" in statuses:
                    reason = "DCS still lists the file as not ready"
                elif replica in timed_out:
                    reason = f"no file within collect.wait_timeout ({collect.wait_timeout:g}s)"
                elif not collect.enabled:
                    reason = "not listed by DCS and collect.enabled is false"
                else:
                    if replica in no_files and day != self.today:
                        log.warning(
                            "harvest.day_not_collected",
                            replica=replica.replication_ip or "-",
                            day=day.isoformat(),
                            reason="the collection produced no file (a quiet Redis?); tried again next run",
                        )
                    continue  # a quiet day
                group, ip = _rkey(replica)
                lf = LogFile(Replica(target, group, ip, replica.replication_id), "", "", day, "failed")
                engine.record(file_result(lf, Outcome.FAILED, reason=reason))
                log.warning("harvest.day_unavailable", replica=ip or "-", day=day.isoformat(), reason=reason)

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
        items: Sequence[RunlogItem],
        need: dict[Replica, list[date]],
        requests: dict[Replica, tuple[int, ...]],
    ) -> None:
        """What a real run would do: the collections, and the days (or files) it would fetch."""
        collect = self.engine.settings.collect.enabled
        listed = [to_logfile(i, replicas, target) for i in items] if not collect else []
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
                    str(PurePosixPath(plan.date_folder(lf.day)) / self._destination(target, lf).relpath)
                    for lf in chosen
                    if _matches(lf, replica)
                )
            label = replica.replication_ip or "(single node)"
            self.dry_run_lines.append(
                DryRunLine(target, label, requests.get(replica, ()) if collect else (), fetch)
            )


def _rkey(replica: Replica) -> tuple[str, str]:
    return (replica.group_name, replica.replication_ip)


def _matches(lf: LogFile, replica: Replica) -> bool:
    if replica.replication_id is None:
        return True
    return (lf.replica.group_name, lf.replica.replication_ip) == _rkey(replica)
