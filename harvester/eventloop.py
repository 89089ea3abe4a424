"""Which event loop runs the harvester: uvloop where it is installed, asyncio otherwise.

uvloop (libuv under asyncio's API) makes the loop's own work (socket reads and writes,
callbacks, timers) cheaper; a night of many small files spends much of its CPU there, so it
buys a shorter makespan when the harvester, not the API, is the bottleneck (figures in
bench/README.md). It is optional: a platform without it runs the standard loop, and
``HARVESTER_EVENT_LOOP=asyncio`` chooses the standard loop explicitly (to rule the loop out
when debugging).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

ENV = "HARVESTER_EVENT_LOOP"


def backend_options() -> dict[str, Any]:
    """``anyio.run`` backend options for the loop to use."""
    if os.environ.get(ENV, "").strip().lower() == "asyncio":
        return {}
    if importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


def name() -> str:
    """The loop :func:`backend_options` picks, for logs and benchmarks."""
    return "uvloop" if backend_options() else "asyncio"
