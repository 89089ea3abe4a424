"""Retry budgets and pacing: transient errors back off, 429 waits as told, the rest fails fast.

Nothing here sleeps for real: stamina's test mode skips its waits (the waits it was asked for
are in the retry events), and the rate limiter runs on a fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina

from harvester import plan
from harvester.cloud.retry import (
    Budget,
    RateLimiter,
    RetryEvent,
    RetryPolicy,
    backoff,
    call_with_retry,
    next_wait,
)
from harvester.errors import ApiError, TransportError
from harvester.plan import MAX_RETRY_AFTER

FAST = RetryPolicy(
    attempts=3, throttle_attempts=3, timeout=30.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0
)


@pytest.fixture(autouse=True)
def _no_real_waits() -> Iterator[None]:
    """stamina keeps its attempt counting but skips the sleeps (our budgets stay in charge)."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


class FakeTime:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def limiter(self, rate: float, burst: float | None = None) -> RateLimiter:
        return RateLimiter(rate, burst, clock=self, sleep=self.sleep)


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
    assert await call_with_retry(fn, what="link", policy=policy, on_retry=events.append) == "ok"
    # The waits handed to stamina: together the 0.55 s and more that Retry-After asked for.
    assert sum(e.wait for e in events) >= 0.55
    assert [(e.kind, e.wait) for e in events] == [("throttled", 0.3), ("throttled", 0.3)]
    assert fn.calls == 3  # two 429s and the answer, although the error budget allows one try


async def test_throttling_pauses_the_whole_project() -> None:
    """After a 429, other requests through the same limiter also wait out Retry-After."""
    clock = FakeTime()
    limiter = clock.limiter(1000.0)
    fn = Flaky(ApiError(429, retry_after=0.3))
    start = clock.now
    await call_with_retry(fn, what="a", policy=FAST, limiter=limiter)
    assert clock.now - start == pytest.approx(0.3)  # the retry waited out the pause its 429 set
    limiter.pause(0.3)
    start = clock()
    await limiter.acquire()
    assert clock() - start >= 0.25


async def test_rate_limiter_paces_requests() -> None:
    """At 20 requests per second, 11 requests after the burst take about half a second."""
    clock = FakeTime()
    limiter = clock.limiter(20.0, burst=1.0)
    start = clock()
    for _ in range(11):
        await limiter.acquire()
    assert clock() - start >= 0.45


def test_backoff_doubles_from_wait_initial_with_jitter_and_a_cap() -> None:
    """The wait the retry log reports: 0.5, 1, 2, 4 ... s plus up to wait_jitter, never above wait_max."""
    policy = RetryPolicy(wait_initial=0.5, wait_max=30.0, wait_jitter=1.0)
    assert [backoff(n, policy, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff(1, policy, 0.5) == 1.0
    assert backoff(7, policy, 0.99) == 30.0
    assert backoff(10_000, policy, 0.0) == 30.0  # no overflow for absurd attempt counts


def test_throttle_waits_are_bounded_and_defaulted() -> None:
    """A 429 without Retry-After waits a few seconds; an absurd Retry-After is capped, not obeyed."""
    budget = Budget(RetryPolicy(), started=0.0)
    assert next_wait(ApiError(429), budget, now=0.0, jitter=0.0) == ("throttled", 3.0)
    huge = ApiError(429, retry_after=86_400.0)
    assert next_wait(huge, budget, now=0.0, jitter=0.0) == ("throttled", MAX_RETRY_AFTER)
    assert next_wait(ApiError(404), budget, now=0.0, jitter=0.0) is None
    assert budget.spent == {"error": 0, "throttled": 2}


def test_error_retries_stop_at_the_policy_timeout() -> None:
    """Past retry.timeout a transient failure is not retried again, whatever budget is left."""
    budget = Budget(RetryPolicy(attempts=10, timeout=60.0), started=0.0)
    assert next_wait(TransportError("reset"), budget, now=59.0, jitter=0.0) == ("error", 0.5)
    assert next_wait(TransportError("reset"), budget, now=61.0, jitter=0.0) is None


def test_a_429_halves_the_rate_once_per_burst_and_it_recovers_slowly() -> None:
    """AIMD: a throttled project's rate is halved (one cut per burst of 429s), then grows back."""
    clock = FakeTime()
    limiter = clock.limiter(100.0)
    limiter.throttled(3.0)
    assert limiter.rate == 50.0
    limiter.throttled(3.0)  # the same burst: no second cut
    assert limiter.rate == 50.0
    clock.now += plan.THROTTLE_COOLDOWN
    limiter.throttled(3.0)
    assert limiter.rate == 25.0


def test_the_adaptive_rate_has_a_floor_and_a_ceiling() -> None:
    """Halving stops at the floor; recovery stops at the configured rate."""
    rate = 100.0
    for _ in range(20):
        rate = plan.rate_after_throttle(rate, 100.0)
    assert rate == pytest.approx(100.0 * plan.RATE_FLOOR_SHARE)
    assert plan.rate_after_throttle(1.0, 2.0) == 1.0  # never below one request a second
    assert plan.rate_recovered(50.0, 100.0, 1.0) == pytest.approx(50.0 + 100.0 * plan.RATE_RECOVERY_SHARE)
    assert plan.rate_recovered(50.0, 100.0, 1e6) == 100.0
    assert plan.rate_recovered(50.0, 100.0, -1.0) == 50.0


async def test_a_throttled_limiter_paces_slower_then_recovers() -> None:
    """After a 429 the pause is honoured and requests come at the halved rate, then faster again."""
    clock = FakeTime()
    limiter = clock.limiter(20.0, burst=1.0)
    await limiter.acquire()
    limiter.throttled(1.0)
    start = clock()
    await limiter.acquire()
    assert clock() - start >= 1.0  # the Retry-After pause
    assert limiter.rate > 10.0  # recovered a little while paused
    assert limiter.rate < 20.0
