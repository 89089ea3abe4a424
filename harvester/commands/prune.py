"""``harvester prune``: delete date folders (and bundles) older than the days to keep.

Without ``--yes`` it only shows what it would remove. With ``--yes`` it takes the fleet lock
exclusively, like an unsharded run, so no run (or shard) writes into a folder being removed,
nor collects a day between its deletion and the retention watermark, which is recorded
(:func:`harvester.archive.state.record_watermark`) so that no later run collects a pruned day
again. What to remove is :mod:`harvester.archive.prune`'s.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime

import anyio

from harvester.app import FLEET_LOCK
from harvester.archive.prune import PrunePlan, apply_prune, plan_prune
from harvester.archive.state import record_watermark
from harvester.archive.store import Archive
from harvester.errors import EXIT_OK, EXIT_SIGINT, UsageError


def main(args: argparse.Namespace) -> int:
    if args.keep_days < 1:
        raise UsageError("--keep-days must be at least 1")
    if not args.root.is_dir():
        raise UsageError(f"{args.root}: no such archive folder")
    archive = Archive(args.root)
    archive.claim(write=False)  # a system folder or somebody else's: refuse before anything
    now = datetime.now(UTC)
    if not args.yes:
        plan = plan_prune(args.root, args.keep_days, now.date(), incidents=args.incidents)
        for path in [*plan.folders, *plan.run_files, *plan.incidents]:
            print(f"would remove {path}")
        print(
            f"{len(plan.folders)} date folders, {len(plan.incidents)} bundles ({plan.bytes} bytes); "
            f"would record that days up to {plan.pruned_through} are not collected again; "
            "pass --yes to delete"
        )
        return EXIT_OK

    async def locked() -> tuple[PrunePlan, date]:
        # Like an unsharded run: the fleet lock, exclusively, so no run (or shard) writes into
        # a folder being removed, nor collects a day between its deletion and the watermark.
        async with archive.run_lock(FLEET_LOCK, args.lock_timeout):
            archive.claim()
            plan = plan_prune(args.root, args.keep_days, now.date(), incidents=args.incidents)
            watermark = record_watermark(args.root, plan.pruned_through, keep_days=args.keep_days, now=now)
            for path in [*plan.folders, *plan.run_files, *plan.incidents]:
                print(f"removing {path}")
            apply_prune(plan)
            return plan, watermark

    try:
        plan, watermark = anyio.run(locked)
    except KeyboardInterrupt:
        print("harvester: error: prune interrupted", file=sys.stderr)
        return EXIT_SIGINT
    print(
        f"removed {len(plan.folders)} date folders, {len(plan.incidents)} bundles ({plan.bytes} bytes); "
        f"days up to {watermark} are not collected again (.state/retention.json)"
    )
    return EXIT_OK
