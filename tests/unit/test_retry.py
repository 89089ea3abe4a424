"""Retry budgets and pacing: transient errors back off, 429 waits as told, the rest fails fast.

Nothing here sleeps: stamina runs in testing mode (tests/unit/conftest.py) and the rate
limiter reads a :class:`FakeClock` whose ``sleep`` moves time on instead of waiting.
"""

from __future__ import annotations

import anyio
import pytest

from harvester.errors import ApiError, TransportError
from harvester.retry import RateLimiter, RetryEvent, RetryPolicy, backoff, call_with_retry

FAST = RetryPolicy(
    attempts=3, throttle_attempts=3, timeout=30.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0
)


class FakeClock:
    """A monotonic clock for the limiter; sleeping advances it at once.

    Like a real clock it moves on by at least a microsecond per sleep: a limiter that sleeps
    exactly its computed token deficit can be left a rounding error short of a whole token,
    and a fake sleep of that rounding error would leave the time where it was, for ever.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-6)
        await anyio.lowlevel.checkpoint()


def limiter_on(clock: FakeClock, rate: float, burst: float | None = None) -> RateLimiter:
    return RateLimiter(rate, burst, clock=clock, sleep=clock.sleep)


class Flaky:
    """Fails with the given exceptions in order, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_errors_are_retried_until_success() -> None:
    """A 500 and a reset connection do not fail the request when a later try works."""
    events: list[RetryEvent] = []
    fn = Flaky(ApiError(500, "DCS.5000"), TransportError("reset"))
    assert await call_with_retry(fn, what="list", policy=FAST, on_retry=events.append) == "ok"
    assert fn.calls == 3
    assert [e.kind for e in events] == ["error", "error"]


async def test_error_budget_is_finite() -> None:
    """After `attempts` transient failures the last error reaches the caller."""
    fn = Flaky(*(ApiError(503) for _ in range(10)))
    with pytest.raises(ApiError):
        await call_with_retry(fn, what="list", policy=FAST)
    assert fn.calls == FAST.attempts


async def test_client_errors_are_not_retried() -> None:
    """A 404 cannot get better by asking again."""
    fn = Flaky(ApiError(404, "DCS.4001"))
    with pytest.raises(ApiError):
        await call_with_retry(fn, what="link", policy=FAST)
    assert fn.calls == 1


async def test_retry_after_is_honoured_on_its_own_budget() -> None:
    """A 429 waits Retry-After seconds and does not consume the error budget."""
    policy = RetryPolicy(attempts=1, throttle_attempts=3, timeout=30.0, wait_initial=0.01, wait_jitter=0.0)
    events: list[RetryEvent] = []
    fn = Flaky(ApiError(429, "APIG.0308", retry_after=0.3), ApiError(429, "APIG.0308", retry_after=0.3))
    clock = FakeClock()
    start = clock.now
    limiter = limiter_on(clock, 1000.0)
    assert (
        await call_with_retry(fn, what="link", policy=policy, limiter=limiter, on_retry=events.append) == "ok"
    )
    assert clock.now - start >= 0.55
    assert [(e.kind, e.wait) for e in events] == [("throttled", 0.3), ("throttled", 0.3)]
    assert fn.calls == 3  # two 429s and the answer, although the error budget allows one try


async def test_throttling_pauses_the_whole_project() -> None:
    """After a 429, other requests through the same limiter also wait out Retry-After."""
    clock = FakeClock()
    limiter = limiter_on(clock, 1000.0)
    fn = Flaky(ApiError(429, retry_after=0.3))
    start = clock.now
    await call_with_retry(fn, what="a", policy=FAST, limiter=limiter)
    assert clock.now - start == pytest.approx(0.3)  # the retry waited out the pause its 429 set
    limiter.pause(0.3)
    start = clock.now
    await limiter.acquire()
    assert clock.now - start >= 0.25


async def test_rate_limiter_paces_requests() -> None:
    """At 20 requests per second, 11 requests after the burst take about half a second."""
    clock = FakeClock()
    limiter = limiter_on(clock, 20.0, burst=1.0)
    start = clock.now
    for _ in range(11):
        await limiter.acquire()
    assert clock.now - start >= 0.45


def test_backoff_doubles_from_wait_initial_with_jitter_and_a_cap() -> None:
    """The wait the retry log reports: 0.5, 1, 2, 4 ... s plus up to wait_jitter, never above wait_max."""
    policy = RetryPolicy(wait_initial=0.5, wait_max=30.0, wait_jitter=1.0)
    assert [backoff(n, policy, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff(1, policy, 0.5) == 1.0
    assert backoff(7, policy, 0.99) == 30.0
    assert backoff(10_000, policy, 0.0) == 30.0  # no overflow for absurd attempt counts
