"""``harvester emulate``: run the fake cloud in the foreground until SIGINT/SIGTERM.

Once bound it publishes how to reach it: one line on stdout, an atomically written ready
file (so a parent process never reads half a JSON), and optionally a harvester config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from .clock import Clock
from .config import EmulatorConfig
from .fleet import build_fleet
from .incidents import fleet_incidents
from .server import Emulator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harvester emulate",
        description="Run the DCS/IAM/OBS emulator.",
        epilog="exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad arguments or the address cannot be bound",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8555, help="port; 0 picks a free one (default 8555)")
    p.add_argument("--instances", type=int, default=12, help="number of Redis instances")
    p.add_argument("--projects", type=int, default=1, help="number of projects")
    p.add_argument("--seed", type=int, default=1, help="seed of the deterministic fleet and logs")
    p.add_argument("--log-size", type=int, default=256 * 1024, help="bytes of a full day's log")
    p.add_argument("--fault-rate", type=float, default=0.0, help="chance of HTTP 500 on dcs, links and obs")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    p.add_argument("--link-ttl", type=float, default=86400.0, help="download link lifetime in seconds")
    p.add_argument("--collect-delay", type=float, default=1.0, help="seconds until collected logs appear")
    p.add_argument(
        "--collect-stagger", type=float, default=0.0, help="extra seconds per day back before a file appears"
    )
    p.add_argument(
        "--extra-today", action="store_true", help="query_time > 0 collections also list today's partial log"
    )
    p.add_argument(
        "--lost-rate",
        type=float,
        default=0.0,
        help="chance a collection produces no file for a requested day",
    )
    p.add_argument("--healthy", action="store_true", help="every instance RUNNING on Redis >= 4.0")
    p.add_argument("--ready-file", type=Path, help="write endpoints and credentials here (JSON) once bound")
    p.add_argument("--write-config", type=Path, help="write a harvester YAML config targeting the emulator")
    p.add_argument(
        "--list-incidents",
        action="store_true",
        help="print the incidents the logs of the retained days hold (failovers, resyncs...) and exit",
    )
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    cfg = EmulatorConfig(
        host=args.host,
        port=args.port,
        instances=args.instances,
        projects=args.projects,
        seed=args.seed,
        log_size=args.log_size,
        link_ttl=args.link_ttl,
        collect_delay=args.collect_delay,
        collect_stagger=args.collect_stagger,
        collect_extra_today=args.extra_today,
        lost_rate=args.lost_rate,
        healthy=args.healthy,
    )
    for name in ("iam", "dcs", "links", "obs"):
        cfg.faults.of(name).latency_ms = args.latency_ms
    for name in ("dcs", "links", "obs"):
        cfg.faults.of(name).error_500_rate = args.fault_rate
    return cfg


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def harvester_config(emu: Emulator) -> str:
    """The harvester's YAML format, written by hand to keep the emulator free of YAML."""
    return (
        "# Harvester config for the local DCS emulator. Its test credentials:\n"
        f"#   export OS_ACCESS_KEY={emu.access_key} OS_SECRET_KEY={emu.secret_key}\n"
        "archive:\n"
        "  root: ./archive\n"
        "auth:\n"
        "  method: aksk\n"
        "  access_key_env: OS_ACCESS_KEY\n"
        "  secret_key_env: OS_SECRET_KEY\n"
        "projects:\n"
        "  - name: emulated\n"
        f"    region: {emu.config.region}\n"
        f"    project_id: {emu.project_id}\n"
        "    endpoints:\n"
        f"      dcs: {emu.dcs_endpoint}\n"
        f"      iam: {emu.iam_endpoint}\n"
        "download:\n"
        '  allowed_hosts: ["127.0.0.1"]\n'
    )


async def serve(cfg: EmulatorConfig, ready_file: Path | None, config_file: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(cfg) as emu:
        if config_file is not None:
            write_atomically(config_file, harvester_config(emu))
        if ready_file is not None:
            write_atomically(ready_file, json.dumps(emu.ready_info(), indent=2) + "\n")
        print(f"DCS emulator listening on {emu.base_url} (project {emu.project_id})", flush=True)
        await stop.wait()
    return 0


def list_incidents(cfg: EmulatorConfig) -> list[str]:
    """The incidents of the retained days (today included), oldest first, as the logs will show them."""
    today = Clock(speed=cfg.clock_speed, offset=cfg.clock_offset, start=cfg.clock_start).today()
    days = [today - timedelta(days=n) for n in range(cfg.retention_days, -1, -1)]
    fleet = build_fleet(cfg.fleet_config())
    running = tuple(i for i in fleet.instances if i.collectable)
    return fleet_incidents(cfg.seed, running, days, cfg.incident_period)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_incidents:
        print("\n".join(list_incidents(config_from_args(args))) or "no incidents")
        return 0
    try:
        return asyncio.run(serve(config_from_args(args), args.ready_file, args.write_config))
    except OSError as exc:
        print(f"harvester emulate: {exc}", file=sys.stderr)
        return 2
