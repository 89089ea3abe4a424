"""Makespan of one full nightly harvest against the emulator, next to its lower bounds.

The emulator runs as a separate process (``bench/emulator_proc.py``) with a fixed latency added
to every DCS API call; the harvester runs in this process exactly as ``harvester run`` would
(``open_engine`` + ``Nightly``), so ``ru_maxrss`` of this process is the harvester's peak RSS.

    python bench/bench_harvest.py                      # 200 instances, 50 ms, 32 API slots
    python bench/bench_harvest.py --instances 800 --latency-ms 20 --api-concurrency 64
    python bench/bench_harvest.py --log-size 67108864 --days 1 --json
    python bench/bench_harvest.py --instances 500 --days 1 --archive-nights 30   # an older archive

Bounds printed (L = latency, C = api_concurrency):

- throughput bound: API calls the harvester made x L / C (the issue's "ideal");
- necessary-calls bound: the same with only the calls a run cannot avoid (one listing page,
  one shard listing per clustered/HA instance, one run-log listing before and one after the
  collection, one collect per replica, one link per file);
- critical path: one instance's dependent chain, list instances -> list shards -> list run logs
  -> collect -> collect_delay -> list run logs -> link -> download;
- lower bound: the larger of the critical path and L + (necessary calls - 1) x L / C.

``--archive-nights N`` first fills the archive with N nights of the same fleet, all older than
DCS's 7-day window (``archive_fixture.py``), so the night's work is the same at any archive age and
what grows is only what the run does with its past (reported: "first collection at"). That
archive carries the start-up records last night's run left in ``.state/`` (the fixture's
``--checked``), as a real one does; ``--no-archive-checked`` measures the first run on it instead.

``--json`` prints one JSON object instead of the table (``bench_memory.py`` uses it).
Never run by the test suite.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import importlib
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import structlog

from harvester import eventloop, heap, plan
from harvester import log as logsetup
from harvester.app import open_engine, register_secrets
from harvester.cloud.transport import Response
from harvester.commands.run import Nightly, NightlyOptions
from harvester.config.load import load_config
from harvester.config.schema import CollectSettings, DownloadSettings, LimitsSettings, Settings
from harvester.engine import Engine
from harvester.models import Outcome

HERE = Path(__file__).resolve().parent
EMULATOR_SCRIPT = HERE / "emulator_proc.py"
FIXTURE_SCRIPT = HERE / "archive_fixture.py"
MIB = 1024 * 1024
EMULATOR_GEN_BYTES_PER_S = 65e6  # one core of the emulator's log generator (its README)


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=200)
    p.add_argument("--latency-ms", type=float, default=50.0, help="added to every DCS API call")
    p.add_argument("--obs-latency-ms", type=float, default=0.0, help="added to every download request")
    p.add_argument("--api-concurrency", type=int, default=32)
    p.add_argument("--download-concurrency", type=int, default=32)
    p.add_argument("--per-instance-concurrency", type=int, default=4)
    p.add_argument("--requests-per-second", type=float, default=1e6, help="high: not the bottleneck")
    p.add_argument("--log-size", type=int, default=16 * 1024, help="bytes of a full day's log")
    p.add_argument("--size-jitter", type=float, default=0.25, help="emulator's log_size_jitter")
    p.add_argument("--collect-delay", type=float, default=1.0, help="seconds until collected logs appear")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=CollectSettings().poll_interval,
        help="collect.poll_interval, the cap of the adaptive poll gaps (default: the harvester's)",
    )
    p.add_argument(
        "--defaults",
        action="store_true",
        help="leave limits, poll interval, wait timeout and chunk size at the harvester's defaults "
        "(what `harvester run` does out of the box; bench_sdk_loop's comparison)",
    )
    p.add_argument("--wait-timeout", type=float, default=120.0, help="collect.wait_timeout")
    p.add_argument("--days", type=int, choices=(0, 1, 3, 7), default=None, help="collect.days (default auto)")
    p.add_argument("--chunk-size", type=int, default=1024 * 1024, help="download.chunk_size")
    p.add_argument("--quiet-rate", type=float, default=0.1, help="emulator: share of quiet (replica, day)")
    p.add_argument("--mode", default=None, help="emulator: force one cache mode (single, ha, cluster...)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-level", default="info", help="harvester log level (JSON to /dev/null)")
    p.add_argument(
        "--archive-nights",
        type=int,
        default=0,
        help="archive this many older nights of the fleet before the run (outside DCS's window)",
    )
    p.add_argument(
        "--archive-checked",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the older nights carry last night's start-up records (.state/), as a real archive "
        "does; --no-archive-checked measures the first run on that archive",
    )
    p.add_argument(
        "--emulator-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the emulator as a separate process (default); --no-emulator-process shares this one",
    )
    p.add_argument("--profile", type=Path, help="write a pyinstrument HTML profile of the harvest here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="trace allocations; print the N largest allocation sites at the traced peak to stderr",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (archive, config)")
    p.add_argument(
        "--series",
        action="store_true",
        help="also print, per second of the run: API calls in flight by kind, files archived and "
        "this process's CPU (where the slots sat idle, and whether the loop was saturated)",
    )
    args = p.parse_args(argv)
    if args.defaults:
        # Report (and bound) with the values the harvester will really use.
        lim, col = LimitsSettings(), CollectSettings()
        args.api_concurrency = lim.api_concurrency
        args.per_instance_concurrency = lim.per_instance_concurrency
        args.download_concurrency = lim.download_concurrency
        args.requests_per_second = lim.requests_per_second
        args.poll_interval = col.poll_interval
        args.wait_timeout = col.wait_timeout
        args.chunk_size = DownloadSettings().chunk_size
    return args


# --------------------------------------------------------------------------- emulator


@dataclass(slots=True)
class EmulatorHandle:
    ready: dict[str, Any]
    counters: Callable[[], dict[str, Any]]


def emulator_argv(args: argparse.Namespace, ready: Path, counters: Path) -> list[str]:
    argv = [
        sys.executable,
        str(EMULATOR_SCRIPT),
        f"--ready-file={ready}",
        f"--counters-file={counters}",
        f"--instances={args.instances}",
        f"--seed={args.seed}",
        f"--log-size={args.log_size}",
        f"--size-jitter={args.size_jitter}",
        f"--collect-delay={args.collect_delay}",
        f"--latency-ms={args.latency_ms}",
        f"--obs-latency-ms={args.obs_latency_ms}",
        f"--quiet-rate={args.quiet_rate}",
    ]
    if args.mode:
        argv.append(f"--mode={args.mode}")
    return argv


@contextlib.contextmanager
def emulator_process(args: argparse.Namespace, work: Path) -> Iterator[EmulatorHandle]:
    ready, counters = work / "ready.json", work / "counters.json"
    proc = subprocess.Popen(emulator_argv(args, ready, counters), stdin=subprocess.DEVNULL)
    box: dict[str, dict[str, Any]] = {}

    def stop() -> dict[str, Any]:
        if "counters" not in box:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            box["counters"] = {
                **json.loads(counters.read_text()),
                "cpu_s": children.ru_utime + children.ru_stime,
            }
        return box["counters"]

    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator not ready within 60 s")
            time.sleep(0.05)
        yield EmulatorHandle(json.loads(ready.read_text()), stop)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def emulator_in_process(args: argparse.Namespace) -> AsyncIterator[EmulatorHandle]:
    sys.path.insert(0, str(HERE))
    emulator_proc = importlib.import_module("emulator_proc")
    from harvester.emulator import Emulator  # noqa: PLC0415 - only in this mode

    eargs = emulator_proc.parse_args(emulator_argv(args, Path("-"), Path("-"))[2:])
    async with Emulator(emulator_proc.build_config(eargs)) as emu:
        shape = emulator_proc.fleet_shape(emu)
        yield EmulatorHandle(
            {**emu.ready_info(), "fleet": shape}, lambda: {**emu.counters.snapshot(), "fleet": shape}
        )


# --------------------------------------------------------------------------- an older archive


def prefill_archive(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """``--archive-nights``: the fleet's older nights, written by a child process before the run."""
    if args.archive_nights <= 0:
        return {"files": 0, "nights": 0, "seconds": 0.0}
    # The newest fabricated night is the day before DCS's window: tonight's work stays the same.
    before = datetime.now(UTC).date() - timedelta(days=plan.RETENTION_DAYS)
    argv = [
        sys.executable,
        str(FIXTURE_SCRIPT),
        f"--root={root}",
        f"--instances={args.instances}",
        f"--seed={args.seed}",
        f"--nights={args.archive_nights}",
        f"--before={before.isoformat()}",
        f"--payload-size={args.log_size}",
    ]
    if args.archive_checked:
        argv.append("--checked")
    if args.mode:
        argv.append(f"--mode={args.mode}")
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    made: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**made, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------- config


def write_config(args: argparse.Namespace, work: Path, ready: dict[str, Any]) -> Path:
    """A harvester config aimed at the emulator, as an operator would write it."""
    days = "null" if args.days is None else str(args.days)
    tuning = f"collect:\n  days: {days}\n"
    chunk = ""
    if not args.defaults:
        tuning = f"""\
limits:
  api_concurrency: {args.api_concurrency}
  per_instance_concurrency: {args.per_instance_concurrency}
  download_concurrency: {args.download_concurrency}
  requests_per_second: {float(args.requests_per_second)!r}
collect:
  days: {days}
  poll_interval: {float(args.poll_interval)!r}
  wait_timeout: {float(args.wait_timeout)!r}
"""
        chunk = f"  chunk_size: {args.chunk_size}\n"
    text = f"""\
archive:
  root: {work / "archive"}
auth:
  method: aksk
  access_key_env: OS_ACCESS_KEY
  secret_key_env: OS_SECRET_KEY
projects:
  - name: bench
    region: eu-de
    project_id: {ready["project_id"]}
    endpoints:
      dcs: {ready["dcs_endpoint"]}
      iam: {ready["iam_endpoint"]}
{tuning}download:
  allowed_hosts: ["127.0.0.1"]
{chunk}"""
    path = work / "harvester.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- instrumentation


def _kind(what: str) -> str:
    for prefix, kind in (
        ("list instances", "list_instances"),
        ("show instance", "show_instance"),
        ("list shards", "list_groups"),
        ("collect run logs", "collect"),
        ("list run logs", "list_runlogs"),
        ("get download link", "link"),
    ):
        if what.startswith(prefix):
            return kind
    return "other"


@dataclass(slots=True)
class Trace:
    """What the harvester did, seen from just above the transport, on one monotonic clock."""

    t0: float = 0.0
    # Per API call: kind, start, end; in arrays, so that the bench's own bookkeeping adds
    # ~24 B per call to the peak RSS it reports, not ~120 B (a tuple of two floats).
    call_kinds: list[str] = field(default_factory=list)  # interned kind names
    call_starts: array.array[float] = field(default_factory=lambda: array.array("d"))
    call_ends: array.array[float] = field(default_factory=lambda: array.array("d"))
    waits: list[tuple[float, float]] = field(default_factory=list)  # Collector.wait
    fetches: list[tuple[float, float, int]] = field(default_factory=list)  # Fetcher.fetch_all, files
    archived_at: array.array[float] = field(default_factory=lambda: array.array("d"))
    events: Counter[str] = field(default_factory=Counter)
    peak_tasks: int = 0
    loop_lag: array.array[float] = field(default_factory=lambda: array.array("d"))  # seconds late
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)  # (at, process CPU s)
    # The first request of each kind, replayed after the run to time the emulator's own service.
    samples: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    service: dict[str, float] = field(default_factory=dict)  # kind -> median seconds, one at a time
    probe_calls: int = 0
    traced_peak: int = 0  # bytes, with --tracemalloc
    peak_snapshot: tracemalloc.Snapshot | None = None
    end_snapshot: tracemalloc.Snapshot | None = None  # what the run still holds when it ends

    @property
    def calls(self) -> list[tuple[str, float, float]]:
        """Every API call as (kind, start, end): built for the report, after the run."""
        return list(zip(self.call_kinds, self.call_starts, self.call_ends, strict=True))

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def processor(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: counts events and timestamps archived files."""
        event = str(event_dict.get("event", ""))
        self.events[event] += 1
        if event == "harvest.file_archived":
            self.archived_at.append(self.now())
        return event_dict


def instrument(engine: Engine, trace: Trace) -> None:
    """Wrap (on this engine's objects only) the calls whose timing explains the makespan."""
    transport = engine.transport
    send = transport.send

    async def timed_request(*a: Any, **kw: Any) -> Response:
        start = trace.now()
        try:
            return await send(*a, **kw)
        finally:
            kind = _kind(str(kw.get("what", "")))
            if kind in PROBED and kind not in trace.samples:
                trace.samples[kind] = (a, kw)
            trace.call_kinds.append(kind)
            trace.call_starts.append(start)
            trace.call_ends.append(trace.now())

    setattr(transport, "send", timed_request)  # noqa: B010 - bypass the method type

    collector = engine.collector
    wait = collector.wait

    async def timed_wait(*a: Any, **kw: Any) -> Any:
        start = trace.now()
        try:
            return await wait(*a, **kw)
        finally:
            trace.waits.append((start, trace.now()))

    setattr(collector, "wait", timed_wait)  # noqa: B010

    fetcher = engine.fetcher
    fetch_all = fetcher.fetch_all

    async def timed_fetch_all(work: Any) -> Any:
        items = list(work)
        start = trace.now()
        try:
            return await fetch_all(items)
        finally:
            trace.fetches.append((start, trace.now(), len(items)))

    setattr(fetcher, "fetch_all", timed_fetch_all)  # noqa: B010


#: Kinds of API call whose service time is probed after the run (collect changes state: its
#: service time is taken as the mean of these).
PROBED = ("list_instances", "list_groups", "list_runlogs", "link")
PROBES = 15


async def probe_service(send: Callable[..., Awaitable[Response]], trace: Trace) -> None:
    """What one call of each kind takes when it is the only one: the emulator's latency plus its
    own handling, timers and loopback (on this machine ~6-10 ms over a 50 ms latency, which no
    client can avoid). Each kind's first request of the run is replayed one at a time (a signed
    request stays valid for minutes); the median goes into the service-time bound."""
    for kind, (a, kw) in trace.samples.items():
        durations = []
        for _ in range(PROBES):
            start = time.perf_counter()
            await send(*a, **kw)
            durations.append(time.perf_counter() - start)
            trace.probe_calls += 1
        trace.service[kind] = statistics.median(durations)


def configure_logging(level: str, trace: Trace) -> Any:
    """The harvester's own JSON logging, rendered to /dev/null, with the trace processor in front."""
    devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
    logsetup.configure("json", level, stream=devnull)
    # Into the configured chain, which every logger (cached or not) runs.
    structlog.get_config()["processors"].insert(0, trace.processor)
    return devnull


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class RunOutcome:
    makespan: float
    engine_open: float
    files_archived: int
    files_failed: int
    bytes_archived: int
    instances_failed: int
    retries: int
    rss_before_kib: int
    rss_peak_kib: int
    cpu_s: float  # user + system time of this process during the run
    cpu_sys_s: float


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sample_tasks(trace: Trace) -> None:
    """How many tasks are alive: each one waiting on a limiter still holds its frames.

    With ``--tracemalloc``, also keeps a snapshot of the live allocations whenever the traced
    total passes its highest sample so far (at most once a second): what the peak is made of.
    """
    last_snapshot = 0.0
    while True:
        trace.cpu_samples.append((trace.now(), cpu_seconds()))
        trace.peak_tasks = max(trace.peak_tasks, len(asyncio.all_tasks()))
        if tracemalloc.is_tracing() and time.monotonic() - last_snapshot >= 1.0:
            current, _ = tracemalloc.get_traced_memory()
            if current > trace.traced_peak:
                trace.traced_peak = current
                trace.peak_snapshot = tracemalloc.take_snapshot()
                last_snapshot = time.monotonic()
        await anyio.sleep(0.5)  # all_tasks() walks every task: rarely, or it costs the run CPU


async def sample_lag(trace: Trace) -> None:
    """How late a 10 ms timer fires: the time a ready callback waits for the event loop.

    Every API response waits about that long before the harvester sees it, so a lag of a few
    ms on a 50 ms call is what a busy loop adds to the calls' time in their slots."""
    while True:
        start = time.perf_counter()
        await anyio.sleep(0.01)
        trace.loop_lag.append(max(0.0, time.perf_counter() - start - 0.01))


def print_top_allocations(snapshot: tracemalloc.Snapshot, total: int, n: int) -> None:
    """The ``n`` allocation sites holding the most memory in ``snapshot``, to stderr."""
    print(f"traced at the sampled peak: {total / MIB:.1f} MiB; largest sites:", file=sys.stderr)
    for stat in snapshot.statistics("lineno")[:n]:
        frame = stat.traceback[0]
        print(
            f"{stat.size / 1024:>10.1f} KiB {stat.count:>8} blocks  {frame.filename}:{frame.lineno}",
            file=sys.stderr,
        )
    for stat in snapshot.statistics("traceback")[:3]:
        print(f"{stat.size / 1024:>10.1f} KiB allocated at:", file=sys.stderr)
        print("\n".join(stat.traceback.format(most_recent_first=True)), file=sys.stderr)


async def harvest(settings: Settings, trace: Trace) -> RunOutcome:
    rss_before = _vm_rss_kib()
    cpu_before = cpu_seconds()
    sys_before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    trace.t0 = time.perf_counter()
    async with open_engine(
        settings, "bench-run", progress=False, lock_name="run", lock_timeout=10.0
    ) as engine:
        engine_open = trace.now()
        heap.settle()  # as `harvester run` does once its engine is open (harvester/heap.py)
        send = engine.transport.send
        instrument(engine, trace)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sample_tasks, trace)
            tg.start_soon(sample_lag, trace)
            summary = await Nightly(engine, NightlyOptions()).run()
            tg.cancel_scope.cancel()
        probe_start = trace.now()
        await probe_service(send, trace)
        probing = trace.now() - probe_start
        if tracemalloc.is_tracing():
            trace.end_snapshot = tracemalloc.take_snapshot()
    makespan = trace.now() - probing  # the run with its close, without the probe
    archived = [f for f in summary.files if f.outcome is Outcome.ARCHIVED]
    return RunOutcome(
        makespan=makespan,
        engine_open=engine_open,
        files_archived=len(archived),
        files_failed=sum(1 for f in summary.files if f.outcome in (Outcome.FAILED, Outcome.CANCELLED)),
        bytes_archived=sum(f.size for f in archived),
        instances_failed=sum(1 for i in summary.instances if not i.skipped),
        retries=summary.retries,
        rss_before_kib=rss_before,
        rss_peak_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        cpu_s=cpu_seconds() - cpu_before,
        cpu_sys_s=resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_before,
    )


async def _profiled(body: Callable[[], Awaitable[RunOutcome]], out: Path | None) -> RunOutcome:
    if out is None:
        return await body()
    pyinstrument = importlib.import_module("pyinstrument")  # optional: pip install pyinstrument
    profiler = pyinstrument.Profiler(async_mode="enabled")
    profiler.start()
    try:
        return await body()
    finally:
        profiler.stop()
        await anyio.Path(out).write_text(profiler.output_html(), encoding="utf-8")
        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-harvest-"))
    trace = Trace()
    devnull = configure_logging(args.log_level, trace)
    try:
        prefilled = prefill_archive(args, work / "archive")

        async def with_emulator(handle: EmulatorHandle) -> tuple[RunOutcome, dict[str, Any]]:
            path = write_config(args, work, handle.ready)
            env = {
                **os.environ,
                "OS_ACCESS_KEY": handle.ready["access_key"],
                "OS_SECRET_KEY": handle.ready["secret_key"],
            }
            settings = load_config(path, env)
            register_secrets(settings)
            outcome = await _profiled(lambda: harvest(settings, trace), args.profile)
            return outcome, handle.counters()

        if args.emulator_process:
            with emulator_process(args, work) as handle:
                outcome, counters = anyio.run(
                    with_emulator, handle, backend_options=eventloop.backend_options()
                )
        else:

            async def in_process() -> tuple[RunOutcome, dict[str, Any]]:
                async with emulator_in_process(args) as handle:
                    return await with_emulator(handle)

            outcome, counters = anyio.run(in_process, backend_options=eventloop.backend_options())
        if trace.peak_snapshot is not None:
            print_top_allocations(trace.peak_snapshot, trace.traced_peak, args.tracemalloc)
        if trace.end_snapshot is not None:
            held = sum(stat.size for stat in trace.end_snapshot.statistics("filename"))
            print("when the run ended (still held):", file=sys.stderr)
            print_top_allocations(trace.end_snapshot, held, args.tracemalloc)
        return {**report_data(args, outcome, counters, trace), "archive_before": prefilled}
    finally:
        devnull.close()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- analysis


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "max": 0.0}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": statistics.median(values),
        "max": max(values),
    }


def necessary_calls(fleet: dict[str, Any], collections: int, files: int) -> dict[str, int]:
    """The calls no run of this fleet can avoid, by kind (the module's docstring lists them)."""
    instances = int(fleet["instances"])
    return {
        "list_instances": math.ceil(max(instances, 1) / 1000),
        "list_groups": instances - int(fleet["modes"].get("single", 0)),
        "list_runlogs": 2 * instances,
        "collect": collections,
        "link": files,
    }


def critical_path(need: dict[str, int], lat: float, collect_delay: float, obs_lat: float) -> float:
    """One instance's dependent chain: list inst, [shards], list, collect, delay, list, link, GET."""
    chain_calls = 5 + (1 if need["list_groups"] else 0)
    return chain_calls * lat + collect_delay + obs_lat


def lower_bound(need: dict[str, int], lat: float, conc: int, collect_delay: float, obs_lat: float) -> float:
    """The larger of the critical path and the necessary calls made ``conc`` at a time."""
    necessary = sum(need.values())
    return max(critical_path(need, lat, collect_delay, obs_lat), lat + max(necessary - 1, 0) * lat / conc)


def report_data(
    args: argparse.Namespace, out: RunOutcome, counters: dict[str, Any], trace: Trace
) -> dict[str, Any]:
    lat = args.latency_ms / 1000
    conc = args.api_concurrency
    requests: dict[str, int] = counters["requests"]
    fleet: dict[str, Any] = counters["fleet"]
    api_calls = requests.get("dcs", 0) + requests.get("links", 0) + requests.get("iam", 0) - trace.probe_calls
    calls = trace.calls
    by_kind = Counter(kind for kind, _, _ in calls)

    need = necessary_calls(fleet, int(counters["collections"]), out.files_archived)
    necessary = sum(need.values())
    throughput_bound = api_calls * lat / conc
    necessary_bound = necessary * lat / conc
    obs_lat = args.obs_latency_ms / 1000
    critical = critical_path(need, lat, args.collect_delay, obs_lat)
    lower = lower_bound(need, lat, conc, args.collect_delay, obs_lat)
    # The same necessary calls, each taking what it takes alone on this machine (probed).
    service = dict(trace.service)
    if service:
        service.setdefault("collect", statistics.mean(service.values()))
    service_bound = sum(n * service.get(kind, lat) for kind, n in need.items()) / conc if service else None

    busy = sum(end - start for _, start, end in calls)
    first = {k: min((s for kk, s, _ in calls if kk == k), default=0.0) for k in by_kind}
    last = {k: max((e for kk, _, e in calls if kk == k), default=0.0) for k in by_kind}
    durations = [end - start for _, start, end in calls]
    return {
        "params": {
            "instances": args.instances,
            "latency_ms": args.latency_ms,
            "obs_latency_ms": args.obs_latency_ms,
            "api_concurrency": conc,
            "download_concurrency": args.download_concurrency,
            "per_instance_concurrency": args.per_instance_concurrency,
            "log_size": args.log_size,
            "collect_delay": args.collect_delay,
            "poll_interval": args.poll_interval,
            "event_loop": eventloop.name(),
            "days": args.days,
            "emulator_process": args.emulator_process,
            "archive_nights": args.archive_nights,
        },
        "run": asdict(out),
        "fleet": fleet,
        "api_calls": api_calls,
        "api_calls_by_kind": dict(sorted(by_kind.items())),
        "necessary_calls": necessary,
        "downloads": requests.get("obs", 0),
        "collections": counters["collections"],
        "links_issued": counters["links_issued"],
        "bytes_served": counters["bytes_served"],
        "throughput_bound": throughput_bound,
        "necessary_bound": necessary_bound,
        "critical_path": critical,
        "lower_bound": lower,
        "ratio_throughput": out.makespan / throughput_bound if throughput_bound else math.inf,
        "ratio_lower_bound": out.makespan / lower if lower else math.inf,
        "service_s": service,
        "service_bound": service_bound,
        "ratio_service_bound": out.makespan / service_bound if service_bound else None,
        "files_per_s": out.files_archived / out.makespan,
        "mb_per_s": out.bytes_archived / MIB / out.makespan,
        "emulator_generation_s": counters["bytes_served"] / EMULATOR_GEN_BYTES_PER_S,
        "emulator_cpu_s": counters.get("cpu_s"),
        "mean_api_in_flight": busy / out.makespan,
        "api_call_seconds": _stats(durations),
        "first_call_at": first,
        "first_collect_at": first.get("collect"),
        "last_call_at": last,
        "collect_wait_s": _stats([e - s for s, e in trace.waits]),
        "fetch_phase_s": _stats([e - s for s, e, _ in trace.fetches]),
        "last_file_at": max(trace.archived_at, default=0.0),
        "peak_tasks": trace.peak_tasks,
        "loop_lag_s": _stats(list(trace.loop_lag)),
        "events": dict(trace.events.most_common(8)),
        "series": series(trace, out.makespan),
    }


def series(trace: Trace, makespan: float) -> list[dict[str, Any]]:
    """Per second: mean API calls in flight by kind, files archived, CPU (share of one core)."""
    seconds = max(1, math.ceil(makespan))
    rows: list[dict[str, Any]] = [
        {"t": i, "in_flight": Counter(), "files": 0, "cpu": None} for i in range(seconds)
    ]
    for kind, start, end in trace.calls:
        for i in range(max(0, int(start)), min(seconds, int(end) + 1)):
            overlap = min(end, i + 1) - max(start, i)
            if overlap > 0:
                rows[i]["in_flight"][kind] += overlap
    for at in trace.archived_at:
        rows[min(seconds - 1, int(at))]["files"] += 1
    samples = trace.cpu_samples
    for i in range(seconds):
        inside = [(t, c) for t, c in samples if i <= t <= i + 1.0001]
        if len(inside) >= 2:
            rows[i]["cpu"] = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    for row in rows:
        row["in_flight"] = {k: round(v, 1) for k, v in sorted(row["in_flight"].items())}
    return rows


def print_series(rows: list[dict[str, Any]]) -> None:
    print("\nper second: API calls in flight by kind | files archived | CPU of one core")
    for row in rows:
        flight = " ".join(f"{k}={v:.1f}" for k, v in row["in_flight"].items())
        total = sum(row["in_flight"].values())
        cpu = "-" if row["cpu"] is None else f"{row['cpu']:.0%}"
        print(f"{row['t']:4d}s  in flight {total:5.1f} ({flight})  files {row['files']:4d}  cpu {cpu}")


def print_report(d: dict[str, Any]) -> None:
    p, r = d["params"], d["run"]
    emu = "separate process" if p["emulator_process"] else "in this process (RSS includes it)"
    print(
        f"nightly harvest: {p['instances']} instances, {p['latency_ms']:g} ms per API call, "
        f"api_concurrency {p['api_concurrency']}, download_concurrency {p['download_concurrency']}, "
        f"log size {p['log_size']} B, collect_delay {p['collect_delay']:g} s, "
        f"poll {p['poll_interval']:g} s; event loop {p.get('event_loop', 'asyncio')}; emulator {emu}"
    )
    f = d["fleet"]
    print(f"fleet: {f['instances']} instances, {f['replicas']} replicas, modes {f['modes']}")
    print()
    rows = [
        ("makespan", f"{r['makespan']:.2f} s (engine ready after {r['engine_open']:.2f} s)"),
        ("API calls", f"{d['api_calls']} ({_kinds(d['api_calls_by_kind'])})"),
        ("  necessary calls", f"{d['necessary_calls']}"),
        ("throughput bound", f"{d['throughput_bound']:.2f} s  (API calls x L / C)"),
        ("necessary-calls bound", f"{d['necessary_bound']:.2f} s"),
        ("critical path", f"{d['critical_path']:.2f} s"),
        ("lower bound", f"{d['lower_bound']:.2f} s"),
        ("ratio makespan/throughput", f"{d['ratio_throughput']:.2f}"),
        ("ratio makespan/lower bound", f"{d['ratio_lower_bound']:.2f}"),
        ("service time per call", _service(d.get("service_s") or {})),
        ("service-time bound", _opt(d.get("service_bound"), "{:.2f} s  (necessary calls x alone / C)")),
        ("ratio makespan/service bound", _opt(d.get("ratio_service_bound"), "{:.2f}")),
        ("files archived", f"{r['files_archived']} ({r['files_failed']} failed, retries {r['retries']})"),
        ("files/s", f"{d['files_per_s']:.1f}"),
        ("MB/s", f"{d['mb_per_s']:.2f} MiB/s ({r['bytes_archived'] / MIB:.1f} MiB)"),
        (
            "peak RSS (harvester)",
            f"{r['rss_peak_kib'] / 1024:.1f} MiB (before the run {r['rss_before_kib'] / 1024:.1f} MiB)",
        ),
        (
            "harvester CPU",
            f"{r['cpu_s']:.2f} s ({100 * r['cpu_s'] / r['makespan']:.0f}% of one core; "
            f"system {r['cpu_sys_s']:.2f} s; {1000 * r['cpu_s'] / max(r['files_archived'], 1):.2f} ms/file)",
        ),
        ("", ""),
        ("peak live tasks", f"{d['peak_tasks']}"),
        ("event loop lag", _fmt_stats(d["loop_lag_s"]) + "  (a 10 ms timer, how late)"),
        ("mean API calls in flight", f"{d['mean_api_in_flight']:.1f} of {p['api_concurrency']}"),
        ("API call duration", _fmt_stats(d["api_call_seconds"])),
        ("collect wait per instance", _fmt_stats(d["collect_wait_s"])),
        ("fetch phase per instance", _fmt_stats(d["fetch_phase_s"])),
        ("emulator log generation", f"~{d['emulator_generation_s']:.2f} s of one core"),
        ("emulator CPU", _cpu(d["emulator_cpu_s"], r["makespan"])),
        ("archive before the run", _archive_before(d.get("archive_before"))),
        ("first collection at", _at(d.get("first_collect_at"))),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}" if key else "")
    print(
        "timeline (s): "
        + ", ".join(
            f"{k} {d['first_call_at'][k]:.2f}-{d['last_call_at'][k]:.2f}" for k in sorted(d["first_call_at"])
        )
        + f", last file {d['last_file_at']:.2f}"
    )


def _service(service: dict[str, float]) -> str:
    if not service:
        return "-"
    return ", ".join(f"{kind} {1000 * s:.1f} ms" for kind, s in sorted(service.items())) + " (alone)"


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _cpu(seconds: float | None, makespan: float) -> str:
    if seconds is None:
        return "(in this process)"
    return f"{seconds:.2f} s ({100 * seconds / makespan:.0f}% of one core; includes its start-up)"


def _archive_before(made: dict[str, Any] | None) -> str:
    if not made or not made["nights"]:
        return "empty"
    return f"{made['nights']} older nights, {made['files']} files (written in {made['seconds']:.1f} s)"


def _at(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s after the start"


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in by_kind.items())


def _fmt_stats(s: dict[str, float]) -> str:
    return f"n={s['n']:g} mean {s['mean']:.3f} s, p50 {s['p50']:.3f} s, max {s['max']:.3f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start(12)
    data = run(args)
    if args.json:
        print(json.dumps(data))
    else:
        print_report(data)
        if args.series:
            print_series(data["series"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
