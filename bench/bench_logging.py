"""What one log call costs the event loop: below the configured level, and emitted.

The harvester's modules log through a module-level ``structlog.get_logger("harvester")``, with
context bound per instance (``bound_contextvars``). This times such calls after
``harvester.log.configure("json", level)`` to /dev/null: a ``debug`` call at level ``info``
(filtered: should cost next to nothing), an ``info`` call (rendered to JSON and written), and
the same through a logger bound with ``.bind()``. Figures are microseconds per call, the
median of ``--repeat`` rounds of ``--calls`` calls.

    python bench/bench_logging.py
    python bench/bench_logging.py --calls 50000 --repeat 7

Never run by the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import structlog

from harvester import log as logsetup

log = structlog.get_logger("harvester")  # as harvest.py and nightly.py hold it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=5)
    return p.parse_args(argv)


def per_call_us(fn: Callable[[], None], calls: int, repeat: int) -> float:
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        logsetup.configure("json", "info", stream=devnull)
        bound = log.bind(run="bench")
        cases: list[tuple[str, Callable[[], None]]] = [
            ("filtered: log.debug at level info", lambda: log.debug("harvest.poll", replica="10.0.0.1", n=3)),
            ("emitted: log.info to /dev/null", lambda: log.info("harvest.file_archived", path="a/b", size=1)),
            ("filtered: bound.debug", lambda: bound.debug("harvest.poll", replica="10.0.0.1", n=3)),
            ("emitted: bound.info", lambda: bound.info("harvest.file_archived", path="a/b", size=1)),
        ]
        with structlog.contextvars.bound_contextvars(project="prod", instance="orders"):
            results = [(name, per_call_us(fn, args.calls, args.repeat)) for name, fn in cases]
    for name, us in results:
        print(f"{name:<36} {us:8.2f} us/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
