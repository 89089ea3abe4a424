"""The engine: resolve instances, collect and wait, link and download, record outcomes.

    core.py      limits and accounting: per-project clients, API slots, the run summary
    pool.py      the one bounded worker pool (the only task group in the harvester)
    resolve.py   config + DCS listings -> Targets, and their replicas
    collect.py   collection requests, and the wait for their files
    fetch.py     links and downloads, one outcome record per file
    download.py  one signed link streamed into the archive

Commands (:mod:`harvester.commands`) get an :class:`Engine` from :func:`harvester.app.open_engine`
and drive it; every choice the engine makes on the way is a pure function in
:mod:`harvester.plan`.
"""

from __future__ import annotations

from functools import cached_property

from harvester.engine.collect import Collected, Collector
from harvester.engine.core import Core
from harvester.engine.fetch import Destination, Fetcher
from harvester.engine.resolve import Resolver

__all__ = ["Collected", "Destination", "Engine"]


class Engine(Core):
    """The core of one run, with its three parts; each part is made on first use and kept."""

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self)

    @cached_property
    def collector(self) -> Collector:
        return Collector(self)

    @cached_property
    def fetcher(self) -> Fetcher:
        return Fetcher(self)
