"""The growth curve (issue 10 goal 6): cost against fleet size, and against archive age.

Each point is one fresh ``bench_harvest.py --json`` process (``ru_maxrss`` is a high-water mark,
so sizes must not share a process), with the emulator in its own process and a fixed latency per
API call:

- **fleet size** (``--sizes``, default 100 500 2000 instances, empty archive): makespan next to
  bench_harvest's lower bound, harvester CPU per archived file, peak RSS and its growth per file;
- **archive age** (``--ages``, default 1 30 365 archived nights, at ``--age-instances``, default
  500): the same night's work after an archive of that many older nights (fabricated outside
  DCS's window by ``archive_fixture.py``, so tonight's collections and downloads do not change):
  when the engine was ready, when the first collection went out, makespan, CPU, peak RSS. The
  archive carries last night's start-up records (bench_harvest's ``--archive-checked`` default).

The night's work defaults to ``--days 1`` (collect.days: one new day per replica, the steady
state of a nightly run); ``--days auto`` gives the empty-archive catch-up of all 7 days.

    python bench/bench_growth.py                                   # the full curve (long)
    python bench/bench_growth.py --sizes 20 50 --ages 1 30 --age-instances 50   # a quick check
    python bench/bench_growth.py --sizes --ages 1 365                           # ages only

Figures on a shared machine are noisy; each point is one run. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[100, 500, 2000], help="fleet sizes (instances)")
    p.add_argument("--ages", type=int, nargs="*", default=[1, 30, 365], help="archived nights")
    p.add_argument("--age-instances", type=int, default=500, help="fleet size of the archive-age runs")
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--api-concurrency", type=int, default=32)
    p.add_argument("--days", default="1", help="collect.days of the night's work: 0, 1, 3, 7 or auto")
    p.add_argument(
        "--harvest-arg",
        action="append",
        default=[],
        help="passed on to bench_harvest.py (repeatable), e.g. --harvest-arg=--poll-interval=1",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per point")
    p.add_argument("--json", action="store_true", help="also print every point's bench_harvest JSON")
    return p.parse_args(argv)


def harvest(args: argparse.Namespace, instances: int, nights: int = 0) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(HERE / "bench_harvest.py"),
        "--json",
        f"--instances={instances}",
        f"--latency-ms={args.latency_ms}",
        f"--api-concurrency={args.api_concurrency}",
        f"--archive-nights={nights}",
        *([] if args.days == "auto" else [f"--days={args.days}"]),
        *args.harvest_arg,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=args.timeout)
    if done.returncode != 0:
        what = " ".join(argv[2:])
        raise RuntimeError(f"bench_harvest.py {what} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(result), file=sys.stderr)
    return result


def _ms_per_file(r: dict[str, Any]) -> float:
    return 1000 * float(r["cpu_s"]) / max(int(r["files_archived"]), 1)


def fleet_row(d: dict[str, Any]) -> str:
    r = d["run"]
    before, peak = r["rss_before_kib"] / 1024, r["rss_peak_kib"] / 1024
    per_file = (peak - before) * 1024 / max(r["files_archived"], 1)
    return (
        f"| {d['params']['instances']:,} | {d['fleet']['replicas']:,} | {r['files_archived']:,} | "
        f"{r['makespan']:.1f} | {d['lower_bound']:.1f} | {d['ratio_lower_bound']:.2f} | "
        f"{r['cpu_s']:.1f} | {_ms_per_file(r):.2f} | {peak:.1f} | {per_file:.2f} |"
    )


def age_row(d: dict[str, Any]) -> str:
    r, before = d["run"], d["archive_before"]
    first = d.get("first_collect_at")
    return (
        f"| {before['nights']} | {before['files']:,} | {r['engine_open']:.2f} | "
        f"{'-' if first is None else f'{first:.2f}'} | {r['makespan']:.1f} | {r['cpu_s']:.1f} | "
        f"{_ms_per_file(r):.2f} | {r['rss_peak_kib'] / 1024:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{args.latency_ms:g} ms per API call, api_concurrency {args.api_concurrency}, collect.days "
        f"{args.days}, emulator in its own process; one run per point",
        flush=True,
    )
    if args.sizes:
        print("\nfleet size (empty archive):\n")
        print(
            "| instances | replicas | files | makespan s | lower bound s | ratio | CPU s | "
            "CPU ms/file | peak RSS MiB | RSS growth KiB/file |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for n in args.sizes:
            print(fleet_row(harvest(args, n)), flush=True)
    if args.ages:
        print(f"\narchive age ({args.age_instances} instances; nights older than DCS's window):\n")
        print(
            "| archived nights | files before | engine ready s | first collection s | makespan s | "
            "CPU s | CPU ms/file | peak RSS MiB |"
        )
        print("|---|---|---|---|---|---|---|---|", flush=True)
        for nights in args.ages:
            print(age_row(harvest(args, args.age_instances, nights)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
