"""Links and downloads: every listed file the run wants ends in exactly one outcome record.

A few workers per run (:mod:`harvester.engine.pool`) take files in turn. For each: a link is
obtained, then a download slot, and the body is streamed into the archive
(:mod:`harvester.engine.download`); after a failed attempt :mod:`harvester.plan`
decides whether to retry, relink, give up on the file or stop the run, and this module only
does what it says. A file renamed into place gets its manifest line before its outcome, even
when a signal lands at that moment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TypeVar

import anyio
import structlog

from harvester import plan
from harvester.archive.manifest import ManifestEntry
from harvester.engine import pool
from harvester.engine.core import Core
from harvester.engine.download import fetch_to_archive
from harvester.errors import HarvesterError, StorageError, TransportError
from harvester.models import ArchivedFile, FileResult, LogFile, Outcome, SignedLink

log = structlog.get_logger("harvester")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a downloaded file goes: the manifest folder and the path below it."""

    folder: str
    relpath: PurePosixPath


#: How a producer hands files (and where each goes) to :meth:`Fetcher.fetch_fed`.
Feed = pool.Feed[tuple[LogFile, Destination]]


def fetch_workers(fetching: int, *, per_instance: int, download_slots: int, api_slots: int) -> int:
    """Workers for one instance's downloads while ``fetching`` instances (this one included)
    download at once.

    Alone (``collect``, the last instance of a night) an instance gets enough workers to fill
    every download slot. Among a few, the download slots are shared, so each instance gets its
    share, but twice its link slots (some link while others download). Among many, only as many
    workers in all as can hold an API or a download slot, twice over, are useful: the others
    only wait, each a live task holding its frames and its file (at 128 instances x 32 workers
    they were most of a run's peak memory), so the fleet's total is capped there, while each
    instance keeps its share of the download slots.
    """
    fetching = max(fetching, 1)
    share = -(-download_slots // fetching)  # ceiling: together they fill every download slot
    budget = -(-2 * (api_slots + download_slots) // fetching)
    return max(share, min(2 * per_instance, budget))


class _Slot:
    """A slot (download, or link ahead) held for one attempt, which may give it back early (once).

    The slot bounds transfers, not disk work: once the body is in, the fsync and rename of the
    commit go on without it (:func:`fetch_to_archive`'s ``on_received``).
    """

    __slots__ = ("_held", "_sem")

    def __init__(self, sem: anyio.Semaphore) -> None:
        self._sem = sem
        self._held = False

    async def take(self) -> None:
        """Wait for the slot (once; a slot already held is kept)."""
        if not self._held:
            await self._sem.acquire()
            self._held = True

    async def __aenter__(self) -> _Slot:
        await self.take()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._sem.release()


class Fetcher:
    """One run's downloads: the download slots, the per-instance link slots, a full disk."""

    def __init__(self, core: Core) -> None:
        self._core = core
        lim = core.settings.limits
        self.download_slots = anyio.Semaphore(lim.download_concurrency, fast_acquire=True)
        # Links obtained (or being obtained) ahead of a download slot: one per slot, so a freed
        # slot finds a link ready, and a link never queues behind more than a slot's worth of
        # downloads (short-lived links are then not renewed, nor obtained only to be wasted).
        self._links_ahead = anyio.Semaphore(lim.download_concurrency, fast_acquire=True)
        # Whether links may be obtained ahead of their download slot: unknown (None, so inside
        # the slot) until a brand-new link has been judged by plan.link_still_usable; False for
        # good once one fails it (a cloud signing links too short to be held for any wait).
        self.hold_links: bool | None = None
        self._link_slots: dict[str, anyio.Semaphore] = {}
        self.largest_file = 0  # bytes: what a download is expected to need when judging a link
        self.disk_full: str | None = None  # set once the archive ran out of space: no more writes
        self.fetching = 0  # instances in fetch_fed now: they share the download slots

    async def fetch_all(self, work: Iterable[tuple[LogFile, Destination]]) -> list[FileResult]:
        """Download files with a few workers; one file's failure never stops another.

        Files a signal stopped before they started are still accounted for, as cancelled.
        """
        items = list(work)

        async def all_at_once(feed: Feed) -> None:
            feed(items)

        _, results = await self.fetch_fed(all_at_once)
        return results

    async def fetch_fed(self, produce: Callable[[Feed], Awaitable[R]]) -> tuple[R, list[FileResult]]:
        """Download the files ``produce`` hands in while it runs (e.g. while DCS still collects
        other replicas' files): each starts as soon as it is fed, not when ``produce`` is done.

        Returns ``produce``'s result and every fed file's result, once all are done. Files a
        signal (or ``produce``'s failure) stopped before they started are recorded as cancelled.
        """
        core = self._core
        lim = core.settings.limits
        self.fetching += 1

        def workers() -> int:  # asked again as files are fed and done: grows as others end
            return fetch_workers(
                self.fetching,
                per_instance=lim.per_instance_concurrency,
                download_slots=lim.download_concurrency,
                api_slots=lim.api_concurrency,
            )

        results: list[FileResult] = []

        async def one(item: tuple[LogFile, Destination]) -> None:
            results.append(await self._fetch_bound(*item))

        def unstarted(rest: Iterator[tuple[LogFile, Destination]]) -> None:
            for lf, _ in rest:
                core.record(
                    FileResult.of(lf, Outcome.CANCELLED, reason="run stopped before this file started")
                )

        async def counted(feed: Feed) -> R:
            def planned(items: Iterable[tuple[LogFile, Destination]]) -> None:
                batch = list(items)
                if batch:
                    core.progress.files_planned(len(batch))
                    feed(batch)

            return await produce(planned)

        try:
            outcome = await pool.run_fed(counted, one, limit=workers, unstarted=unstarted)
        finally:
            self.fetching -= 1
        return outcome, results

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
                self._core.record(
                    FileResult.of(lf, Outcome.CANCELLED, reason="run interrupted before it finished")
                )
                raise

    async def fetch(self, lf: LogFile, dest: Destination) -> FileResult:
        """Link and download one file, relinking on 403 and retrying broken bodies.

        The link is obtained before the download slot is taken, so a slot is never held while
        the link call waits for its instance's link slots, the API slots or the rate limit (it
        was: half the slots' time went to that, and the downloads ran at half the pace the API
        allowed). A link that found a slot free is used at once whatever its lifetime (OBS
        checks expiry when the GET starts); one that had to wait for a slot, or is held from an
        earlier attempt, is renewed first when it may not outlive the download
        (:func:`plan.link_still_usable`), and the renewed link is used at once. Links are held
        ahead only once a brand-new one has passed that test, and only until one held ahead
        has had to be renewed: until then, and for good on a cloud whose new links fail it or
        whose waits outlast them (holding links would only waste them), a link is obtained
        inside its slot and used at once, as before. So at most one link per run is wasted.
        A storage failure fails this file with its reason; a full disk fails it and every file
        after it.
        """
        core = self._core
        dl = core.settings.download
        lim = core.settings.limits
        attempts = 0
        relinks = 0
        link: SignedLink | None = None
        last_error = ""
        last_bytes = 0
        while plan.may_attempt(attempts, lim):
            if self.disk_full is not None:
                return self._failed(lf, attempts, self.disk_full)
            received = [0]

            def count(n: int, received: list[int] = received) -> None:
                received[0] += n
                core.progress.bytes(n)

            ahead = _Slot(self._links_ahead)
            fresh = link is None
            held_ahead = False  # this attempt's link was obtained ahead of its slot
            try:
                if link is None and self.hold_links:
                    # The links-ahead slot comes BEFORE the instance's link slot, never while
                    # holding it: a task renewing its link inside a download slot waits for that
                    # link slot, so whoever holds it must not wait for a links-ahead slot, which
                    # only a freed download slot gives back (that cycle hung a night of
                    # short-lived links).
                    await ahead.take()
                if link is None and self.hold_links:  # (it may have changed meanwhile)
                    got = await self._new_link(lf, attempts)
                    if isinstance(got, FileResult):
                        return got
                    link = got
                    held_ahead = True
                    self._judge_fresh(link, max(self.largest_file, last_bytes))
                slot = _Slot(self.download_slots)
                fresh = fresh and self.download_slots.value > 0  # no wait: the link is still fresh
                await slot.take()
            finally:
                ahead.release()
            error: HarvesterError | None = None
            async with slot:
                if self.disk_full is not None:
                    return self._failed(lf, attempts, self.disk_full)
                expected = max(self.largest_file, last_bytes)
                if (
                    link is not None
                    and not fresh
                    and not plan.link_still_usable(
                        link.expires_at, core.now(), expected_bytes=expected, margin=dl.expiry_margin
                    )
                ):
                    log.info(
                        "harvest.link_renewed", expires_at=link.expires_at.isoformat(), expected=expected
                    )
                    if held_ahead:  # evidence that waits outlast links here: hold no more ahead
                        self.hold_links = False
                    link = None
                if link is None:  # renewed, or links are not held on this cloud (or not yet)
                    got = await self._new_link(lf, attempts)
                    if isinstance(got, FileResult):
                        return got
                    link = got
                    self._judge_fresh(link, expected)
                attempts += 1
                try:
                    archived = await fetch_to_archive(
                        core.transport,
                        link,
                        core.archive,
                        dest.folder,
                        dest.relpath,
                        allowed_hosts=dl.allowed_hosts,
                        chunk_size=dl.chunk_size,
                        on_bytes=count,
                        on_received=slot.release,
                    )
                except HarvesterError as exc:
                    error = exc
            if error is None:
                return await self._archived(lf, dest, archived, link, attempts)
            last_error = str(error)
            last_bytes = max(last_bytes, received[0])
            decision = plan.after_download_error(plan.AttemptError.of(error), attempts, relinks, lim)
            if decision.step is plan.Step.STOP:
                raise error
            if decision.step is plan.Step.RELINK:
                relinks += 1
                link = None
                log.info("harvest.link_refused", reason=last_error)
                continue
            if decision.step is plan.Step.GIVE_UP:
                if isinstance(error, TransportError):
                    core.note_unreachable(lf.replica.target.project, error)
                if decision.stop_writes:
                    self._stop_writes(error)
                return self._failed(lf, attempts, decision.reason)
            core.count_retry(lf.replica.target.project)
            log.info("harvest.download_retried", attempt=attempts, reason=last_error)
            await anyio.sleep(decision.wait)
        return self._failed(lf, attempts, plan.gave_up_reason(attempts, last_error))

    def _judge_fresh(self, link: SignedLink, expected: int) -> None:
        """Learn from a brand-new link whether this cloud's links can wait for a slot."""
        usable = plan.link_still_usable(
            link.expires_at,
            self._core.now(),
            expected_bytes=expected,
            margin=self._core.settings.download.expiry_margin,
        )
        if not usable:
            self.hold_links = False
        elif self.hold_links is None:
            self.hold_links = True

    async def _new_link(self, lf: LogFile, attempts: int) -> SignedLink | FileResult:
        """A new link for ``lf``, or the file's failed outcome when DCS will not give one."""
        try:
            return await self._link(lf)
        except HarvesterError as exc:
            given_up = plan.after_link_error(plan.AttemptError.of(exc))
            if given_up.step is plan.Step.STOP:
                raise
            return self._failed(lf, attempts, given_up.reason)

    def _instance_slots(self, instance_id: str) -> anyio.Semaphore:
        sem = self._link_slots.get(instance_id)
        if sem is None:
            sem = self._link_slots[instance_id] = anyio.Semaphore(
                self._core.settings.limits.per_instance_concurrency, fast_acquire=True
            )
        return sem

    async def _link(self, lf: LogFile) -> SignedLink:
        target = lf.replica.target
        slots = self._instance_slots(target.instance_id)
        try:
            async with slots:
                link = await self._core.project_of(target).client.create_link(target.instance_id, lf.log_id)
        finally:
            # Idle (nobody holds or waits for it): forget it, so a night of thousands of
            # instances keeps only the semaphores of the instances linking now.
            mine = self._link_slots.get(target.instance_id) is slots
            idle = slots.value == self._core.settings.limits.per_instance_concurrency
            if mine and idle and not slots.statistics().tasks_waiting:
                del self._link_slots[target.instance_id]
        log.debug("harvest.link_requested", url=link.url.redacted, expires_at=link.expires_at.isoformat())
        return link

    async def _archived(
        self, lf: LogFile, dest: Destination, archived: ArchivedFile, link: SignedLink, attempts: int
    ) -> FileResult:
        """Record a file that is renamed into place: manifest line, then its outcome."""
        core = self._core
        self.largest_file = max(self.largest_file, archived.size)
        entry = ManifestEntry.for_file(
            lf, archived, link, attempts=attempts, run_id=core.summary.run_id, downloaded_at=core.now()
        )
        # The file is renamed into place: record it even if a signal lands right now, so the
        # manifest and the summary both say "archived".
        try:
            with anyio.CancelScope(shield=True):
                await core.manifest.record(dest.folder, entry)
        except StorageError as exc:
            # On disk but not listed: verify calls it extra and the next run fetches it again.
            full = plan.AttemptError.of(exc).kind is plan.FailureKind.DISK_FULL
            if full:
                self._stop_writes(exc)
            what = "archived but not recorded in the manifest"
            return self._failed(lf, attempts, plan.storage_failure(str(exc), disk_full=full, what=what))
        log.info("harvest.file_archived", path=f"{dest.folder}/{archived.relpath}", size=archived.size)
        return core.record(FileResult.of(lf, Outcome.ARCHIVED, attempts=attempts, size=archived.size))

    def _stop_writes(self, exc: BaseException) -> None:
        """The archive ran out of space: every file after this one fails without an attempt."""
        if self.disk_full is None:
            self.disk_full = f"disk full: not attempted after the archive ran out of space ({exc})"
            log.error("harvest.disk_full", reason=str(exc))

    def _failed(self, lf: LogFile, attempts: int, reason: str) -> FileResult:
        log.warning("harvest.file_failed", file=lf.file_name, reason=reason)
        return self._core.record(FileResult.of(lf, Outcome.FAILED, attempts=attempts, reason=reason))
