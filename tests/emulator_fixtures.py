"""Pytest fixtures that run the emulator on loopback.

``emulator`` is a started emulator with small, fast, deterministic defaults;
``emulator_factory(**settings)`` starts more (any :class:`EmulatorConfig` field) and closes
every one it started; ``emulator_api`` is a signed raw client (:class:`EmulatorApi`) for
the ``emulator``. Test modules load them with ``pytest_plugins = ("tests.emulator_fixtures",)``
until tests/conftest.py registers this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from harvester.emulator import Emulator, EmulatorConfig
from tests.emulator_sigv import EmulatorApi, EmulatorFactory

FAST_DEFAULTS: dict[str, Any] = {
    "instances": 12,
    "seed": 1,
    "collect_delay": 0.05,
    "log_size": 16 * 1024,
    "quiet_rate": 0.0,
    "failed_rate": 0.0,
}


@pytest.fixture
async def emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators on demand (``await emulator_factory(instances=3)``); all closed at teardown."""
    started: list[Emulator] = []

    async def start(**settings: Any) -> Emulator:
        emu = Emulator(EmulatorConfig(**{**FAST_DEFAULTS, **settings}))
        await emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in reversed(started):
        await emu.close()


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A running emulator: 12 instances, seed 1, 50 ms collection, 16 KiB logs, no quiet or failed files."""
    return await emulator_factory()


@pytest.fixture
async def emulator_api(emulator: Emulator) -> AsyncIterator[EmulatorApi]:
    """A raw AK/SK-signed client bound to the ``emulator`` fixture."""
    async with aiohttp.ClientSession() as session:
        yield EmulatorApi(session, emulator)
