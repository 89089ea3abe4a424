"""The engine: resolve instances, collect, wait, link, download, record.

This is the only module that opens task groups and holds the limiters. Everything it
decides is delegated to :mod:`harvester.plan` (pure) and everything it touches goes through
:mod:`harvester.dcs`, :mod:`harvester.download` and :mod:`harvester.storage`; what stays
here is the orchestration and the accounting: every file ends in exactly one FileResult.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

import anyio
import structlog

from harvester import plan
from harvester.auth import Authenticator
from harvester.breaker import endpoint_url
from harvester.config import ProjectSettings, Settings
from harvester.dcs import DcsClient, GroupInfo, InstanceInfo, RunlogItem
from harvester.download import fetch_to_archive
from harvester.errors import (
    Action,
    AuthError,
    HarvesterError,
    LinkRefusedError,
    TransportError,
    UsageError,
    classify,
    expected_failure,
)
from harvester.manifest import ManifestEntry, ManifestWriter
from harvester.models import (
    FileResult,
    InstanceFailure,
    LogFile,
    Outcome,
    Replica,
    RunSummary,
    SignedLink,
    Target,
)
from harvester.progress import NullProgress, Progress
from harvester.retry import MAX_RETRY_AFTER, RateLimiter, RetryEvent, RetryPolicy, call_with_retry
from harvester.storage import Archive
from harvester.transport import Transport

T = TypeVar("T")
log = structlog.get_logger("harvester")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a downloaded file goes: the manifest folder and the path below it."""

    folder: str
    relpath: PurePosixPath


@dataclass(frozen=True, slots=True)
class Collected:
    """What waiting for a collection saw: the last listing and the replicas it gave up on."""

    items: list[RunlogItem]
    timed_out: frozenset[Replica]  # no file within collect.wait_timeout
    no_files: frozenset[Replica]  # no file while the run's other collections had long finished


@dataclass(slots=True)
class Project:
    """Per-project machinery: one client, one rate limiter, the config it came from."""

    settings: ProjectSettings
    project_id: str
    client: DcsClient
    limiter: RateLimiter


@dataclass(slots=True)
class InstanceWork:
    """What one instance contributed, for the per-instance summary."""

    target: Target
    replicas: list[Replica] = field(default_factory=list)
    collected: int = 0


class _Runner:
    """Wraps each HTTP request in the project's rate limit, the global API slots and retries."""

    def __init__(self, engine: Engine, limiter: RateLimiter, project: str) -> None:
        self._engine = engine
        self._limiter = limiter
        self._project = project

    async def __call__(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        engine = self._engine

        async def once() -> T:
            async with engine.api_slots:
                return await fn()

        def on_retry(event: RetryEvent) -> None:
            engine.on_retry(self._project, event)

        try:
            return await call_with_retry(
                once, what=what, policy=engine.retry_policy, limiter=self._limiter, on_retry=on_retry
            )
        except TransportError as exc:
            engine.note_unreachable(self._project, exc)
            raise


class Engine:
    """Shared machinery for ``run`` and ``collect``: clients, limits, accounting."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        archive: Archive,
        authenticators: dict[str, Authenticator],
        *,
        run_id: str,
        progress: Progress | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.archive = archive
        self.manifest = ManifestWriter(archive)
        self.progress: Progress = progress or NullProgress()
        self.now = now
        lim = settings.limits
        self.api_slots = anyio.Semaphore(lim.api_concurrency)
        self.download_slots = anyio.Semaphore(lim.download_concurrency)
        self._instance_slots: dict[str, anyio.Semaphore] = {}
        self.retry_policy = RetryPolicy(
            attempts=lim.retry_attempts, throttle_attempts=lim.throttle_attempts, timeout=lim.retry_timeout
        )
        self.slowest_collection: float | None = None  # seconds; the yardstick for quiet replicas
        self.summary = RunSummary(run_id=run_id, started_at=now(), config_path=str(settings.config_path))
        self.projects: list[Project] = []
        for ps in settings.projects:
            limiter = RateLimiter(lim.requests_per_second)
            auth = authenticators[ps.name]
            project_id = ps.project_id or ""
            client = DcsClient(
                transport,
                endpoint=ps.dcs_endpoint,
                project_id=project_id,
                auth=auth,
                runner=_Runner(self, limiter, ps.name),
            )
            self.projects.append(Project(ps, project_id, client, limiter))

    # -- accounting -------------------------------------------------------------------

    def count_retry(self, project: str) -> None:
        self.summary.retries += 1
        by_project = self.summary.retries_by_project
        by_project[project] = by_project.get(project, 0) + 1

    def on_retry(self, project: str, event: RetryEvent) -> None:
        self.count_retry(project)
        log.info(
            "retry.scheduled",
            what=event.what,
            kind=event.kind,
            attempt=event.attempt,
            wait=round(event.wait, 3),
            reason=event.reason,
        )

    def note_unreachable(self, project: str, exc: TransportError) -> None:
        """Remember the first endpoint of ``project`` that could not be reached at all."""
        if exc.endpoint and project not in self.summary.unreachable:
            service = "download"
            for p in self.projects:
                if p.settings.name == project:
                    ps = p.settings
                    service = {
                        endpoint_url(ps.iam_endpoint): "IAM",
                        endpoint_url(ps.dcs_endpoint): "DCS",
                    }.get(exc.endpoint, service)
            self.summary.unreachable[project] = f"{service} endpoint {exc.endpoint} unreachable: {exc.cause}"
            log.error("harvest.endpoint_unreachable", project=project, endpoint=exc.endpoint, cause=exc.cause)

    def record(self, result: FileResult) -> FileResult:
        self.summary.files.append(result)
        self.progress.file_done(failed=result.outcome is Outcome.FAILED)
        return result

    def instance_failed(self, project: str, instance: str, reason: str, *, skipped: bool = False) -> None:
        self.summary.instances.append(InstanceFailure(project, instance, reason, skipped=skipped))
        log.warning(
            "harvest.instance_skipped" if skipped else "harvest.instance_failed",
            project=project,
            instance=instance,
            reason=reason,
        )

    def instance_slots(self, instance_id: str) -> anyio.Semaphore:
        sem = self._instance_slots.get(instance_id)
        if sem is None:
            sem = self._instance_slots[instance_id] = anyio.Semaphore(
                self.settings.limits.per_instance_concurrency
            )
        return sem

    # -- resolving ----------------------------------------------------------------------

    async def resolve_targets(
        self,
        only: Sequence[str] = (),
        *,
        strict: bool = False,
        skip_unusable: bool = True,
        keep: Callable[[str, str], bool] | None = None,
    ) -> list[Target]:
        """Every instance the config names or discovers, filtered by ``only`` (names or ids).

        With ``strict`` (incident mode), a name in ``only`` that matches several instances or
        none is a UsageError before anything else happens.
        """
        found: list[tuple[Project, InstanceInfo]] = []

        async def one(project: Project) -> None:
            try:
                found.extend((project, i) for i in await self._project_instances(project))
            except AuthError:
                raise
            except HarvesterError as exc:
                self.instance_failed(project.settings.name, "*", f"listing instances failed: {exc}")

        async with anyio.create_task_group() as tg:
            for project in self.projects:
                tg.start_soon(one, project)

        if only:
            found = self._filter_only(found, only, strict=strict)
        if keep is not None:  # e.g. this shard's instances: only those cost a show call
            found = [(p, i) for p, i in found if keep(p.project_id, i.instance_id)]
        found = await self._details(found)
        targets: list[Target] = []
        for project, info in sorted(
            found, key=lambda pi: (pi[0].settings.name, pi[1].name, pi[1].instance_id)
        ):
            target = Target(
                project=project.settings.name,
                project_id=project.project_id,
                region=project.settings.region,
                instance_id=info.instance_id,
                instance_name=info.name,
                cache_mode=info.cache_mode,
                engine_version=info.engine_version,
                status=info.status,
            )
            reason = plan.should_harvest(info.status, info.engine_version)
            if reason is not None and skip_unusable:
                self.instance_failed(target.project, _label(target), reason, skipped=True)
                continue
            targets.append(target)
        self.progress.instances(len(targets))
        log.info("harvest.instances_resolved", count=len(targets))
        return targets

    def _filter_only(
        self, found: list[tuple[Project, InstanceInfo]], only: Sequence[str], *, strict: bool
    ) -> list[tuple[Project, InstanceInfo]]:
        keep: dict[tuple[str, str], tuple[Project, InstanceInfo]] = {}
        for wanted in only:
            hits = [(p, i) for p, i in found if wanted in (i.instance_id, i.name)]
            if strict and len(hits) > 1:
                listing = ", ".join(f"{i.name} ({i.instance_id}, project {p.settings.name})" for p, i in hits)
                raise UsageError(
                    f"--instance {wanted!r} matches {len(hits)} instances: {listing}; give an id"
                )
            if not hits:
                listed = [plan.ListedInstance(i.instance_id, i.name) for _, i in found]
                close = sorted({c.name for c in plan.suggest(wanted, listed)})
                hint = f"; similar names: {', '.join(close)}" if close else ""
                raise UsageError(f"--instance {wanted!r} matches no configured instance{hint}")
            for p, i in hits:
                keep[(p.project_id, i.instance_id)] = (p, i)
        return list(keep.values())

    async def _project_instances(self, project: Project) -> list[InstanceInfo]:
        """Listing-level records; ids named in the config are shown (that is how we learn names)."""
        ps = project.settings
        client = project.client
        if ps.instances is None:
            tags = dict(ps.discover.tags) if ps.discover is not None else None
            name = ps.discover.name if ps.discover is not None else None
            return await client.list_instances(name=name, tags=tags or None)
        result: list[InstanceInfo] = []
        ids = [ref.id for ref in ps.instances if ref.id is not None]
        by_name = [ref for ref in ps.instances if ref.name is not None]

        async def show(instance_id: str) -> None:
            try:
                result.append(await client.show_instance(instance_id))
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                self.instance_failed(ps.name, instance_id, str(exc))

        await self.for_each(ids, show)
        if by_name:
            listed = await client.list_instances()
            by_id = {i.instance_id: i for i in listed}
            listing = [plan.ListedInstance(i.instance_id, i.name, i.status, i.engine_version) for i in listed]
            for match in plan.match_instances(by_name, listing, project=ps.name):
                if match.instance is None:
                    self.instance_failed(ps.name, match.ref.name or "?", str(match.error))
                else:
                    result.append(by_id[match.instance.instance_id])
        return result

    async def _details(self, found: list[tuple[Project, InstanceInfo]]) -> list[tuple[Project, InstanceInfo]]:
        """``cache_mode`` is only in the show-instance answer: fetch it for each, concurrently."""
        out: list[tuple[Project, InstanceInfo]] = []

        async def detail(pair: tuple[Project, InstanceInfo]) -> None:
            project, info = pair
            if info.cache_mode:
                out.append(pair)
                return
            try:
                out.append((project, await project.client.show_instance(info.instance_id)))
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                self.instance_failed(project.settings.name, f"{info.name} ({info.instance_id})", str(exc))

        await self.for_each(found, detail)
        return out

    def project_of(self, target: Target) -> Project:
        for project in self.projects:
            if project.settings.name == target.project:
                return project
        raise KeyError(target.project)  # pragma: no cover - targets come from self.projects

    async def replicas(self, target: Target) -> list[Replica]:
        """The replicas to collect from; a single-node instance has one, without an id."""
        return (await self.topology(target))[1]

    async def topology(self, target: Target) -> tuple[list[GroupInfo], list[Replica]]:
        """Shards as DCS describes them, and the replicas they hold."""
        if target.cache_mode == "single":
            return [], [Replica(target, "", "", None, "master")]
        groups = await self.project_of(target).client.list_groups(target.instance_id)
        replicas = [
            Replica(target, g.group_name, r.ip, r.replication_id, r.role) for g in groups for r in g.replicas
        ]
        return groups, replicas

    # -- collecting ---------------------------------------------------------------------

    async def collect(self, replica: Replica, query_time: int) -> None:
        target = replica.target
        await self.project_of(target).client.collect_runlogs(
            target.instance_id, query_time=query_time, replication_id=replica.replication_id
        )
        self.summary.collections += 1
        by_instance = self.summary.collections_by_instance
        by_instance[target.instance_id] = by_instance.get(target.instance_id, 0) + 1
        log.info("harvest.collection_requested", query_time=query_time, replica=replica.replication_ip or "-")

    async def list_logs(self, target: Target) -> list[RunlogItem]:
        return await self.project_of(target).client.list_runlogs(target.instance_id)

    async def wait_for_collection(
        self, target: Target, pending: Iterable[Replica], before: set[str]
    ) -> Collected:
        """Poll the listing until every replica's new files are final, or ``wait_timeout``.

        DCS returns no job id, so "finished" is inferred. A replica is done when files of this
        collection appeared for it, all are final, and the listing has not changed for as long
        as the first file took to appear (at least one poll): files that trickle in are waited
        for. A replica with no new file at all after twice the time the slowest collection of
        this run took (at least two polls) is reported in ``no_files``: probably a quiet Redis,
        but only a guess, so callers must not remember it as a quiet day. With nothing to
        compare against, ``wait_timeout`` decides and the replica is in ``timed_out``.
        """
        waiting = set(pending)
        self.progress.waiting(len(waiting))
        started = time.monotonic()
        deadline = started + self.settings.collect.wait_timeout
        poll = self.settings.collect.poll_interval
        counts: dict[Replica, int] = {}
        first_seen: dict[Replica, float] = {}
        changed: dict[Replica, float] = {}
        no_files: set[Replica] = set()
        items: list[RunlogItem] = []
        try:
            while waiting:
                await anyio.sleep(poll)
                items = await self.list_logs(target)
                fresh = [i for i in items if i.id not in before]
                now = time.monotonic()
                for replica in list(waiting):
                    mine = [i for i in fresh if _belongs(i, replica)]
                    if len(mine) != counts.get(replica, 0):
                        counts[replica] = len(mine)
                        changed[replica] = now
                        first_seen.setdefault(replica, now)
                    final = all(plan.classify_status(i.status) != "pending" for i in mine)
                    settle_for = max(poll, first_seen.get(replica, now) - started)
                    settled = bool(mine) and final and now - changed[replica] >= settle_for
                    slowest = self.slowest_collection
                    quiet = not mine and slowest is not None and now - started >= max(2 * poll, 2 * slowest)
                    if settled:
                        self.slowest_collection = max(slowest or 0.0, now - started)
                    if settled or quiet:
                        waiting.discard(replica)
                        self.progress.waiting(-1)
                    if quiet:
                        no_files.add(replica)
                        log.info("harvest.replica_no_files", replica=replica.replication_ip or "-")
                if waiting and now >= deadline:
                    break
        finally:
            self.progress.waiting(-len(waiting))
        return Collected(items, frozenset(waiting), frozenset(no_files))

    # -- fetching -----------------------------------------------------------------------

    async def fetch(self, lf: LogFile, dest: Destination) -> FileResult:
        """Link and download one file, relinking on 403 and retrying broken bodies."""
        target = lf.replica.target
        client = self.project_of(target).client
        dl = self.settings.download
        lim = self.settings.limits
        attempts = 0
        relinks = 0
        link: SignedLink | None = None
        last_error = ""
        while attempts < lim.download_attempts + lim.relink_attempts:
            if link is None or not plan.link_usable(link.expires_at, self.now(), dl.expiry_margin):
                if link is not None:
                    log.info("harvest.link_near_expiry", expires_at=link.expires_at.isoformat())
                    relinks += 1
                    if relinks > lim.relink_attempts:
                        return self._failed(lf, attempts, f"links kept expiring: {last_error}")
                try:
                    async with self.instance_slots(target.instance_id):
                        link = await client.create_link(target.instance_id, lf.log_id)
                except HarvesterError as exc:
                    if is_fatal(exc):
                        raise
                    return self._failed(lf, attempts, f"no download link: {exc}")
                log.debug("harvest.link_requested", url=link.url.redacted)
                if not plan.link_usable(link.expires_at, self.now(), dl.expiry_margin):
                    return self._failed(
                        lf, attempts, "a fresh link already expires within download.expiry_margin"
                    )
            attempts += 1
            try:
                async with self.download_slots:
                    archived = await fetch_to_archive(
                        self.transport,
                        link,
                        self.archive,
                        dest.folder,
                        dest.relpath,
                        allowed_hosts=dl.allowed_hosts,
                        chunk_size=dl.chunk_size,
                        on_bytes=self.progress.bytes,
                    )
            except LinkRefusedError as exc:
                return self._failed(lf, attempts, str(exc))
            except HarvesterError as exc:
                last_error = str(exc)
                action = classify(exc).action
                if action is Action.FATAL:
                    raise
                if action is Action.RELINK:
                    relinks += 1
                    if relinks > lim.relink_attempts:
                        return self._failed(lf, attempts, f"links kept being refused: {exc}")
                    link = None
                    log.info("harvest.link_refused", reason=str(exc))
                    continue
                if action is not Action.RETRY or attempts >= lim.download_attempts:
                    if isinstance(exc, TransportError):
                        self.note_unreachable(target.project, exc)
                    return self._failed(lf, attempts, str(exc))
                self.count_retry(target.project)
                log.info("harvest.download_retried", attempt=attempts, reason=str(exc))
                await anyio.sleep(download_backoff(exc, attempts))
                continue
            entry = ManifestEntry.for_file(
                lf, archived, link, attempts=attempts, run_id=self.summary.run_id, downloaded_at=self.now()
            )
            # The file is renamed into place: record it even if a signal lands right now, so the
            # manifest and the summary both say "archived".
            with anyio.CancelScope(shield=True):
                await self.manifest.record(dest.folder, entry)
            log.info("harvest.file_archived", path=f"{dest.folder}/{archived.relpath}", size=archived.size)
            return self.record(file_result(lf, Outcome.ARCHIVED, attempts=attempts, size=archived.size))
        return self._failed(lf, attempts, f"gave up after {attempts} attempts: {last_error}")

    def _failed(self, lf: LogFile, attempts: int, reason: str) -> FileResult:
        log.warning("harvest.file_failed", file=lf.file_name, reason=reason)
        return self.record(file_result(lf, Outcome.FAILED, attempts=attempts, reason=reason))

    async def fetch_all(self, work: Iterable[tuple[LogFile, Destination]]) -> None:
        """Download an instance's files with a few workers; one file's failure never stops another.

        Workers, not a task per file: a cluster has dozens of files and a fleet thousands, and
        a task parked on a semaphore still costs memory. Files a signal stopped before they
        started are still accounted for, as cancelled.
        """
        items = list(work)
        self.progress.files_planned(len(items))
        queue = iter(items)
        lim = self.settings.limits
        workers = min(len(items), max(2 * lim.per_instance_concurrency, lim.download_concurrency))

        async def worker() -> None:
            for lf, dest in queue:
                await self._fetch_bound(lf, dest)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(worker)
        except BaseException as exc:
            # Cancelled, or a fatal error elsewhere: the files no worker reached still get an
            # outcome, and callers see our own error rather than an exception group.
            for lf, _ in queue:
                self.record(file_result(lf, Outcome.CANCELLED, reason="run stopped before this file started"))
            failure = expected_failure(exc) if isinstance(exc, BaseExceptionGroup) else None
            if failure is not None:
                raise failure from exc
            raise

    async def _fetch_bound(self, lf: LogFile, dest: Destination) -> None:
        with structlog.contextvars.bound_contextvars(
            project=lf.replica.target.project,
            instance=lf.replica.target.instance_name,
            replica=lf.replica.replication_ip,
            day=lf.day.isoformat(),
        ):
            try:
                await self.fetch(lf, dest)
            except anyio.get_cancelled_exc_class():
                # Stopped by a signal (or a fatal error elsewhere): the .part is gone, say so.
                self.record(file_result(lf, Outcome.CANCELLED, reason="run interrupted before it finished"))
                raise

    async def for_each(
        self, items: Iterable[T], fn: Callable[[T], Coroutine[Any, Any, None]], *, limit: int | None = None
    ) -> None:
        """Run ``fn`` over ``items`` concurrently, at most ``limit`` at a time.

        The only task group callers outside this module need; the limit keeps a fleet of
        thousands from becoming thousands of parked tasks.
        """
        pending = list(items)
        queue = iter(pending)
        count = len(pending) if limit is None else min(limit, len(pending))

        async def worker() -> None:
            for item in queue:
                await fn(item)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(worker)
        except BaseExceptionGroup as group:
            # Callers handle our own errors by type; hand them the one that matters, not a group.
            failure = expected_failure(group)
            if failure is None:
                raise
            raise failure from group

    @property
    def instance_parallelism(self) -> int:
        """Instances in flight at once: enough to keep the API slots busy while others wait."""
        return max(64, 4 * self.settings.limits.api_concurrency)


def download_backoff(exc: BaseException, attempts: int) -> float:
    """OBS's own Retry-After when it throttles (capped), else exponential from half a second."""
    retry_after = exc.retry_after if isinstance(exc, TransportError) else None
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(0.5 * 2.0 ** (attempts - 1), 10.0)


def is_fatal(exc: BaseException) -> bool:
    """Errors that stop the whole run (credentials refused, archive unwritable)."""
    return classify(exc).action is Action.FATAL


def _label(target: Target) -> str:
    return f"{target.instance_name} ({target.instance_id})"


def _belongs(item: RunlogItem, replica: Replica) -> bool:
    if replica.replication_id is None:
        return True  # single node: every item of the instance is this replica's
    return item.replication_ip == replica.replication_ip and item.group_name == replica.group_name


def to_logfile(item: RunlogItem, replicas: Sequence[Replica], target: Target) -> LogFile:
    """Attach a listed item to its replica; the item's own group/ip name the archive key."""
    owner = next((r for r in replicas if _belongs(item, r)), None)
    replica = Replica(
        target,
        item.group_name,
        item.replication_ip,
        owner.replication_id if owner is not None else None,
        owner.role if owner is not None else "",
    )
    return LogFile(replica, item.id, item.file_name, item.day, item.status)


def file_result(
    lf: LogFile, outcome: Outcome, *, attempts: int = 0, reason: str = "", size: int = 0
) -> FileResult:
    t = lf.replica.target
    return FileResult(
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
