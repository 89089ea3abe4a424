"""The fed worker pool: items start as they arrive, and a pool that started small grows."""

from __future__ import annotations

import anyio

from harvester.engine import pool


async def test_a_pool_started_small_grows_when_its_limit_does() -> None:
    """Many pools shared the slots when this one began (limit 1); once they end (limit 4), the
    rest of its queue is worked on four at a time, not one by one to the end of the night."""
    limit = 1
    running = 0
    most = 0
    done: list[int] = []

    async def work(item: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.02)
        running -= 1
        done.append(item)

    async def produce(feed: pool.Feed[int]) -> None:
        nonlocal limit
        feed(range(12))
        await anyio.sleep(0.03)  # an item or two done one at a time, then the others end
        limit = 4

    await pool.run_fed(produce, work, limit=lambda: limit)

    assert sorted(done) == list(range(12))
    assert most == 4


async def test_a_fixed_limit_is_never_exceeded() -> None:
    """However items are fed, no more than ``limit`` run at once, and every one runs."""
    running = 0
    most = 0
    done: list[int] = []

    async def work(item: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.005)
        running -= 1
        done.append(item)

    async def produce(feed: pool.Feed[int]) -> None:
        for start in range(0, 30, 5):
            feed(range(start, start + 5))
            await anyio.sleep(0.003)

    await pool.run_fed(produce, work, limit=3)

    assert sorted(done) == list(range(30))
    assert most == 3
