"""Asking DCS to collect run logs, and waiting for the files to be listed.

DCS answers a collection request with 204 and nothing else: no job id, no promise about when
(or whether) the files appear. So a wait is a poll of the instance's listing, and when it ends
is :func:`harvester.plan.wait_end`'s decision, per replica. Timing decides only how long
tonight's wait lasts: whatever is still missing when it ends is the caller's to keep as pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date

import anyio
import structlog

from harvester import plan
from harvester.engine.core import Core
from harvester.models import LogFile, Replica, Target

log = structlog.get_logger("harvester")


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

    def why(self, replica: Replica, wait_timeout: float) -> str:
        """Why a replica's wait ended without all its files, in words for the summary."""
        if self.ended.get(replica) is plan.WaitEnd.TIMED_OUT:
            return f"no file within collect.wait_timeout ({wait_timeout:g}s)"
        return f"no file listed when the listing stopped changing (waited {self.waited:.0f}s)"


class Collector:
    """Collection requests and waits for one run; remembers how long collections take."""

    def __init__(self, core: Core) -> None:
        self._core = core
        # Seconds from a collection request to its replica's last new file, the longest this run
        # saw finish: it tells how long a replica with no file yet is waited for tonight.
        self.slowest: float | None = None

    async def request(self, replica: Replica, query_time: int) -> None:
        """One collection POST for ``replica``, counted per instance."""
        core = self._core
        target = replica.target
        await core.project_of(target).client.collect_runlogs(
            target.instance_id, query_time=query_time, replication_id=replica.replication_id
        )
        core.summary.collections += 1
        by_instance = core.summary.collections_by_instance
        by_instance[target.instance_id] = by_instance.get(target.instance_id, 0) + 1
        log.info("harvest.collection_requested", query_time=query_time, replica=replica.replication_ip or "-")

    async def listing(self, target: Target, replicas: Sequence[Replica]) -> list[LogFile]:
        """What DCS lists for ``target``, each file attached to its owner among ``replicas``."""
        return await self._core.project_of(target).client.list_runlogs(target, replicas)

    async def wait(
        self,
        target: Target,
        requested: Mapping[Replica, Set[date]],
        before: set[str],
        *,
        replicas: Sequence[Replica],
        on_poll: Callable[[list[LogFile]], None] | None = None,
    ) -> Collected:
        """Poll the listing until each replica's wait ends (see :func:`plan.wait_end`).

        A replica's wait ends when a final file of this run's collections is listed for every
        day in ``requested``, when its part of the listing has stopped changing for the settle
        period, or at ``collect.wait_timeout``. The listing is polled on :func:`plan.next_poll`'s
        schedule: soon after the request, then less and less often, and at each replica's
        settle deadline so that the wait ends on time. ``before`` are the log ids
        listed before the collections; ``replicas`` all of the instance's, so that every listed
        file is attached to its owner. ``on_poll`` sees each listing as it comes, so that files
        already ready can be downloaded while other replicas are still waited for.
        """
        core = self._core
        settings = core.settings.collect
        waiting = dict(requested)
        core.progress.waiting(len(waiting))
        started = time.monotonic()
        polls = 0
        seen: dict[Replica, frozenset[tuple[str, str]]] = {}
        changes: dict[Replica, list[float]] = {r: [] for r in waiting}
        ended: dict[Replica, plan.WaitEnd] = {}
        items: list[LogFile] = []
        siblings: list[float] = []  # how long this instance's complete replicas took
        try:
            while waiting:
                # Short first looks, then longer gaps up to poll_interval; sooner when a
                # replica's settle deadline comes first (plan.next_poll).
                yardstick = plan.collection_yardstick(siblings, self.slowest)
                deadlines = [plan.settle_deadline(changes[r], started, yardstick) for r in waiting]
                deadlines.append(started + settings.wait_timeout)
                cap = settings.poll_interval
                await anyio.sleep(plan.next_poll(polls, cap, now=time.monotonic(), deadlines=deadlines))
                polls += 1
                items = await self.listing(target, replicas)
                if on_poll is not None:
                    on_poll(items)
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
                        slowest=yardstick,
                        wait_timeout=settings.wait_timeout,
                    )
                    if why is None:
                        continue
                    ended[replica] = why
                    del waiting[replica]
                    core.progress.waiting(-1)
                    if why is not plan.WaitEnd.TIMED_OUT and changes[replica]:
                        took = changes[replica][-1] - started
                        self.slowest = max(self.slowest or 0.0, took)
                        if why is plan.WaitEnd.COMPLETE:
                            siblings.append(took)
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
            core.progress.waiting(-len(waiting))
        return Collected(items, ended, time.monotonic() - started)
