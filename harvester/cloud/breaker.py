"""A circuit breaker per endpoint: stop calling a peer that has stopped answering.

Without it, every file and every instance spends its own retry budget against a dead API (20
instances: minutes and well over a thousand retries, all failing the same way). With it, once
the endpoint is known to be unreachable, further calls fail at once with that reason, the
engine fails what depends on them, and the run ends.

Only *connection-level* failures count (refused, DNS, TLS, connect timeout): they mean "no
HTTP server answered". Any HTTP answer, even a 500 or a 429, proves the endpoint is reachable
and resets the count; a status is the retry policy's business, not ours.

**When it opens.** The breaker must never give up on a timing guess (a 2-second network blip
seen by 16 concurrent calls is 16 failures in a millisecond), so it needs both a number of
consecutive failures *and* an outage that has lasted a while: at least ``min_failures``
consecutive failed attempts whose span, from the start of the first to the end of the last,
is at least ``min_outage`` seconds. The default 15 s matches one call's own retry budget
(backoff 0.5 + 1 + 2 + 4 + 8 s), so the breaker never gives up sooner than a single call
retrying on its own would have; it stops the *other* calls from each spending that budget again.

**Half-open.** ``probe_after`` seconds after opening, one call is let through as a probe while
the others keep failing fast; an HTTP answer closes the breaker, another connection failure
opens it again for ``probe_after``. In a nightly run the dependent work has usually failed
before then, so the run ends promptly; a long run (other projects still busy) gets the
endpoint back if it returns.

Pure: time comes from an injected clock, and nothing here sleeps or does I/O.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MIN_FAILURES = 3
MIN_OUTAGE = 15.0
PROBE_AFTER = 30.0


class State(enum.Enum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail at once
    HALF_OPEN = "half-open"  # one probe call is in flight; the others fail at once


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a call was not made: what the breaker saw before it opened."""

    endpoint: str
    cause: str  # the last connection failure, e.g. "connection refused"
    failures: int  # consecutive failed attempts that opened it
    outage: float  # seconds those failures spanned

    def message(self) -> str:
        return (
            f"endpoint {self.endpoint} is unreachable: {self.cause} "
            f"({self.failures} connection attempts failed over {self.outage:.0f} s; calls to it stopped)"
        )


class Breaker:
    """The state machine of one endpoint. Call :meth:`allow` before a call, then exactly one of
    :meth:`succeeded` (a connection was made), :meth:`failed` (no connection) or
    :meth:`abandoned` (cancelled before either was known)."""

    def __init__(
        self,
        endpoint: str,
        *,
        min_failures: int | None = None,
        min_outage: float | None = None,
        probe_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Defaults are read when a breaker is made, not when this module is imported, so a
        # test can shorten the outage of a whole run without reaching into the transport.
        self.endpoint = endpoint
        self._min_failures = max(1, MIN_FAILURES if min_failures is None else min_failures)
        self._min_outage = max(0.0, MIN_OUTAGE if min_outage is None else min_outage)
        self._probe_after = PROBE_AFTER if probe_after is None else probe_after
        self._clock = clock
        self.state = State.CLOSED
        self._failures = 0
        self._since: float | None = None  # start of the first failed attempt of the streak
        self._last_ok = float("-inf")  # when the last HTTP answer arrived
        self._opened_at = 0.0
        self._probing = False
        self._cause = ""
        self._opened_with: Rejection | None = None

    def __repr__(self) -> str:
        return f"Breaker({self.endpoint!r}, {self.state.value}, failures={self._failures})"

    def allow(self) -> Rejection | None:
        """None when the call may go ahead, else why not (the caller raises with that message)."""
        if self.state is State.CLOSED:
            return None
        assert self._opened_with is not None
        if self.state is State.OPEN and self._clock() - self._opened_at >= self._probe_after:
            self.state = State.HALF_OPEN
            self._probing = False
        if self.state is State.HALF_OPEN and not self._probing:
            self._probing = True  # this call is the probe
            return None
        return self._opened_with

    def succeeded(self) -> None:
        """A connection was made (an HTTP answer of any status, or a failure after connecting)."""
        self.state = State.CLOSED
        self._failures = 0
        self._since = None
        self._probing = False
        self._opened_with = None
        self._last_ok = self._clock()

    def abandoned(self) -> None:
        """The call ended without telling (cancelled): a probe slot it held is free again."""
        if self.state is State.HALF_OPEN:
            self._probing = False

    def failed(self, cause: str, *, started: float | None = None) -> Rejection | None:
        """A connection-level failure of an attempt that began at ``started`` (default: now).

        Returns the rejection when the breaker is open after this failure (it opened now, or
        it already was), so the caller reports the endpoint as down at once instead of
        scheduling another retry.
        """
        now = self._clock()
        began = now if started is None else min(started, now)
        # An attempt that began before the last answer says nothing about the outage before it.
        began = max(began, self._last_ok)
        self._cause = cause
        if self.state is State.HALF_OPEN:
            self._failures += 1
            return self._open(now)
        if self.state is State.OPEN:
            return self._opened_with  # a straggler that began before it opened: still down
        self._failures += 1
        self._since = began if self._since is None else min(self._since, began)
        if self._failures >= self._min_failures and now - self._since >= self._min_outage:
            return self._open(now)
        return None

    def _open(self, now: float) -> Rejection:
        outage = now - self._since if self._since is not None else 0.0
        self.state = State.OPEN
        self._opened_at = now
        self._probing = False
        self._opened_with = Rejection(self.endpoint, self._cause, self._failures, outage)
        return self._opened_with


def endpoint_url(url: str) -> str:
    """:func:`endpoint_of` for a URL string, e.g. a configured endpoint."""
    parts = urlsplit(url)
    return endpoint_of(parts.scheme, parts.hostname or "", parts.port)


def endpoint_of(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host:port`` with the scheme's default port filled in: one breaker per peer."""
    scheme = scheme.lower()
    default = {"https": 443, "http": 80}.get(scheme)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown.lower()}:{port if port is not None else default}"
