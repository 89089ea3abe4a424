"""``harvester verify``: re-hash an archive against its manifests; ``--repair`` fetches again.

Plain ``verify`` is offline: every file is hashed and compared with its manifest line, and
missing, corrupt and extra files are listed (:mod:`harvester.archive.verify` finds them).

``--repair`` is a nightly run restricted to the damaged archive keys, treated as not archived
(:attr:`~harvester.commands.run.NightlyOptions.repair`): the same lock, collection, links, retries
and atomic writes, so a repaired file lands exactly as a first download would. A corrupt file
is never deleted first: it stays until its replacement is renamed over it, and stays for good
when DCS no longer has the day (DCS keeps run logs for 7 days), where it is reported as not
repairable. Only this command talks to the API; plain ``verify`` stays offline. What verify
found, and which of it can be fetched again, is :mod:`harvester.archive.verify`'s.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, date, datetime

from harvester.app import FLEET_LOCK, SignalWatch, execute, new_run_id, owns_process, prepare
from harvester.archive.store import Archive
from harvester.archive.verify import VerifyReport, repair_plan, verify
from harvester.commands.finish import finish
from harvester.commands.run import Nightly, NightlyOptions
from harvester.engine import Engine
from harvester.errors import EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, UsageError
from harvester.models import ArchiveKey, Outcome, RunSummary

__all__ = ["main", "print_report"]


def main(args: argparse.Namespace) -> int:
    """``harvester verify``: 0 when every file matches its manifest line, 1 otherwise."""
    if args.repair:
        if args.config is None:
            raise UsageError("verify --repair needs --config F (the credentials and projects to fetch from)")
        return run_repair(args)
    if not args.root.is_dir():
        raise UsageError(f"{args.root}: no such archive folder")
    Archive(args.root).check_not_system()
    report = verify(args.root)
    print_report(report)
    return EXIT_OK if report.clean else EXIT_PARTIAL


def print_report(report: VerifyReport) -> None:
    """verify's listing: one line per problem, then the counts."""
    for kind, paths in (("MISSING", report.missing), ("CORRUPT", report.corrupt), ("EXTRA", report.extra)):
        for p in paths:
            print(f"{kind} {p}")
    print(
        f"checked {report.checked} files: {report.ok} ok, {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.extra)} extra"
    )


def run_repair(args: argparse.Namespace) -> int:
    """Verify, fetch the damaged keys again, verify again; 0 only if the archive is clean."""
    with SignalWatch(restore=not owns_process(args)) as watch:
        return _repair(args, watch)


def _repair(args: argparse.Namespace, watch: SignalWatch) -> int:
    settings = prepare(args)
    root = args.root
    if os.path.realpath(root) != os.path.realpath(settings.archive.root):
        raise UsageError(
            f"{root} is not the archive of {args.config} (its archive.root is {settings.archive.root})"
        )
    if not root.is_dir():
        raise UsageError(f"{root}: no such archive folder")
    before = verify(root)
    fetchable, hopeless = repair_plan(before, datetime.now(UTC))
    for shown in fetchable:
        print(f"REPAIRING {shown}")
    summary: RunSummary | None = None
    if fetchable:
        keys = frozenset(fetchable.values())

        async def work(engine: Engine) -> None:
            await Nightly(engine, NightlyOptions(repair=keys)).run()

        summary = execute(
            settings,
            args,
            new_run_id(datetime.now(UTC)),
            lock_name=FLEET_LOCK,
            work=work,
            watch=watch,
            full_check=True,  # verify looks everywhere: so do its start-up sweep and reconcile
        )
        finish(summary, settings, args, shard=None, root_record=True)
        if summary.fatal is not None:
            return EXIT_NOTHING  # lock held, credentials refused: finish() printed why

    after = verify(root)
    failures = _failure_reasons(summary)
    remaining = [*after.missing, *after.corrupt]
    for shown in remaining:
        key = after.damaged.get(shown)
        reason = hopeless.get(shown)
        if reason is None and key is not None:
            reason = failures.get(_where(key), "DCS listed no file for it")
        print(f"NOT REPAIRED {shown} ({reason or 'not repairable'})")
    for shown in after.extra:
        print(f"EXTRA {shown} (in no manifest: remove it or move it out of the archive)")
    repaired = [s for s in fetchable if s not in remaining]
    print(
        f"repaired {len(repaired)} of {len(before.missing) + len(before.corrupt)} damaged files; "
        f"{len(remaining)} not repaired, {len(after.extra)} extra"
    )
    return EXIT_OK if after.clean else EXIT_PARTIAL


_Where = tuple[str, str, str, date]


def _where(key: ArchiveKey) -> _Where:
    return (key.instance_id, key.group_name, key.replication_ip, key.day)


def _failure_reasons(summary: RunSummary | None) -> dict[_Where, str]:
    """Why the repair run could not fetch a file, from its failed outcome records."""
    if summary is None:
        return {}
    return {
        (f.instance_id, f.group_name, f.replication_ip, f.day): f.reason
        for f in summary.files
        if f.outcome in (Outcome.FAILED, Outcome.CANCELLED) and f.reason
    }
