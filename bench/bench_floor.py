"""The floor of this machine: the same night as ``bench_harvest.py`` by a client that does nothing else.

Issue 10's goal 2 asks for a makespan within 1.15x of ``bench_harvest.py``'s lower bound, which
assumes that every API call takes exactly the emulator's latency. Whether that is reachable
*here* (two cores shared by the harvester, the emulator and the kernel) is a property of the
machine as much as of the harvester. This script measures it: against the same emulated fleet
(``bench_harvest.emulator_process``, same seed and settings), a client that knows the cloud's
timing in advance and does nothing else makes only the necessary calls:

- the instance listing; one group listing per clustered/HA instance; one run-log listing
  before an instance's collections; one collection request per replica, all at once;
- it sleeps exactly the emulator's collect delay (a real client cannot know it), then lists
  again, every 0.2 s until every replica's files are final;
- one link per file and one GET per link; the body is hashed and, with ``--durable``, written
  by the archive's own crash-safe write (``files.write_bytes_atomic``: an ``O_EXCL`` create
  under ``flock``, write, fsync, rename, fsync the folder), in a worker thread;
- no retries, no rate limit, no manifest, no logging, no planning, no progress: a failed call
  raises.

The bench's slots: ``--api-concurrency`` calls in flight, ``--download-concurrency`` downloads
(no per-instance limit, no rate limit), the harvester's event loop (uvloop where installed). Its
makespan over ``bench_harvest.py``'s lower bound (from the fleet's necessary calls) is what a
client that does nothing else reaches here; the harvester, which must also discover when a
collection is done and keep its archive's crash rules, has every one of its costs and more::

    python bench/bench_floor.py                       # 200 instances, 50 ms, 32 API slots
    TMPDIR=/mnt/disk python bench/bench_floor.py --durable --instances 500

Never run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import bench_harvest

from harvester import eventloop
from harvester.archive import files
from harvester.cloud.auth import AkSkSigner
from harvester.models import Secret

#: How often a replica's listing is read again once the collect delay has passed.
RELIST = 0.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=200)
    p.add_argument("--latency-ms", type=float, default=50.0, help="added to every DCS API call")
    p.add_argument("--api-concurrency", type=int, default=32)
    p.add_argument("--download-concurrency", type=int, default=32)
    p.add_argument("--collect-delay", type=float, default=1.0, help="seconds until collected logs appear")
    p.add_argument("--log-size", type=int, default=16 * 1024, help="bytes of a full day's log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--durable",
        action="store_true",
        help="write each file under $TMPDIR with the archive's crash-safe write (files.write_bytes_atomic)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = p.parse_args(argv)
    # The emulator exactly as bench_harvest.py starts it, with the same defaults for the rest.
    args.emulator = bench_harvest.parse_args(
        [
            f"--instances={args.instances}",
            f"--latency-ms={args.latency_ms}",
            f"--collect-delay={args.collect_delay}",
            f"--log-size={args.log_size}",
            f"--seed={args.seed}",
        ]
    )
    return args


@dataclass(slots=True)
class Floor:
    """The thinnest client: its state is the counters the report needs."""

    ready: dict[str, Any] = field(repr=False)  # holds the emulator's keys
    session: aiohttp.ClientSession
    api: asyncio.Semaphore
    downloads: asyncio.Semaphore
    collect_delay: float
    folder: Path | None
    t0: float = 0.0
    calls: list[tuple[str, float, float]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    signer: AkSkSigner = field(init=False)
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.signer = AkSkSigner(self.ready["access_key"], Secret(self.ready["secret_key"]))
        self.base = f"{self.ready['dcs_endpoint']}/v2/{self.ready['project_id']}"

    async def call(self, method: str, path: str, kind: str) -> Any:
        """One signed API call inside an API slot; the decoded body (``None`` when empty)."""
        url = self.base + path
        async with self.api:
            headers = self.signer.sign(
                method,
                url,
                {"Content-Type": "application/json", "X-Project-Id": self.ready["project_id"]},
                b"",
                datetime.now(UTC),
            )
            start = time.perf_counter()
            async with self.session.request(method, url, headers=headers) as resp:
                body = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{kind}: HTTP {resp.status} {body[:200]!r}")
            self.calls.append((kind, start - self.t0, time.perf_counter() - self.t0))
        return json.loads(body) if body else None

    async def listing(self, instance_id: str) -> list[dict[str, Any]]:
        path = f"/instances/{instance_id}/redislog?log_type=run&offset=0&limit=1000"
        data = await self.call("GET", path, "list_runlogs")
        return list(data["file_list"]) if data else []

    async def fetch(self, instance_id: str, log_id: str) -> None:
        link = await self.call("POST", f"/instances/{instance_id}/redislog/{log_id}/links", "link")
        async with self.downloads:
            async with self.session.get(link["link"]) as resp:
                body = await resp.read()
            if resp.status != 200:  # not aiohttp's error: its text carries the signed URL
                raise RuntimeError(f"download of {log_id}: HTTP {resp.status}")
            digest = hashlib.sha256(body).hexdigest()
            if self.folder is not None:
                # The archive's own crash-safe write of a small file: O_EXCL create under flock,
                # write, fsync, rename, fsync the folder.
                await anyio.to_thread.run_sync(files.write_bytes_atomic, self.folder / digest, body)
        self.files += 1
        self.bytes += len(body)

    async def instance(self, inst: dict[str, Any]) -> None:
        instance_id = inst["instance_id"]
        replicas: list[str | None] = [None]
        if inst["cache_mode"] != "single":
            groups = await self.call("GET", f"/instance/{instance_id}/groups", "list_groups")
            replicas = [r["replication_id"] for g in groups["group_list"] for r in g["replication_list"]]
        before = {f["id"] for f in await self.listing(instance_id)}
        async with anyio.create_task_group() as tg:
            for replication_id in replicas:
                only = f"&replication_id={replication_id}" if replication_id else ""
                path = f"/instances/{instance_id}/redislog?log_type=run&query_time=7{only}"
                tg.start_soon(self.call, "POST", path, "collect")
        await anyio.sleep(self.collect_delay)
        started: set[str] = set()
        asked = time.perf_counter()
        async with anyio.create_task_group() as tg:
            while True:
                fresh = [f for f in await self.listing(instance_id) if f["id"] not in before]
                for item in fresh:
                    if item["status"] == "succeed" and item["id"] not in started:
                        started.add(item["id"])
                        tg.start_soon(self.fetch, instance_id, item["id"])
                final = all(f["status"] in ("succeed", "failed") for f in fresh)
                # Every replica listed, all final; a replica whose seven days are all quiet lists
                # nothing, so a long enough wait with everything final ends it too.
                everyone = len({f["replication_ip"] for f in fresh}) >= len(replicas)
                if final and (everyone or time.perf_counter() - asked > 5 * self.collect_delay):
                    break
                await anyio.sleep(RELIST)

    async def night(self) -> None:
        self.t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            offset = 0
            while True:
                page = await self.call("GET", f"/instances?offset={offset}&limit=1000", "list_instances")
                for inst in page["instances"]:
                    tg.start_soon(self.instance, inst)
                offset += len(page["instances"])
                if not page["instances"] or offset >= page["instance_num"]:
                    break


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        folder = work / "archive" if args.durable else None
        if folder is not None:
            folder.mkdir()
        with bench_harvest.emulator_process(args.emulator, work) as handle:

            async def main() -> tuple[Floor, float, float]:
                connector = aiohttp.TCPConnector(limit=0)
                async with aiohttp.ClientSession(connector=connector) as session:
                    floor = Floor(
                        handle.ready,
                        session,
                        asyncio.Semaphore(args.api_concurrency),
                        asyncio.Semaphore(args.download_concurrency),
                        args.collect_delay,
                        folder,
                    )
                    cpu = bench_harvest.cpu_seconds()
                    await floor.night()
                    return floor, time.perf_counter() - floor.t0, bench_harvest.cpu_seconds() - cpu

            floor, makespan, cpu = anyio.run(main, backend_options=eventloop.backend_options())
            fleet = handle.counters()["fleet"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lat, conc = args.latency_ms / 1000, args.api_concurrency
    calls = len(floor.calls)
    by_kind = Counter(kind for kind, _, _ in floor.calls)
    # bench_harvest.py's lower bound, from the fleet's necessary calls (not from the calls made).
    need = bench_harvest.necessary_calls(fleet, int(fleet["replicas"]), floor.files)
    necessary = sum(need.values())
    lower = bench_harvest.lower_bound(need, lat, conc, args.collect_delay, 0.0)
    durations = [end - start for _, start, end in floor.calls]
    return {
        "instances": args.instances,
        "latency_ms": args.latency_ms,
        "api_concurrency": conc,
        "durable": args.durable,
        "event_loop": eventloop.name(),
        "makespan": makespan,
        "lower_bound": lower,
        "ratio_lower_bound": makespan / lower,
        "api_calls": calls,
        "necessary_calls": necessary,
        "api_calls_by_kind": dict(sorted(by_kind.items())),
        "files": floor.files,
        "bytes": floor.bytes,
        "call_mean_s": statistics.fmean(durations),
        "in_flight": sum(durations) / makespan,
        "cpu_s": cpu,
        "cpu_ms_per_file": 1000 * cpu / max(floor.files, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    d = run(args)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(
        f"floor: {d['instances']} instances, {d['latency_ms']:g} ms per API call, api_concurrency "
        f"{d['api_concurrency']}, event loop {d['event_loop']}, "
        + ("each file written durably" if d["durable"] else "bodies hashed, not written")
    )
    kinds = ", ".join(f"{k} {n}" for k, n in d["api_calls_by_kind"].items())
    for label, value in (
        ("makespan", f"{d['makespan']:.2f} s"),
        ("lower bound", f"{d['lower_bound']:.2f} s  (bench_harvest.py's)"),
        ("ratio makespan/lower bound", f"{d['ratio_lower_bound']:.2f}"),
        ("API calls", f"{d['api_calls']} ({kinds}); necessary {d['necessary_calls']}"),
        ("files", f"{d['files']} ({d['bytes'] / 2**20:.1f} MiB)"),
        ("API call duration", f"mean {1000 * d['call_mean_s']:.1f} ms"),
        ("mean API calls in flight", f"{d['in_flight']:.1f} of {d['api_concurrency']}"),
        ("client CPU", f"{d['cpu_s']:.2f} s ({d['cpu_ms_per_file']:.2f} ms/file)"),
    ):
        print(f"{label:<30}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
