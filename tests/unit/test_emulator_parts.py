"""Pure pieces of the emulator: clock, fault dice, OBS signing and ranges, slow-log generation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from harvester.emulator import Clock, Counters, Faults, FleetConfig, build_fleet
from harvester.emulator import clock as emulator_clock
from harvester.emulator.faults import FaultInjector, retry_after_value
from harvester.emulator.obs import obs_signature, parse_range
from harvester.emulator.slowlog import entries_for_day


def test_clock_advance_and_set_time() -> None:
    """advance() jumps forward; set_time() pins now() to a chosen instant."""
    clock = Clock(speed=0.0, start=1_000_000.0)
    assert clock.now() == 1_000_000.0
    clock.advance(86400)
    assert clock.now() == 1_086_400.0
    clock.set_time(datetime(2021, 4, 16, 12, tzinfo=UTC))
    assert clock.today().isoformat() == "2021-04-16"


class WallTime:
    """Stands in for the ``time`` module inside the emulator's clock: a real time the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_clock_speed_scales_elapsed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """At speed 1000, a few real milliseconds are seconds of emulator time."""
    wall = WallTime(1_700_000_000.0)
    monkeypatch.setattr(emulator_clock, "time", wall)
    clock = Clock(speed=1000.0)
    before = clock.now()
    wall.now += 0.01
    assert clock.now() - before >= 9
    clock.set_speed(0.0)
    frozen = clock.now()
    wall.now += 5.0
    assert clock.now() == pytest.approx(frozen)


def test_fail_first_then_healthy() -> None:
    """fail_first=K fails exactly the first K requests of that route class."""
    faults, counters = Faults(), Counters()
    faults.dcs.fail_first = 2
    injector = FaultInjector(faults, counters, seed=1)
    kinds = [d.kind if (d := injector.before("dcs", "p")) else None for _ in range(4)]
    assert kinds == ["error_500", "error_500", None, None]
    assert injector.before("links", "p") is None
    assert counters.faults["error_500"] == 2


def test_fault_dice_are_seeded() -> None:
    """The same seed and request order inject the same faults."""

    def run() -> list[str | None]:
        faults = Faults()
        faults.dcs.error_500_rate = 0.3
        injector = FaultInjector(faults, Counters(), seed=5)
        return [d.kind if (d := injector.before("dcs", "p")) else None for _ in range(50)]

    first = run()
    assert first == run()
    assert 5 < first.count("error_500") < 25


def test_rate_limit_per_project() -> None:
    """Above rate_limit_rps in one second a project is throttled; another project is not."""
    faults = Faults()
    faults.dcs.rate_limit_rps = 3
    injector = FaultInjector(faults, Counters(), seed=1)
    kinds = [d.kind if (d := injector.before("dcs", "a")) else None for _ in range(5)]
    assert kinds == [None, None, None, "rate_limit", "rate_limit"]
    assert injector.before("dcs", "b") is None


def test_retry_after_formats() -> None:
    """Retry-After is whole seconds, or an HTTP-date that far ahead of real time."""
    assert retry_after_value(2.4, http_date=False) == "2"
    before = time.time()
    when = parsedate_to_datetime(retry_after_value(30, http_date=True)).timestamp()
    assert int(before) + 30 <= when <= time.time() + 30  # whole seconds: the date drops the fraction


def test_faults_clear_restores_defaults_in_place() -> None:
    """clear() resets every knob while keeping the objects tests hold."""
    faults = Faults()
    links = faults.links
    links.error_500_rate = 0.5
    faults.hostile.link_rate = 1.0
    faults.clear()
    assert faults.links is links
    assert links.error_500_rate == 0.0
    assert faults.hostile.link_rate == 0.0


def test_obs_signature_matches_contract_formula() -> None:
    """Signature = base64(HMAC-SHA1(SK, 'GET\\n\\n\\n{Expires}\\n/{bucket}/{key}'))."""
    expected = base64.b64encode(hmac.new(b"SK", b"GET\n\n\n1700000000\n/bkt/a/b.log", hashlib.sha1).digest())
    assert obs_signature("SK", 1700000000, "bkt", "a/b.log") == expected.decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=95-200", (95, 99)),
        ("bytes=100-", False),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        (None, None),
    ],
)
def test_parse_range(header: str | None, expected: object) -> None:
    """Single byte ranges are honoured, unsatisfiable ones flagged, others ignored."""
    assert parse_range(header, 100) == expected


def test_slowlog_entries_deterministic() -> None:
    """Slow-log entries depend only on (seed, instance, day)."""
    inst = build_fleet(FleetConfig()).instances[0]
    assert entries_for_day(1, inst, 19000, 10) == entries_for_day(1, inst, 19000, 10)
    entry = entries_for_day(1, inst, 19000, 10)[0].as_json()
    assert isinstance(entry["duration"], str)
    assert str(entry["start_time"]).endswith("Z")
