"""The engine's core: the limits every request shares, and the run's accounting.

One :class:`Core` per run holds what its parts (:mod:`~harvester.engine.resolve`,
:mod:`~harvester.engine.collect`, :mod:`~harvester.engine.fetch`) have in common: one DCS
client per project behind that project's rate limit, the global API slots and the retry
policy, and the :class:`~harvester.models.RunSummary` that every outcome record, retry and
instance failure is counted into. The parts decide nothing here: they ask
:mod:`harvester.plan`, act, and report to the core.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import structlog

from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.store import Archive
from harvester.cloud.auth import Authenticator
from harvester.cloud.breaker import endpoint_url
from harvester.cloud.dcs import DcsClient
from harvester.cloud.retry import RateLimiter, RetryEvent, RetryPolicy, call_with_retry
from harvester.cloud.transport import Transport
from harvester.config.schema import LimitsSettings, ProjectSettings, Settings
from harvester.engine import pool
from harvester.errors import HarvesterError, TransportError, is_fatal
from harvester.models import (
    Clock,
    FileResult,
    InstanceFailure,
    Outcome,
    RunSummary,
    Shared,
    Target,
    utcnow,
)
from harvester.progress import NullProgress, Progress

T = TypeVar("T")
log = structlog.get_logger("harvester")


def retry_policy(limits: LimitsSettings) -> RetryPolicy:
    """How API calls are retried, from the config's limits (the same for every caller)."""
    return RetryPolicy(
        attempts=limits.retry_attempts,
        throttle_attempts=limits.throttle_attempts,
        timeout=limits.retry_timeout,
    )


def log_retry(event: RetryEvent) -> None:
    """The ``retry.scheduled`` line: what is retried, why, and after how long."""
    log.info(
        "retry.scheduled",
        what=event.what,
        kind=event.kind,
        attempt=event.attempt,
        wait=round(event.wait, 3),
        reason=event.reason,
    )


@dataclass(slots=True)
class Project:
    """Per-project machinery: one client, one rate limiter, the config it came from."""

    settings: ProjectSettings
    project_id: str
    client: DcsClient
    limiter: RateLimiter


class _Runner:
    """Wraps each HTTP request in the project's rate limit, the global API slots and retries."""

    def __init__(self, core: Core, limiter: RateLimiter, project: str) -> None:
        self._core = core
        self._limiter = limiter
        self._project = project

    async def __call__(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        core = self._core

        async def once() -> T:
            async with core.api_slots:
                return await fn()

        def on_retry(event: RetryEvent) -> None:
            core.count_retry(self._project)
            log_retry(event)

        try:
            return await call_with_retry(
                once, what=what, policy=core.retry_policy, limiter=self._limiter, on_retry=on_retry
            )
        except TransportError as exc:
            core.note_unreachable(self._project, exc)
            raise


class Core:
    """Clients, limits and accounting, shared by everything one run does."""

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
        # fast_acquire (here and on the other per-file slots and locks): a free slot is taken
        # without a trip through the event loop; a checkpoint per acquire was ~2% of a night's
        # CPU. Every holder then awaits network I/O, so no task can starve the others.
        self.api_slots = anyio.Semaphore(lim.api_concurrency, fast_acquire=True)
        self.retry_policy = retry_policy(lim)
        self.summary = RunSummary(run_id=run_id, started_at=now(), config_path=str(settings.config_path))
        self._shared = Shared()
        self.projects: list[Project] = []
        for ps in settings.projects:
            limiter = RateLimiter(lim.requests_per_second)
            project_id = ps.project_id or ""
            client = DcsClient(
                transport,
                endpoint=ps.dcs_endpoint,
                project_id=project_id,
                auth=authenticators[ps.name],
                runner=_Runner(self, limiter, ps.name),
            )
            self.projects.append(Project(ps, project_id, client, limiter))

    def project_of(self, target: Target) -> Project:
        for project in self.projects:
            if project.settings.name == target.project:
                return project
        raise KeyError(target.project)  # pragma: no cover - targets come from self.projects

    # -- accounting -------------------------------------------------------------------

    def count_retry(self, project: str) -> None:
        self.summary.retries += 1
        by_project = self.summary.retries_by_project
        by_project[project] = by_project.get(project, 0) + 1

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
        """Count one file's (or replica-day's) single outcome (kept with its repeated fields
        shared: the run holds one per file until the summary is written)."""
        result = self._shared.result(result)
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

    # -- concurrency ------------------------------------------------------------------

    async def for_each(
        self, items: Iterable[T], fn: Callable[[T], Coroutine[Any, Any, None]], *, limit: int | None = None
    ) -> None:
        """Run ``fn`` over ``items`` in the one worker pool, at most ``limit`` at a time."""
        await pool.run(items, fn, limit=limit)

    async def for_each_instance(
        self,
        targets: Iterable[Target],
        work: Callable[[Target], Awaitable[None]],
        *,
        explain: Callable[[Target, HarvesterError], str] = lambda _, exc: str(exc),
    ) -> None:
        """Work on every instance, :attr:`instance_parallelism` at a time, each under its log context.

        An expected failure fails that instance only (reported, in the words of ``explain``);
        a fatal one (credentials refused, archive unwritable) stops the run.
        """

        async def one(target: Target) -> None:
            with structlog.contextvars.bound_contextvars(
                project=target.project, instance=target.instance_name
            ):
                try:
                    await work(target)
                except HarvesterError as exc:
                    if is_fatal(exc):
                        raise
                    self.instance_failed(target.project, target.label, explain(target, exc))

        await self.for_each(targets, one, limit=self.instance_parallelism)

    @property
    def instance_parallelism(self) -> int:
        """Instances in flight at once: enough to keep the API slots busy while others wait.

        An instance holds its place through its whole night (collect, wait, download), so a
        larger figure asks more of a fleet to collect early: 16 per API slot took a 200-instance
        night from 18.4 to 17.4 s, but each instance in flight holds ~80 KiB (its listings,
        its workers, its log context), and at 1,100 instances the peak RSS went from 91 to
        125 MiB (8 per slot: 104). Memory flat in the fleet is worth more than that second.
        """
        return max(64, 4 * self.settings.limits.api_concurrency)
