"""The engine: resolve instances, collect, wait, link, download, record.

This is the only module that opens task groups and holds the limiters. Everything it
decides is delegated to :mod:`harvester.plan` (pure) and everything it touches goes through
:mod:`harvester.cloud.dcs`, :mod:`harvester.download` and :mod:`harvester.archive`; what stays
here is the orchestration and the accounting: every file ends in exactly one FileResult.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from typing import Any, TypeVar

import anyio
import structlog

from harvester import plan
from harvester.archive.manifest import ManifestEntry
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.store import Archive
from harvester.cloud.auth import Authenticator
from harvester.cloud.breaker import endpoint_url
from harvester.cloud.dcs import DcsClient
from harvester.cloud.retry import MAX_RETRY_AFTER, RateLimiter, RetryEvent, RetryPolicy, call_with_retry
from harvester.cloud.transport import Transport
from harvester.config.schema import ProjectSettings, Settings
from harvester.download import fetch_to_archive
from harvester.errors import (
    Action,
    AuthError,
    DiskFullError,
    HarvesterError,
    LinkRefusedError,
    StorageError,
    TransportError,
    UsageError,
    classify,
    expected_failure,
)
from harvester.models import (
    ArchivedFile,
    Clock,
    FileResult,
    Group,
    Instance,
    InstanceFailure,
    LogFile,
    Outcome,
    Replica,
    RunSummary,
    SignedLink,
    Target,
    utcnow,
)
from harvester.progress import NullProgress, Progress

T = TypeVar("T")
log = structlog.get_logger("harvester")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a downloaded file goes: the manifest folder and the path below it."""

    folder: str
    relpath: PurePosixPath


@dataclass(frozen=True, slots=True)
class Collected:
    """What waiting for a collection saw: the last listing, and why each replica's wait ended.

    A wait that ended before every asked-for day had a final file gives up on nothing: the
    days still missing are the caller's to report as pending.
    """

    items: list[LogFile]
    ended: Mapping[Replica, plan.WaitEnd]
    waited: float = 0.0  # seconds

    @property
    def timed_out(self) -> frozenset[Replica]:
        return frozenset(r for r, why in self.ended.items() if why is plan.WaitEnd.TIMED_OUT)

    @property
    def incomplete(self) -> frozenset[Replica]:
        """Replicas whose wait ended without a final file for every day asked for."""
        return frozenset(r for r, why in self.ended.items() if why is not plan.WaitEnd.COMPLETE)

    def why(self, replica: Replica, wait_timeout: float) -> str:
        """Why a replica's wait ended without all its files, in words for the summary."""
        if self.ended.get(replica) is plan.WaitEnd.TIMED_OUT:
            return f"no file within collect.wait_timeout ({wait_timeout:g}s)"
        return f"no file listed when the listing stopped changing (waited {self.waited:.0f}s)"


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
        now: Clock = utcnow,
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
        # Seconds from a collection request to its replica's last new file, the longest this run
        # saw finish: it tells how long a replica with no file yet is waited for tonight.
        self.slowest_collection: float | None = None
        self.largest_file = 0  # bytes: what a download is expected to need when judging a link
        self.disk_full: str | None = None  # set once the archive ran out of space: no more writes
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
        found: list[tuple[Project, Instance]] = []

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
            target = Target.of(
                info,
                project=project.settings.name,
                project_id=project.project_id,
                region=project.settings.region,
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
        self, found: list[tuple[Project, Instance]], only: Sequence[str], *, strict: bool
    ) -> list[tuple[Project, Instance]]:
        keep: dict[tuple[str, str], tuple[Project, Instance]] = {}
        for wanted in only:
            hits = [(p, i) for p, i in found if wanted in (i.instance_id, i.name)]
            if strict and len(hits) > 1:
                listing = ", ".join(f"{i.name} ({i.instance_id}, project {p.settings.name})" for p, i in hits)
                raise UsageError(
                    f"--instance {wanted!r} matches {len(hits)} instances: {listing}; give an id"
                )
            if not hits:
                close = sorted({c.name for c in plan.suggest(wanted, [i for _, i in found])})
                hint = f"; similar names: {', '.join(close)}" if close else ""
                raise UsageError(f"--instance {wanted!r} matches no configured instance{hint}")
            for p, i in hits:
                keep[(p.project_id, i.instance_id)] = (p, i)
        return list(keep.values())

    async def _project_instances(self, project: Project) -> list[Instance]:
        """Listing-level records; ids named in the config are shown (that is how we learn names)."""
        ps = project.settings
        client = project.client
        if ps.instances is None:
            tags = dict(ps.discover.tags) if ps.discover is not None else None
            name = ps.discover.name if ps.discover is not None else None
            return await client.list_instances(name=name, tags=tags or None)
        result: list[Instance] = []
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
            for match in plan.match_instances(by_name, listed, project=ps.name):
                if match.instance is None:
                    self.instance_failed(ps.name, match.ref.name or "?", str(match.error))
                else:
                    result.append(match.instance)
        return result

    async def _details(self, found: list[tuple[Project, Instance]]) -> list[tuple[Project, Instance]]:
        """``cache_mode`` is only in the show-instance answer: fetch it for each, concurrently."""
        out: list[tuple[Project, Instance]] = []

        async def detail(pair: tuple[Project, Instance]) -> None:
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

    async def topology(self, target: Target) -> tuple[list[Group], list[Replica]]:
        """Shards as DCS describes them, and the replicas they hold."""
        if target.cache_mode == "single":
            return [], [Replica(target, "", "", None, "master")]
        groups = await self.project_of(target).client.list_groups(target)
        return groups, [r for g in groups for r in g.replicas]

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

    async def list_logs(self, target: Target, replicas: Sequence[Replica]) -> list[LogFile]:
        """What DCS lists for ``target``, each file attached to its owner among ``replicas``."""
        return await self.project_of(target).client.list_runlogs(target, replicas)

    async def wait_for_collection(
        self,
        target: Target,
        requested: Mapping[Replica, Set[date]],
        before: set[str],
        *,
        replicas: Sequence[Replica],
    ) -> Collected:
        """Poll the listing until each replica's wait ends (see :func:`plan.wait_end`).

        DCS returns no job id and promises nothing about when, or whether, a collection's
        files appear, so a replica's wait ends when a final file of this run's collections is
        listed for every day in ``requested``, when its part of the listing has stopped
        changing for the settle period, or at ``collect.wait_timeout``. Timing decides only how
        long tonight's wait is: whatever is still missing is the caller's to keep as pending.
        ``before`` are the log ids listed before the collections; ``replicas`` all of the
        instance's, so that every listed file is attached to its owner.
        """
        waiting = dict(requested)
        self.progress.waiting(len(waiting))
        started = time.monotonic()
        poll = self.settings.collect.poll_interval
        seen: dict[Replica, frozenset[tuple[str, str]]] = {}
        changes: dict[Replica, list[float]] = {r: [] for r in waiting}
        ended: dict[Replica, plan.WaitEnd] = {}
        items: list[LogFile] = []
        try:
            while waiting:
                await anyio.sleep(poll)
                items = await self.list_logs(target, replicas)
                fresh = [lf for lf in items if lf.log_id not in before]
                now = time.monotonic()
                for replica, wanted in list(waiting.items()):
                    mine = [lf for lf in fresh if replica.owns(lf.key)]
                    signature = frozenset((lf.log_id, plan.classify_status(lf.status)) for lf in mine)
                    if signature != seen.get(replica, frozenset()):
                        seen[replica] = signature
                        changes[replica].append(now)
                    why = plan.wait_end(
                        wanted=wanted,
                        final_days={lf.day for lf in mine if plan.classify_status(lf.status) != "pending"},
                        started=started,
                        now=now,
                        changes=changes[replica],
                        slowest=self.slowest_collection,
                        poll=poll,
                        wait_timeout=self.settings.collect.wait_timeout,
                    )
                    if why is None:
                        continue
                    ended[replica] = why
                    del waiting[replica]
                    self.progress.waiting(-1)
                    if why is not plan.WaitEnd.TIMED_OUT and changes[replica]:
                        took = changes[replica][-1] - started
                        self.slowest_collection = max(self.slowest_collection or 0.0, took)
                    if why is not plan.WaitEnd.COMPLETE:
                        log.info(
                            "harvest.collection_incomplete",
                            replica=replica.replication_ip or "-",
                            why=why.value,
                            waited=round(now - started, 3),
                            files=len(mine),
                            reason="days without a final file stay pending and are collected again",
                        )
        finally:
            self.progress.waiting(-len(waiting))
        return Collected(items, ended, time.monotonic() - started)

    # -- fetching -----------------------------------------------------------------------

    async def fetch(self, lf: LogFile, dest: Destination) -> FileResult:
        """Link and download one file, relinking on 403 and retrying broken bodies.

        The link is obtained inside the download slot, right before its GET: a fresh link is
        used at once whatever its lifetime, and a link held from an earlier attempt is renewed
        first when it may not outlive the download (:func:`plan.link_still_usable`). A storage
        failure fails this file with its reason; a full disk fails it and every file after it.
        """
        target = lf.replica.target
        dl = self.settings.download
        lim = self.settings.limits
        attempts = 0
        relinks = 0
        link: SignedLink | None = None
        last_error = ""
        last_bytes = 0
        while attempts < lim.download_attempts + lim.relink_attempts:
            if self.disk_full is not None:
                return self._failed(lf, attempts, self.disk_full)
            received = [0]

            def count(n: int, received: list[int] = received) -> None:
                received[0] += n
                self.progress.bytes(n)

            error: HarvesterError | None = None
            async with self.download_slots:
                if self.disk_full is not None:
                    return self._failed(lf, attempts, self.disk_full)
                expected = max(self.largest_file, last_bytes)
                if link is not None and not plan.link_still_usable(
                    link.expires_at, self.now(), expected_bytes=expected, margin=dl.expiry_margin
                ):
                    log.info(
                        "harvest.link_renewed", expires_at=link.expires_at.isoformat(), expected=expected
                    )
                    link = None
                if link is None:
                    try:
                        link = await self._link(lf)
                    except HarvesterError as exc:
                        if is_fatal(exc):
                            raise
                        return self._failed(lf, attempts, f"no download link: {exc}")
                attempts += 1
                try:
                    archived = await fetch_to_archive(
                        self.transport,
                        link,
                        self.archive,
                        dest.folder,
                        dest.relpath,
                        allowed_hosts=dl.allowed_hosts,
                        chunk_size=dl.chunk_size,
                        on_bytes=count,
                    )
                except HarvesterError as exc:
                    error = exc
            if error is None:
                return await self._archived(lf, dest, archived, link, attempts)
            last_error = str(error)
            last_bytes = max(last_bytes, received[0])
            if isinstance(error, LinkRefusedError):
                return self._failed(lf, attempts, last_error)
            if isinstance(error, StorageError):
                return self._storage_failed(lf, attempts, error)
            action = classify(error).action
            if action is Action.FATAL:
                raise error
            if action is Action.RELINK:
                relinks += 1
                if relinks > lim.relink_attempts:
                    return self._failed(lf, attempts, f"links kept being refused: {error}")
                link = None
                log.info("harvest.link_refused", reason=last_error)
                continue
            if action is not Action.RETRY or attempts >= lim.download_attempts:
                if isinstance(error, TransportError):
                    self.note_unreachable(target.project, error)
                return self._failed(lf, attempts, last_error)
            self.count_retry(target.project)
            log.info("harvest.download_retried", attempt=attempts, reason=last_error)
            await anyio.sleep(download_backoff(error, attempts))
        return self._failed(lf, attempts, f"gave up after {attempts} attempts: {last_error}")

    async def _link(self, lf: LogFile) -> SignedLink:
        target = lf.replica.target
        async with self.instance_slots(target.instance_id):
            link = await self.project_of(target).client.create_link(target.instance_id, lf.log_id)
        log.debug("harvest.link_requested", url=link.url.redacted, expires_at=link.expires_at.isoformat())
        return link

    async def _archived(
        self, lf: LogFile, dest: Destination, archived: ArchivedFile, link: SignedLink, attempts: int
    ) -> FileResult:
        """Record a file that is renamed into place: manifest line, then its outcome."""
        self.largest_file = max(self.largest_file, archived.size)
        entry = ManifestEntry.for_file(
            lf, archived, link, attempts=attempts, run_id=self.summary.run_id, downloaded_at=self.now()
        )
        # The file is renamed into place: record it even if a signal lands right now, so the
        # manifest and the summary both say "archived".
        try:
            with anyio.CancelScope(shield=True):
                await self.manifest.record(dest.folder, entry)
        except StorageError as exc:
            # On disk but not listed: verify calls it extra and the next run fetches it again.
            return self._storage_failed(lf, attempts, exc, what="archived but not recorded in the manifest")
        log.info("harvest.file_archived", path=f"{dest.folder}/{archived.relpath}", size=archived.size)
        return self.record(file_result(lf, Outcome.ARCHIVED, attempts=attempts, size=archived.size))

    def _storage_failed(self, lf: LogFile, attempts: int, exc: StorageError, *, what: str = "") -> FileResult:
        """One file the archive could not take; a full disk stops every later write too."""
        reason = f"{what}: {exc}" if what else str(exc)
        if is_disk_full(exc):
            if self.disk_full is None:
                self.disk_full = f"disk full: not attempted after the archive ran out of space ({exc})"
                log.error("harvest.disk_full", reason=str(exc))
            reason = f"disk full: {reason}"
        return self._failed(lf, attempts, reason)

    def _failed(self, lf: LogFile, attempts: int, reason: str) -> FileResult:
        log.warning("harvest.file_failed", file=lf.file_name, reason=reason)
        return self.record(file_result(lf, Outcome.FAILED, attempts=attempts, reason=reason))

    async def fetch_all(self, work: Iterable[tuple[LogFile, Destination]]) -> list[FileResult]:
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
        results: list[FileResult] = []

        async def worker() -> None:
            for lf, dest in queue:
                results.append(await self._fetch_bound(lf, dest))

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
        return results

    async def _fetch_bound(self, lf: LogFile, dest: Destination) -> FileResult:
        with structlog.contextvars.bound_contextvars(
            project=lf.replica.target.project,
            instance=lf.replica.target.instance_name,
            replica=lf.replica.replication_ip,
            day=lf.day.isoformat(),
        ):
            try:
                return await self.fetch(lf, dest)
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


def is_fatal(exc: BaseException) -> bool:
    """Errors that stop the whole run (credentials refused, archive unwritable)."""
    return classify(exc).action is Action.FATAL


def _label(target: Target) -> str:
    return f"{target.instance_name} ({target.instance_id})"


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
