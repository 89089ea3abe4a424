"""The event loop the harvester runs on: uvloop where installed, the standard loop on request."""

from __future__ import annotations

import importlib.util

import anyio
import pytest

from harvester import eventloop


def test_the_standard_loop_can_be_chosen_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    """HARVESTER_EVENT_LOOP=asyncio runs on asyncio's own loop, uvloop installed or not."""
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.backend_options() == {}
    assert eventloop.name() == "asyncio"


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed here")
def test_uvloop_is_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a run uses uvloop when the platform has it, and anyio really runs on it."""
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.name() == "uvloop"

    async def loop_class() -> str:
        import asyncio  # noqa: PLC0415 - the running loop is only known inside

        return type(asyncio.get_running_loop()).__module__

    assert anyio.run(loop_class, backend_options=eventloop.backend_options()).startswith("uvloop")
