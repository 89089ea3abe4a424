"""Retrying transient API failures, on top of stamina.

Two budgets, because they mean different things: a 5xx or a reset connection is the
service failing (exponential backoff with jitter, ``attempts`` tries), while a 429 is the
gateway asking us to slow down (wait exactly as ``Retry-After`` says, on its own
``throttle_attempts`` budget, so a throttled night does not burn the error budget).
Everything else fails at once: retrying a 403 or a 404 cannot help, and neither can calling
an endpoint whose circuit breaker is open (:mod:`harvester.cloud.breaker`).

The wait before each retry is chosen here (:func:`next_wait`, pure), not inside stamina, so
that the ``retry.scheduled`` log line can say how long it is; stamina runs the loop and
sleeps. Tests switch stamina's waiting off (``stamina.set_testing``) and give the rate
limiter a fake clock, so nothing sleeps for real.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import stamina

from harvester.errors import Action, classify
from harvester.plan import MAX_RETRY_AFTER, THROTTLE_COOLDOWN, rate_after_throttle, rate_recovered

T = TypeVar("T")

DEFAULT_RETRY_AFTER = 3.0  # HWC's advice for 429 without a usable header: wait 2-5 s
# Refilling in float arithmetic can leave a token at 0.9999999999: counted as full, so that a
# clock too coarse to advance by the remaining 1e-15 s cannot keep a caller sleeping forever.
_ROUNDING = 1e-9


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    throttle_attempts: int = 20
    timeout: float = 600.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to the ``on_retry`` hook so the engine can count and log without importing us."""

    what: str
    kind: str  # "error" or "throttled"
    attempt: int
    wait: float  # seconds until the next attempt
    reason: str


@dataclass(slots=True)
class Budget:
    """What one request has spent so far: retries after errors, and after throttling."""

    policy: RetryPolicy
    started: float  # monotonic seconds
    spent: dict[str, int] = field(default_factory=lambda: {"error": 0, "throttled": 0})


def next_wait(exc: BaseException, budget: Budget, *, now: float, jitter: float) -> tuple[str, float] | None:
    """``(kind, seconds)`` to wait before trying again after ``exc``, or None to give up.

    A 429 waits what its ``Retry-After`` says (:data:`DEFAULT_RETRY_AFTER` without one, at
    most :data:`MAX_RETRY_AFTER`) on the throttle budget; a transient failure backs off
    exponentially (:func:`backoff`) on the error budget, within ``policy.timeout``; anything
    else is not retried. Counts the attempt in ``budget``.
    """
    c = classify(exc)
    policy = budget.policy
    if c.action is Action.THROTTLED:
        budget.spent["throttled"] += 1
        if budget.spent["throttled"] >= policy.throttle_attempts:
            return None
        wait = c.retry_after if c.retry_after is not None else DEFAULT_RETRY_AFTER
        return "throttled", min(max(wait, 0.0), MAX_RETRY_AFTER)
    if c.action is Action.RETRY:
        budget.spent["error"] += 1
        if budget.spent["error"] >= policy.attempts or now - budget.started > policy.timeout:
            return None
        return "error", backoff(budget.spent["error"], policy, jitter)
    return None


def backoff(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Seconds before retry number ``attempt`` (1-based) after an error: exponential, capped.

    ``jitter`` in [0, 1) scales ``policy.wait_jitter``; callers pass ``random.random()``, tests
    a fixed value. The cap applies after the jitter, so no wait exceeds ``wait_max``.
    """
    base = policy.wait_initial * 2.0 ** min(max(0, attempt - 1), 60)
    return min(policy.wait_max, base + jitter * policy.wait_jitter)


class RateLimiter:
    """A token bucket per project, with a shared pause that a 429 can impose on everyone.

    When one request is throttled, every other request to the same project would be too:
    pausing the whole bucket honours ``Retry-After`` for the fleet, not just for one task.

    ``clock`` and ``sleep`` are injectable (as the breaker's clock is) so that the pacing can
    be checked without waiting for it.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._ceiling = rate
        self._rate = rate  # adapts: halved on a 429, recovered slowly (plan.rate_after_throttle)
        self._last_cut = -float("inf")
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._capacity
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = anyio.Lock(fast_acquire=True)

    @property
    def rate(self) -> float:
        """The current rate (requests per second), after throttling and recovery."""
        return self._rate

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(self, retry_after: float) -> None:
        """A 429: pause the project for ``retry_after`` and halve its rate (once per burst)."""
        now = self._clock()
        self.pause(retry_after)
        if now - self._last_cut >= THROTTLE_COOLDOWN:
            self._last_cut = now
            self._rate = rate_after_throttle(self._rate, self._ceiling)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                elapsed = now - self._updated
                self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
                self._rate = rate_recovered(self._rate, self._ceiling, elapsed)
                self._updated = now
                if self._tokens >= 1.0 - _ROUNDING:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> T:
    """Run ``fn`` (one HTTP request) until it succeeds or its budgets are spent.

    The rate limiter is consulted before every attempt, so retries are paced too. The first
    attempt runs outside stamina: nearly every call succeeds at once, and setting up a retry
    context per call cost more CPU than the request's own HTTP work (issue 10). A first
    failure enters stamina's loop as its first attempt, so the budgets and waits are the same.
    """
    if limiter is not None:
        await limiter.acquire()
    try:
        return await fn()
    except Exception as exc:  # the hook below decides whether it is retried
        first: Exception | None = exc
    budget = Budget(policy, started=time.monotonic())

    def hook(exc: Exception) -> bool | float:
        decided = next_wait(exc, budget, now=time.monotonic(), jitter=random.random())
        if decided is None:
            return False
        kind, wait = decided
        if kind == "throttled" and limiter is not None:
            limiter.throttled(wait)
        if on_retry is not None:
            on_retry(RetryEvent(what, kind, budget.spent[kind], wait, str(exc)))
        return wait

    async for attempt in stamina.retry_context(
        on=hook,
        attempts=policy.attempts + policy.throttle_attempts,
        timeout=None,  # the hook bounds error retries by policy.timeout; throttle waits have their own budget
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            if first is not None:
                # The failure of the attempt made above: stamina decides on it as on any other.
                failed, first = first, None
                raise failed
            if limiter is not None:
                await limiter.acquire()
            return await fn()
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
