"""One bounded worker pool: the only place the harvester opens a task group.

Workers, not a task per item: a fleet has thousands of instances and files, and a task parked
on a semaphore still costs memory, so ``limit`` workers pull from one shared iterator until it
is dry. Each item's expected failures are ``fn``'s to turn into outcome records; whatever
escapes ``fn`` stops the other workers, and the caller then sees our own error rather than an
exception group (:func:`harvester.errors.expected_failure`) so that it can handle it by type.
Items no worker reached are handed to ``unstarted``: a file a signal stopped before it started
still gets its outcome.

:func:`run_fed` is the same pool for items that are not all known up front: a producer (waiting
for DCS to collect) hands items in as they turn up, and workers start on them at once while the
producer keeps going, in the same task group.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

import anyio

from harvester.errors import expected_failure

T = TypeVar("T")
R = TypeVar("R")

#: What a producer of :func:`run_fed` calls to hand items to the workers.
Feed = Callable[[Iterable[T]], None]


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


async def run_fed(
    produce: Callable[[Feed[T]], Awaitable[R]],
    fn: Callable[[T], Awaitable[None]],
    *,
    limit: int | Callable[[], int],
    unstarted: Callable[[Iterator[T]], None] | None = None,
) -> R:
    """Run ``produce`` and, alongside it, ``fn`` over every item it feeds, ``limit`` at a time.

    Workers are started only as items arrive (a worker with nothing queued ends), so a producer
    that feeds little costs little. A callable ``limit`` is asked again whenever an item is fed
    or done, so a pool that started small (many pools shared the slots then) grows once the
    others end, instead of working off its queue one item at a time at the end of the night.
    Returns ``produce``'s result once every fed item is done.
    If ``produce`` raises, the workers are stopped like :func:`run`'s: what none of them reached
    goes to ``unstarted``, and an expected failure comes out as itself, not as a group.
    """
    queue: deque[T] = deque()
    workers = 0
    starting = 0  # workers spawned that have not taken an item yet

    async def worker() -> None:
        nonlocal workers, starting
        starting -= 1
        try:
            while queue:
                item = queue.popleft()
                grow()  # after taking ours: the rest of the queue may want more workers now
                await fn(item)
        finally:
            workers -= 1

    try:
        async with anyio.create_task_group() as tg:

            def grow() -> None:
                nonlocal workers, starting
                cap = limit() if callable(limit) else limit
                while workers < cap and starting < len(queue):
                    workers += 1
                    starting += 1
                    tg.start_soon(worker)

            def feed(items: Iterable[T]) -> None:
                queue.extend(items)
                grow()

            result = await produce(feed)
    except BaseException as exc:
        if unstarted is not None:
            unstarted(iter(queue))
        queue.clear()
        failure = expected_failure(exc) if isinstance(exc, BaseExceptionGroup) else None
        if failure is not None:
            raise failure from exc
        raise
    return result
