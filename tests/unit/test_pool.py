"""The fed worker pool: items start as they arrive, and a pool that started small grows."""

from __future__ import annotations

import anyio

from harvester.engine import pool


class _Work:
    """An item that takes ``pause`` seconds; counts how many ran at once, and which ran."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.running = 0
        self.most = 0
        self.done: list[int] = []

    async def __call__(self, item: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await anyio.sleep(self.pause)
        self.running -= 1
        self.done.append(item)


async def test_a_pool_started_small_grows_when_its_limit_does() -> None:
    """Many pools shared the slots when this one began (limit 1); once they end (limit 4), the
    rest of its queue is worked on four at a time, not one by one to the end of the night."""
    limit = 1
    work = _Work(0.02)

    async def produce(feed: pool.Feed[int]) -> None:
        nonlocal limit
        feed(range(12))
        await anyio.sleep(0.03)  # an item or two done one at a time, then the others end
        limit = 4

    await pool.run_fed(produce, work, limit=lambda: limit)

    assert sorted(work.done) == list(range(12))
    assert work.most == 4


async def test_a_fixed_limit_is_never_exceeded() -> None:
    """However items are fed, no more than ``limit`` run at once, and every one runs."""
    work = _Work(0.005)

    async def produce(feed: pool.Feed[int]) -> None:
        for start in range(0, 30, 5):
            feed(range(start, start + 5))
            await anyio.sleep(0.003)

    await pool.run_fed(produce, work, limit=3)

    assert sorted(work.done) == list(range(30))
    assert work.most == 3
