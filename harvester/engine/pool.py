"""One bounded worker pool: the only place the harvester opens a task group.

Workers, not a task per item: a fleet has thousands of instances and files, and a task parked
on a semaphore still costs memory, so ``limit`` workers pull from one shared iterator until it
is dry. Each item's expected failures are ``fn``'s to turn into outcome records; whatever
escapes ``fn`` stops the other workers, and the caller then sees our own error rather than an
exception group (:func:`harvester.errors.expected_failure`) so that it can handle it by type.
Items no worker reached are handed to ``unstarted``: a file a signal stopped before it started
still gets its outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

import anyio

from harvester.errors import expected_failure

T = TypeVar("T")


async def run(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[None]],
    *,
    limit: int | None = None,
    unstarted: Callable[[Iterator[T]], None] | None = None,
) -> None:
    """Run ``fn`` over ``items`` concurrently, at most ``limit`` at a time (all at once: None)."""
    pending = list(items)
    queue = iter(pending)
    workers = len(pending) if limit is None else min(limit, len(pending))

    async def worker() -> None:
        for item in queue:
            await fn(item)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    except BaseException as exc:
        # Cancelled, or a failure in one worker: what no worker reached is accounted for.
        if unstarted is not None:
            unstarted(queue)
        failure = expected_failure(exc) if isinstance(exc, BaseExceptionGroup) else None
        if failure is not None:
            raise failure from exc
        raise
