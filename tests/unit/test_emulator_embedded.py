"""The config's ``emulator:`` block, as the emulator package checks and applies it (issue 9)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harvester.emulator.embedded import FAULTY_ROUTES, BlockError, Demo, parse_block

EMULATOR_DIR = Path(__file__).resolve().parents[2] / "harvester" / "emulator"


def test_an_empty_block_is_the_documented_demo() -> None:
    """``emulator:`` alone: 6 instances in 1 project, seed 42, 64 KiB logs, no faults, 24 h links."""
    assert parse_block({}) == Demo(
        instances=6,
        projects=1,
        seed=42,
        log_size=65536,
        collect_delay=0.2,
        fault_rate=0.0,
        latency_ms=0.0,
        link_ttl=86400.0,
    )


def test_given_values_are_taken_and_numbers_widen_to_float() -> None:
    """Keys given override the defaults; an integer is fine where a number is wanted."""
    demo = parse_block({"instances": 3, "seed": -7, "collect_delay": 1, "fault_rate": 0.25})
    assert (demo.instances, demo.seed, demo.collect_delay, demo.fault_rate) == (3, -7, 1.0, 0.25)
    assert isinstance(demo.collect_delay, float)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"fault_rate": 1.5}, "emulator.fault_rate: must be <= 1 (got 1.5)"),
        ({"fault_rate": -0.1}, "emulator.fault_rate: must be >= 0 (got -0.1)"),
        ({"instances": 0}, "emulator.instances: must be >= 1 (got 0)"),
        ({"instances": 2.5}, "emulator.instances: must be an integer (got 2.5)"),
        ({"instances": True}, "emulator.instances: must be an integer (got True)"),
        ({"latency_ms": "slow"}, "emulator.latency_ms: must be a number (got 'slow')"),
        ({"latency_ms": False}, "emulator.latency_ms: must be a number (got False)"),
        ({"seed": None}, "emulator.seed: must be an integer (got null)"),
        ({"log_size": [1]}, "emulator.log_size: must be an integer"),
        ({"link_ttl": 0}, "emulator.link_ttl: must be > 0 (got 0)"),
        ({"collect_delay": float("inf")}, "emulator.collect_delay: must be a finite number"),
        ({"seeed": 1}, "emulator: unknown key 'seeed' (did you mean 'seed'?)"),
        ({"zzz": 1}, "emulator: unknown key 'zzz' (expected one of: collect_delay, fault_rate, instances,"),
        ({"instances": 0, "projects": 0}, "emulator.instances: must be >= 1 (got 0) (and 1 more problem)"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(block: dict[str, Any], expected: str) -> None:
    """Each problem is one line naming ``emulator.<key>`` and what it must be."""
    with pytest.raises(BlockError) as info:
        parse_block(block)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_a_secret_shaped_key_is_not_echoed() -> None:
    """A key that is not knob-shaped (a pasted password?) is not repeated in the message."""
    with pytest.raises(BlockError) as info:
        parse_block({"Summer2024!": 1})
    assert "Summer2024" not in str(info.value)
    assert str(info.value).startswith("emulator: unknown key (not shown)")


def test_fault_knobs_reach_dcs_links_and_obs_but_not_iam() -> None:
    """fault_rate and latency_ms shape the emulator's harvest routes; logins stay reliable."""
    config = parse_block(
        {"fault_rate": 0.3, "latency_ms": 5, "instances": 2, "link_ttl": 60}
    ).emulator_config()
    assert (config.instances, config.link_ttl) == (2, 60.0)
    for route in FAULTY_ROUTES:
        assert (config.faults.of(route).error_500_rate, config.faults.of(route).latency_ms) == (0.3, 5.0)
    assert (config.faults.of("iam").error_500_rate, config.faults.of("iam").latency_ms) == (0.0, 0.0)


def test_the_emulator_imports_no_client_code() -> None:
    """The emulator stays an independent reading of the contract: no module imports the harvester's."""
    client = re.compile(r"^\s*(from|import)\s+harvester(?!\.emulator)\b", re.MULTILINE)
    offenders = [p.name for p in sorted(EMULATOR_DIR.glob("*.py")) if client.search(p.read_text())]
    assert offenders == []
