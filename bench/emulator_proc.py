"""The emulator as a separate process for the benchmarks, publishing its counters on exit.

``python -m harvester.emulator`` does the same, but its counters die with it; a benchmark needs
them (how many API calls the harvester made) and the fleet's shape (for the lower bounds), so
this wrapper writes both as JSON when it gets SIGTERM. Run by the bench scripts, not by hand::

    python bench/emulator_proc.py --ready-file R --counters-file C --instances 200 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from harvester.emulator import Emulator, EmulatorConfig

API_CLASSES = ("dcs", "links")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ready-file", type=Path, required=True)
    p.add_argument("--counters-file", type=Path, required=True)
    p.add_argument("--instances", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-size", type=int, default=16 * 1024)
    p.add_argument("--size-jitter", type=float, default=0.25, help="log sizes vary by +- this share")
    p.add_argument("--collect-delay", type=float, default=1.0)
    p.add_argument("--latency-ms", type=float, default=50.0, help="added to every DCS API call (dcs, links)")
    p.add_argument("--obs-latency-ms", type=float, default=0.0, help="added to every download request")
    p.add_argument("--quiet-rate", type=float, default=0.1)
    p.add_argument("--failed-rate", type=float, default=0.0)
    p.add_argument("--mode", default=None, help="force one cache mode (single, ha, cluster, ...)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    cfg = EmulatorConfig(
        port=0,
        instances=args.instances,
        seed=args.seed,
        healthy=True,
        log_size=args.log_size,
        log_size_jitter=args.size_jitter,
        collect_delay=args.collect_delay,
        quiet_rate=args.quiet_rate,
        failed_rate=args.failed_rate,
        mode_weights={args.mode: 1.0} if args.mode else None,
    )
    for name in API_CLASSES:
        cfg.faults.of(name).latency_ms = args.latency_ms
    cfg.faults.obs.latency_ms = args.obs_latency_ms
    return cfg


def fleet_shape(emu: Emulator) -> dict[str, Any]:
    """What the lower bounds need: instances, which need a shard listing, replicas."""
    modes: dict[str, int] = {}
    replicas = 0
    for inst in emu.fleet.instances:
        modes[inst.cache_mode] = modes.get(inst.cache_mode, 0) + 1
        replicas += len(inst.replicas)
    return {"instances": len(emu.fleet.instances), "modes": modes, "replicas": replicas}


def write_json(path: Path, data: object) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(build_config(args)) as emu:
        write_json(args.ready_file, {**emu.ready_info(), "pid": os.getpid(), "fleet": fleet_shape(emu)})
        await stop.wait()
        write_json(args.counters_file, {**emu.counters.snapshot(), "fleet": fleet_shape(emu)})


def main() -> None:
    asyncio.run(serve(parse_args()))


if __name__ == "__main__":
    main()
