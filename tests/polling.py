"""Waiting in tests: poll until something has happened, with a generous deadline.

A fixed sleep races what it waits for (a collection delay, a child process writing its ready
file, a run reaching a given point) and loses on a loaded machine: two cores shared by several
test processes can hold a child back for seconds. A poll returns as soon as the thing has
happened, and fails, naming what never happened, only after :data:`DEADLINE`, which is far
above any healthy machine's time. The deadline bounds a hang; it is never a claim about
speed, so no test asserts that something was quick.

Kept free of harvester imports other than the emulator (which these tests drive), so that
any test module, the CDP client included, can use it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

import anyio

from harvester.emulator import Emulator

T = TypeVar("T")

#: How long a poll waits before declaring a hang: generous for a busy 2-core machine.
DEADLINE = 60.0


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float = ...,
    every: float = ...,
    stop: Callable[[], str | None] | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float = ...,
    every: float = ...,
    stop: Callable[[], str | None] | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = DEADLINE,
    every: float = 0.01,
    stop: Callable[[], str | None] | None = None,
) -> T:
    """Call ``check`` (plain or async) until it returns something truthy, and return that.

    A check may answer None (or anything falsy) for "not yet".

    ``what`` names the awaited event for the failure message. ``stop``, when given, is asked
    after each unsuccessful check: a string it returns ends the wait at once as a failure (a
    child process that exited, say), so a poll does not sit out its deadline for nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        value: Any = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return cast(T, value)
        reason = stop() if stop is not None else None
        if reason:
            raise AssertionError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await anyio.sleep(every)


async def collections_done(emu: Emulator, instance_id: str | None = None) -> None:
    """Wait until every collection the emulator accepted (for one instance, or all) is done.

    Done means each collected file is ready or failed, so a listing now shows all of them.
    This replaces sleeping "a bit longer than collect_delay", which a loaded machine can beat.
    """

    def done() -> bool:
        now = emu.clock.now()
        return all(item.is_ready(now) for item in emu.runlog_items(instance_id))

    await eventually(done, what="the emulator's collections to finish")
