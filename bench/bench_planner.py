"""What planning a night costs against the archive's age: the whole-archive key set vs ArchiveIndex.

For each archive age (``--nights``, default 1, 30 and 365 archived nights, the newest ending
yesterday) this fabricates the archive of the emulator's fleet (``--instances``, default 500:
1,848 replicas, one file per replica and night; see ``archive_fixture.py``) and times, in CPU
and wall seconds:

- **old**: what the nightly planner did up to issue 10: ``archived_keys(root)`` reads every date
  folder into one set; then per instance the pending-record check scans that set twice, per
  replica ``_days_for`` scans it again, and ``_report_present`` sorts all of it;
- **new**: ``ArchiveIndex.build(root, days=window)`` reads the 7-day window and today; then
  every one of those questions is a lookup (``days_for``, ``__contains__``,
  ``keys_of_instance``).

Both must give the same answers (the missing days of every replica, the days reported present);
the script checks that on the instances it ran the old way. At large ages the old per-instance
loop takes minutes, so it runs on ``--old-sample`` instances and is scaled to the fleet (marked
``*``).

    python bench/bench_planner.py                         # 1, 30, 365 nights, 500 instances
    python bench/bench_planner.py --nights 1 30 --instances 100
    python bench/bench_planner.py --flat                  # one folder per day: less disk

Never run by the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from archive_fixture import FleetInstance, emulator_fleet, fabricate, nights_before

from harvester import plan
from harvester.archive.index import ArchiveIndex, archived_keys
from harvester.archive.state import instance_of
from harvester.models import ArchiveKey, Replica

TODAY = date(2025, 3, 20)
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nights", type=int, nargs="+", default=[1, 30, 365], help="archive ages to measure")
    p.add_argument("--instances", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--old-sample",
        type=int,
        default=50,
        help="above 30 nights, run the old per-instance loop on this many instances and scale",
    )
    p.add_argument("--flat", action="store_true", help="one folder per day instead of the real layout")
    p.add_argument("--dir", type=Path, default=None, help="where to fabricate (default: a temp dir)")
    return p.parse_args(argv)


@dataclass(slots=True)
class Timing:
    cpu: float = 0.0
    wall: float = 0.0

    def __str__(self) -> str:
        return f"{self.cpu:8.3f} / {self.wall:8.3f}"


def timed(fn: Callable[[], T]) -> tuple[T, Timing]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, Timing(time.process_time() - c0, time.perf_counter() - w0)


def replicas_of(inst: FleetInstance) -> list[Replica]:
    t = inst.target
    if t.cache_mode == "single":
        return [Replica(t, "", "", None)]
    return [Replica(t, g, ip, f"rep-{ip}") for g, ip in inst.replicas]


Answer = tuple[list[list[date]], list[ArchiveKey]]  # missing days per replica, keys reported present


def old_plan(keys: set[ArchiveKey], fleet: Iterable[FleetInstance]) -> list[Answer]:
    """The planner's loops as nightly.py had them (``_records_of``, ``_days_for``, ``_report_present``)."""
    window = set(plan.complete_days(TODAY))
    out: list[Answer] = []
    for inst in fleet:
        t = inst.target
        mine = (t.project_id, t.instance_id)
        # _records_of: built for the instance's pending records (none here; the scans are what cost)
        _ = {(k.group_name, k.replication_ip, k.day) for k in keys if instance_of(k) == mine}
        _ = {k.day for k in keys if instance_of(k) == mine}
        missing = []
        for replica in replicas_of(inst):
            have = {k.day for k in keys if replica.owns(k)}  # _days_for
            missing.append(plan.missing_days(TODAY, have, set()))
        present = [  # _report_present
            k
            for k in sorted(keys, key=lambda k: (k.day, k.group_name, k.replication_ip))
            if k.project_id == t.project_id and k.instance_id == t.instance_id and k.day in window
        ]
        out.append((missing, present))
    return out


def new_plan(index: ArchiveIndex, fleet: Iterable[FleetInstance]) -> list[Answer]:
    """The same questions as lookups in the run's index."""
    window = plan.complete_days(TODAY)
    out: list[Answer] = []
    for inst in fleet:
        t = inst.target
        # _records_of: a pending record is done when `key in index` (none here)
        missing = [plan.missing_days(TODAY, index.days_for(r), set()) for r in replicas_of(inst)]
        present = index.keys_of_instance(t.project_id, t.instance_id, window)
        out.append((missing, present))
    return out


def measure(args: argparse.Namespace, fleet: list[FleetInstance], nights: int, base: Path) -> None:
    root = base / f"archive-{nights}"
    days = nights_before(TODAY, nights)
    files, made = timed(lambda: fabricate(root, fleet, days, flat=args.flat))
    since = TODAY - timedelta(days=plan.RETENTION_DAYS)
    window = [*plan.complete_days(TODAY), TODAY]
    try:
        index, new_build = timed(lambda: ArchiveIndex.build(root, days=window, recheck_since=since))
        new_answers, new_look = timed(lambda: new_plan(index, fleet))
        keys, old_build = timed(lambda: archived_keys(root, recheck_since=since))
        sample = fleet if nights <= 30 else fleet[: args.old_sample]
        old_answers, old_look = timed(lambda: old_plan(keys, sample))
        scale = len(fleet) / len(sample)
        old_look = Timing(old_look.cpu * scale, old_look.wall * scale)
        if old_answers != new_answers[: len(sample)]:
            raise SystemExit(f"{nights} nights: the index and the old loops disagree")
        star = "*" if scale != 1 else " "
        old_total = Timing(old_build.cpu + old_look.cpu, old_build.wall + old_look.wall)
        new_total = Timing(new_build.cpu + new_look.cpu, new_build.wall + new_look.wall)
        print(
            f"{nights:6d} | {files:8d} | {made.wall:7.1f} | {len(keys):8d} | {len(index):6d} | "
            f"{old_build} | {old_look}{star}| {new_build} | {new_look} | "
            f"{old_total.cpu / max(new_total.cpu, 1e-9):7.0f}x"
        )
        sys.stdout.flush()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fleet = emulator_fleet(args.instances, args.seed)
    replicas = sum(len(i.replicas) for i in fleet)
    print(
        f"planner against archive age: {len(fleet)} instances, {replicas} replicas, "
        f"one file per replica and night; layout {'flat' if args.flat else 'real'}"
    )
    print("times are CPU / wall seconds; * = old per-instance loop scaled from --old-sample instances")
    print(
        "nights |    files | fab s   | old keys | index  | old: read archive   | old: per-replica     "
        "| new: build index    | new: lookups        | old/new CPU"
    )
    base = Path(tempfile.mkdtemp(prefix="bench-planner-", dir=args.dir))
    try:
        for nights in args.nights:
            measure(args, fleet, nights, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
