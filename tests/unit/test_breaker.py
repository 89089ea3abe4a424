"""The circuit breaker's state machine, on an injected clock: when it opens, probes and closes."""

from __future__ import annotations

import pytest

from harvester.cloud.breaker import Breaker, State, endpoint_of, endpoint_url

EP = "https://dcs.eu-de.otc.t-systems.com:443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> Breaker:
    return Breaker(EP, min_failures=3, min_outage=15.0, probe_after=30.0, clock=clock)


def test_a_blip_seen_by_many_concurrent_calls_does_not_open_it() -> None:
    """Sixteen refused connections within a millisecond are not an outage: calls keep going."""
    clock = Clock()
    b = make(clock)
    for _ in range(16):
        assert b.failed("connection refused") is None
        clock.now += 0.0001
    assert b.state is State.CLOSED
    assert b.allow() is None


def test_a_lasting_run_of_failures_opens_it_and_says_why() -> None:
    """Failures that persist for min_outage open the breaker; the rejection names endpoint and cause."""
    clock = Clock()
    b = make(clock)
    assert b.failed("connection refused") is None
    clock.now += 7.0
    assert b.failed("connection refused") is None
    clock.now += 8.5
    opened = b.failed("connection refused")
    assert opened is not None
    assert b.state is State.OPEN
    assert (opened.endpoint, opened.cause, opened.failures) == (EP, "connection refused", 3)
    assert opened.outage == pytest.approx(15.5)
    text = opened.message()
    assert EP in text
    assert "connection refused" in text
    assert "3 connection attempts" in text
    assert b.allow() == opened  # every further call fails at once, with the same reason


def test_a_long_outage_needs_enough_failures_too() -> None:
    """Two failures an hour apart are not enough evidence: min_failures must also be reached."""
    clock = Clock()
    b = make(clock)
    b.failed("connect timed out")
    clock.now += 3600
    assert b.failed("connect timed out") is None
    assert b.state is State.CLOSED


def test_the_outage_counts_from_when_the_first_failed_attempt_began() -> None:
    """A connect timeout began `connect_timeout` ago: that wait is part of the outage."""
    clock = Clock()
    b = make(clock)
    for _ in range(3):
        clock.now += 10.0
        opened = b.failed("connect timed out", started=clock.now - 10.0)
    assert opened is not None
    assert opened.outage == pytest.approx(30.0)


def test_an_http_answer_resets_the_run_of_failures() -> None:
    """Any answer, even a 500, proves the endpoint is reachable: the count starts again."""
    clock = Clock()
    b = make(clock)
    b.failed("connection refused")
    clock.now += 10
    b.failed("connection refused")
    b.succeeded()
    clock.now += 10
    assert b.failed("connection refused") is None
    clock.now += 10
    assert b.failed("connection refused") is None  # two since the answer, however long ago the first
    assert b.state is State.CLOSED


def test_an_attempt_older_than_the_last_answer_does_not_stretch_the_outage() -> None:
    """A slow attempt that began before a success counts only from that success on."""
    clock = Clock()
    b = make(clock)
    b.succeeded()
    clock.now += 1
    for _ in range(3):
        clock.now += 1
        opened = b.failed("connect timed out", started=clock.now - 100)
    assert opened is None  # only 4 s of outage since the answer
    assert b.state is State.CLOSED


def _opened(clock: Clock) -> Breaker:
    b = make(clock)
    for _ in range(3):
        clock.now += 8
        b.failed("connection refused")
    assert b.state is State.OPEN
    return b


def test_after_probe_after_one_call_probes_and_the_others_still_fail_fast() -> None:
    """Half-open lets exactly one probe through; an answer to it closes the breaker."""
    clock = Clock()
    b = _opened(clock)
    clock.now += 29
    assert b.allow() is not None
    clock.now += 1
    assert b.allow() is None  # the probe
    assert b.state.value == "half-open"
    assert b.allow() is not None  # everyone else, while the probe is out
    b.succeeded()
    assert b.state is State.CLOSED
    assert b.allow() is None


def test_a_failed_probe_opens_it_again_for_another_period() -> None:
    """The probe cannot connect either: rejected again until the next probe time."""
    clock = Clock()
    b = _opened(clock)
    clock.now += 30
    assert b.allow() is None
    reopened = b.failed("connection refused")
    assert reopened is not None
    assert reopened.failures == 4
    assert b.state is State.OPEN
    clock.now += 29
    assert b.allow() is not None
    clock.now += 1
    assert b.allow() is None


def test_an_abandoned_probe_lets_another_call_probe() -> None:
    """A probe cancelled before it learned anything does not block the endpoint for good."""
    clock = Clock()
    b = _opened(clock)
    clock.now += 30
    assert b.allow() is None
    b.abandoned()
    assert b.allow() is None
    assert b.allow() is not None


def test_a_straggler_failing_after_it_opened_is_told_the_endpoint_is_down() -> None:
    """An attempt that began before the breaker opened and fails afterwards is not retried either."""
    clock = Clock()
    b = _opened(clock)
    before = b.allow()
    assert before is not None
    assert b.failed("connection refused") == before
    assert b.allow() == before
    assert b.state is State.OPEN


def test_endpoints_are_named_with_scheme_host_and_port() -> None:
    """One breaker per peer: default ports are filled in, hosts are lower-cased, IPv6 bracketed."""
    assert endpoint_of("HTTPS", "DCS.example", None) == "https://dcs.example:443"
    assert endpoint_of("http", "127.0.0.1", 8555) == "http://127.0.0.1:8555"
    assert endpoint_of("http", "::1", None) == "http://[::1]:80"
    assert endpoint_url("https://iam.eu-de.otc.t-systems.com/v3") == "https://iam.eu-de.otc.t-systems.com:443"
