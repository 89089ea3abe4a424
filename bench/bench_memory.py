"""Peak RSS of the harvester against file size and against fleet size.

Each case is a fresh ``bench_harvest.py --json`` process (``ru_maxrss`` is a high-water mark,
so cases must not share a process), with the emulator in its own process, so the figure is
the harvester's alone. Two sweeps:

- file size: 2 HA instances (4 replicas), one day each (``collect.days: 1``), no quiet days and
  no size jitter, so exactly 4 files of 1 MiB, 64 MiB and 512 MiB;
- fleet size: 50, 200 and 800 instances with 16 KiB logs and a full 7-day catch-up.

    python bench/bench_memory.py
    python bench/bench_memory.py --sizes-mib 1 64 --fleets 50 200   # quicker
    python bench/bench_memory.py --sizes-mib --fleets 1100 4300 --log-size 1024 --quiet-rate 0.01
        # issue 10's goal 4: ~25,000 and ~100,000 files (the big one takes many minutes)

Downloads stream in ``download.chunk_size`` pieces, so RSS should not follow file size; what it
may follow is the number of files and instances, whose records the run keeps. The emulator
generates logs at about 65 MB/s per core, so the 512 MiB case takes half a minute or so.
Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Case:
    sweep: str
    label: str
    argv: tuple[str, ...]


def cases(args: argparse.Namespace) -> list[Case]:
    out: list[Case] = []
    for mib in args.sizes_mib:
        out.append(
            Case(
                "file size",
                f"{mib} MiB x 4 files",
                (
                    "--instances=2",
                    "--mode=ha",
                    "--days=1",
                    "--quiet-rate=0",
                    "--size-jitter=0",
                    f"--log-size={mib * MIB}",
                    f"--latency-ms={args.latency_ms}",
                    f"--download-concurrency={args.download_concurrency}",
                ),
            )
        )
    for n in args.fleets:
        out.append(
            Case(
                "fleet size",
                f"{n} instances",
                (
                    f"--instances={n}",
                    f"--log-size={args.log_size}",
                    f"--quiet-rate={args.quiet_rate}",
                    f"--latency-ms={args.latency_ms}",
                    f"--download-concurrency={args.download_concurrency}",
                ),
            )
        )
    return out


def run_case(case: Case, chunk_size: int, timeout: float = 3600.0) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(HERE / "bench_harvest.py"),
        "--json",
        f"--chunk-size={chunk_size}",
        *case.argv,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{case.label}: bench_harvest.py failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes-mib", type=int, nargs="*", default=[1, 64, 512])
    p.add_argument("--fleets", type=int, nargs="*", default=[50, 200, 800])
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--download-concurrency", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=MIB)
    p.add_argument("--log-size", type=int, default=16384, help="fleet sweep: bytes of a day's log")
    p.add_argument("--quiet-rate", type=float, default=0.1, help="fleet sweep: share of quiet days")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per case (the big fleets)")
    args = p.parse_args(argv)

    header = (
        f"{'sweep':<10}  {'case':<20}  {'files':>6}  {'archived MiB':>12}  {'makespan s':>10}  "
        f"{'MiB/s':>7}  {'RSS before MiB':>14}  {'peak RSS MiB':>12}  {'growth MiB':>10}  {'KiB/file':>8}"
    )
    print(
        f"download_concurrency {args.download_concurrency}, chunk_size {args.chunk_size} B, "
        f"API latency {args.latency_ms:g} ms; emulator in its own process",
        flush=True,
    )
    print(header)
    print("-" * len(header), flush=True)
    for case in cases(args):
        d = run_case(case, args.chunk_size, args.timeout)
        r = d["run"]
        before, peak = r["rss_before_kib"] / 1024, r["rss_peak_kib"] / 1024
        files = r["files_archived"]
        per_file = (peak - before) * 1024 / files if files else 0.0
        print(
            f"{case.sweep:<10}  {case.label:<20}  {files:>6}  {r['bytes_archived'] / MIB:>12.1f}  "
            f"{r['makespan']:>10.2f}  {d['mb_per_s']:>7.1f}  {before:>14.1f}  {peak:>12.1f}  "
            f"{peak - before:>10.1f}  {per_file:>8.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
