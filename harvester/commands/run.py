"""``harvester run``: the nightly harvest of complete days into the dated archive.

Per instance: list what DCS already has, collect only the days still missing (one POST per
replica with the smallest covering ``query_time``), wait for those files, then download every
``succeed`` file whose archive key is not yet in a manifest. A second run the same night finds
everything archived and requests nothing but the days still pending.

A needed day without a file is never given up on one night's timing: it is reported as
pending and collected again until the rules in :mod:`harvester.plan` call it "no log produced"
(evidence on two nights) or it leaves DCS's window (a failure, reported once). Every needed
replica-day ends in exactly one outcome record (:mod:`harvester.commands.pending` keeps them).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import PurePosixPath

import anyio
import anyio.to_thread
import structlog

from harvester import plan
from harvester.app import FLEET_LOCK, SignalWatch, execute, new_run_id, owns_process, prepare
from harvester.archive.index import ArchiveIndex
from harvester.archive.paths import archive_relpath, date_folder
from harvester.archive.state import InstanceKey, PendingDays, instance_of, pruned_through
from harvester.commands.finish import finish, report_problems
from harvester.commands.pending import DayLedger, Need, day_result
from harvester.engine import Collected, Destination, Engine
from harvester.engine.fetch import Feed
from harvester.errors import EXIT_OK, HarvesterError, exit_code, is_fatal
from harvester.models import ArchiveKey, LogFile, Outcome, Replica, RunSummary, Target
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
    """One nightly harvest over a ready engine: what is archived and pending is read first, then
    every instance is worked on (:meth:`_harvest_instance`), and the pending days are saved."""

    def __init__(self, engine: Engine, options: NightlyOptions) -> None:
        self.engine = engine
        self.options = options
        self.today: date = plan.today_utc(engine.now())
        self.archived = ArchiveIndex(engine.archive.root)  # replaced by the built index in run()
        self.store = PendingDays(engine.archive)
        self.pending: dict[ArchiveKey, PendingDay] = {}
        # The same records grouped by instance, once: each instance then reads only its own.
        self.pending_by_instance: dict[InstanceKey, list[tuple[ArchiveKey, PendingDay]]] = {}
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
        self.pending = self.store.load()
        for key, record in self.pending.items():
            self.pending_by_instance.setdefault(instance_of(key), []).append((key, record))
        # Built once, in a worker thread, from the days a run can act on: the retention window,
        # today, and the days of pending records; any other day is read if a lookup asks for it.
        # Every per-replica decision is then a lookup, so planning is linear in the night's work.
        days = {self.today, *plan.complete_days(self.today), *self.window, *(k.day for k in self.pending)}
        self.archived = await anyio.to_thread.run_sync(
            partial(ArchiveIndex.build, root, days=days, recheck_since=since)
        )
        self.pruned_through = pruned_through(root)
        self.window = plan.after_watermark(self.window, self.pruned_through)
        if self.options.repair is not None:
            self.archived -= self.options.repair
        keep = None
        if self.options.shard is not None:
            k, n = self.options.shard

            def keep(project_id: str, instance_id: str) -> bool:
                return plan.in_shard(project_id, instance_id, k, n)

        try:
            targets = await engine.resolver.targets(self.options.only, keep=keep)
            if self.options.repair is not None:
                damaged = {k.instance_id for k in self.options.repair}
                targets = [t for t in targets if t.instance_id in damaged]
            if self.options.shard is not None:
                log.info("harvest.shard_selected", shard=f"{k}/{n}", instances=len(targets))
            await engine.for_each_instance(targets, self._harvest_instance)
        finally:
            if not self.options.dry_run:
                # Whatever happened, keep what this run learned about pending days.
                with anyio.CancelScope(shield=True):
                    await self._save_state()
        return engine.summary

    async def _save_state(self) -> None:
        # Per instance, against its own loaded records only: comparing each instance against all
        # of them was instances x records (4,300 x ~11,000 at fleet scale).
        def loaded(inst: InstanceKey) -> dict[ArchiveKey, PendingDay]:
            return dict(self.pending_by_instance.get(inst, ()))

        changed = {inst: records for inst, records in self.updates.items() if records != loaded(inst)}
        try:
            await self.store.save(changed, self.today)
        except HarvesterError as exc:
            # The harvest itself happened; losing tonight's notes only delays a verdict.
            log.error("harvest.state_not_saved", reason=str(exc))

    def _days_for(self, replica: Replica, keys: Iterable[ArchiveKey]) -> set[date]:
        return {k.day for k in keys if replica.owns(k)}

    def _records_of(self, target: Target) -> dict[ArchiveKey, PendingDay]:
        """This instance's pending-day records, without the days archived since."""
        mine = (target.project_id, target.instance_id)
        out: dict[ArchiveKey, PendingDay] = {}
        for key, record in self.pending_by_instance.get(mine, ()):
            single = not key.group_name and not key.replication_ip
            done = self.archived.instance_has_day(*mine, key.day) if single else key in self.archived
            if not done:
                out[key] = record
        return out

    async def _harvest_instance(self, target: Target) -> None:
        engine = self.engine
        settings = engine.settings
        replicas = await engine.resolver.replicas(target)
        items = await engine.collector.listing(target, replicas)

        ledger = DayLedger(target, self._records_of(target), self.today, engine.record)
        records = ledger.records
        if not self.options.dry_run:
            ledger.expire()
            ledger.saw(items, replicas)  # a file that came after an earlier wait voids its evidence
            self.updates[(target.project_id, target.instance_id)] = records
        need: Need = {}
        for replica in replicas:
            have = self.archived.days_for(replica)
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
        if engine.fetcher.disk_full is not None:
            ledger.not_collected(need, engine.fetcher.disk_full, Outcome.FAILED)
            return

        # DCS items carry no collection time, and one collected while its day was still running
        # (an incident bundle, --include-today) lists as `succeed` with part of the log. So with
        # collection on, only files this run collected, after their day ended, are downloaded;
        # with it off, what DCS lists is all there is.
        #
        # A file is handed to the fetcher at the first poll that lists it `succeed`, while the
        # other replicas (and days) are still waited for; the days' outcomes are decided once the
        # whole wait is over, from the last listing and every file handed on the way.
        wanted_days = {d for days in need.values() for d in days} | self._all_complete_days()
        handed: dict[ArchiveKey, LogFile] = {}
        failure: list[HarvesterError] = []

        def ready(listed: Sequence[LogFile]) -> list[LogFile]:
            chosen = plan.select_downloads(
                listed,
                self.archived,
                self.today,
                include_today=self.options.include_today,
                wanted_days=wanted_days,
            )
            if self.options.repair is not None:
                chosen = [lf for lf in chosen if lf.key in self.options.repair]
            return [lf for lf in chosen if lf.key not in handed]

        async def collect_and_hand(feed: Feed) -> dict[tuple[Replica, date], LogFile]:
            def hand(listed: Sequence[LogFile]) -> None:
                new = ready(listed)
                handed.update((lf.key, lf) for lf in new)
                feed((lf, self._destination(target, lf)) for lf in new)

            collected: Collected | None = None
            try:
                if not settings.collect.enabled:
                    listed = items
                elif any(requests.values()):
                    before = {lf.log_id for lf in items}
                    posts = [(r, qt) for r, query_times in requests.items() for qt in query_times]

                    async def post(request: tuple[Replica, int]) -> None:
                        await engine.collector.request(*request)

                    await engine.for_each(posts, post)
                    wanted_now = {r: frozenset(need[r]) for r, q in requests.items() if q}
                    collected = await engine.collector.wait(
                        target,
                        wanted_now,
                        before,
                        replicas=replicas,
                        on_poll=lambda now: hand([lf for lf in now if lf.log_id not in before]),
                    )
                    listed = [lf for lf in collected.items if lf.log_id not in before]
                else:
                    listed = []
            except anyio.get_cancelled_exc_class():
                # Stopped while DCS was collecting: every needed day still gets its one outcome
                # (a day whose file was already handed gets that file's).
                reason = "run interrupted while waiting for DCS to collect"
                ledger.not_collected(self._unhanded(need, handed), reason, Outcome.CANCELLED, remember=False)
                raise
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                # The instance failure is reported by the caller once the files already handed
                # are done: what was ready is archived, not thrown away with the wait.
                ledger.note_days(self._unhanded(need, handed), f"collection failed: {exc}")
                failure.append(exc)
                return self._fetching(need, handed)

            hand(listed)
            fetching = self._fetching(need, handed)
            ledger.report_unavailable(
                need=need,
                requests=requests,
                listed=listed,
                fetching=fetching,
                collected=collected,
                collect=settings.collect,
            )
            self._report_present(target, set(handed))
            return fetching

        fetching, results = await engine.fetcher.fetch_fed(collect_and_hand)
        ledger.note_fetched(fetching, results)
        if failure:
            raise failure[0]

    @staticmethod
    def _fetching(need: Need, handed: dict[ArchiveKey, LogFile]) -> dict[tuple[Replica, date], LogFile]:
        """The needed replica-days that have a file handed to the fetcher, and that file."""
        fetching: dict[tuple[Replica, date], LogFile] = {}
        for lf in handed.values():
            owner = next((r for r in need if r.owns(lf.key) and lf.day in need[r]), None)
            if owner is not None:
                fetching[(owner, lf.day)] = lf
        return fetching

    @classmethod
    def _unhanded(cls, need: Need, handed: dict[ArchiveKey, LogFile]) -> Need:
        """``need`` without the days whose file is already with the fetcher (it has its outcome)."""
        fetching = cls._fetching(need, handed)
        out = {r: [d for d in days if (r, d) not in fetching] for r, days in need.items()}
        return {r: days for r, days in out.items() if days}

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

    def _report_present(self, target: Target, chosen: set[ArchiveKey]) -> None:
        """Days of the retention window already in the archive count as done, not as nothing."""
        window = plan.complete_days(self.today)
        for key in self.archived.keys_of_instance(target.project_id, target.instance_id, window):
            if key not in chosen:
                self.engine.record(day_result(target, key, Outcome.PRESENT))

    def _dry_run(
        self,
        target: Target,
        replicas: Sequence[Replica],
        items: Sequence[LogFile],
        need: Need,
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


# --------------------------------------------------------------------------- the command


def main(args: argparse.Namespace) -> int:
    """``harvester run``: harvest, write the run's records, print the summary (or the plan)."""
    with SignalWatch(restore=not owns_process(args)) as watch:
        settings = prepare(args)
        shard = plan.parse_shard(args.shard) if args.shard else None
        options = NightlyOptions(
            dry_run=args.dry_run, include_today=args.include_today, only=tuple(args.instance), shard=shard
        )
        run_id = new_run_id(datetime.now(UTC))
        lock_name = (
            None if args.dry_run else (FLEET_LOCK if shard is None else f"run-shard-{shard[0]}-of-{shard[1]}")
        )
        lines: list[str] = []

        async def work(engine: Engine) -> None:
            nightly = Nightly(engine, options)
            await nightly.run()
            if args.dry_run:
                lines.extend(dry_run_text(nightly))

        summary = execute(
            settings,
            args,
            run_id,
            lock_name=lock_name,
            work=work,
            watch=watch,
            full_check=bool(getattr(args, "full_check", False)),
        )
        if args.dry_run:
            return finish_dry_run(summary, lines)
        return finish(summary, settings, args, shard=args.shard, root_record=True)


def finish_dry_run(summary: RunSummary, lines: list[str]) -> int:
    """Print the plan; "nothing to do" only when the API was asked and everything answered.

    A dry run that could not list instances, was refused, or was interrupted has not found
    "nothing to do": it says what went wrong on stderr and exits like a run would (1 or 3,
    130/143), so a dry run in CI cannot pass while the API is unreachable.
    """
    code = exit_code(summary)
    if lines:
        print("\n".join(lines))
    elif code == EXIT_OK:
        print("nothing to do")
    for problem in summary.instances:
        if problem.skipped:
            print(f"skipped {problem.project}/{problem.instance}: {problem.reason}")
    report_problems(summary)
    if summary.interrupted_by is not None:
        print(
            f"harvester: dry run interrupted by {signal.Signals(summary.interrupted_by).name}",
            file=sys.stderr,
        )
    return code


def dry_run_text(nightly: Nightly) -> list[str]:
    out = []
    for line in nightly.dry_run_lines:
        collect = ", ".join(f"query_time={q}" for q in line.collect) or "nothing"
        out.append(f"{line.target.project}/{line.target.instance_name} {line.replica}: collect {collect}")
        out.extend(f"  download {f}" for f in line.download)
    return out
