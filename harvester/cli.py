"""Command line: arguments -> settings -> run -> summary -> exit code.

Every expected failure ends here as one line on stderr and an exit code from
:mod:`harvester.errors`; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from harvester import __version__
from harvester.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, HarvesterError, UsageError

EPILOG = "exit codes: 0 ok, 1 partial, 2 usage or config, 3 nothing could be done, 130/143 interrupted"


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on its own errors, which matches our usage code; keep it one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="YAML config file")
    p.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--summary-json", type=Path, help="also write the run summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")
    p.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for another run's lock")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harvester", description="Harvest Redis run logs from OTC DCS.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="the nightly harvest into the dated archive", epilog=EPILOG)
    _add_common(run)
    run.add_argument("--dry-run", action="store_true", help="show what would be collected and downloaded")
    run.add_argument("--instance", action="append", default=[], metavar="NAME_OR_ID", help="limit the run")
    run.add_argument("--include-today", action="store_true", help="also archive today's (partial) log")
    run.add_argument("--shard", metavar="K/N", help="harvest only shard K of N (stable hash partition)")
    run.add_argument("--metrics-file", type=Path, help="write Prometheus textfile metrics here")

    col = sub.add_parser("collect", help="gather everything about a few instances now, into a bundle")
    _add_common(col)
    col.add_argument("--instance", action="append", required=True, metavar="NAME_OR_ID")
    col.add_argument("--days", type=int, choices=(0, 1, 3, 7), default=0)
    col.add_argument("--replica", default="all", help="all | master | IP | REPLICATION_ID")
    col.add_argument("--label", default="incident")
    col.add_argument("--no-slowlog", action="store_true")
    col.add_argument("--since", help="slow-log window start (ISO 8601, UTC if no zone)")
    col.add_argument("--until", help="slow-log window end (ISO 8601, UTC if no zone)")
    col.add_argument("--tar", action="store_true", help="also write <bundle>.tar.gz")

    val = sub.add_parser("validate", help="check a config and print what it resolved")
    val.add_argument("--config", required=True, type=Path)

    ver = sub.add_parser("verify", help="re-hash an archive against its manifests")
    ver.add_argument("root", type=Path)

    pr = sub.add_parser("prune", help="remove date folders older than N days")
    pr.add_argument("root", type=Path)
    pr.add_argument("--keep-days", type=int, required=True)
    pr.add_argument("--yes", action="store_true", help="really delete (default: only show)")
    pr.add_argument("--incidents", action="store_true", help="also prune incident bundles")

    sub.add_parser("emulate", help="run the DCS/IAM/OBS emulator", add_help=False)

    # Reading the archive offline (issue 11): harvester/logs/cli.py owns these commands.
    from harvester.logs.cli import add_commands as add_log_commands  # noqa: PLC0415

    add_log_commands(sub, EPILOG)
    from harvester.logs.timeline_cmd import add_command as add_timeline_command  # noqa: PLC0415

    add_timeline_command(sub, EPILOG)
    return parser


def _validate(args: argparse.Namespace) -> int:
    from harvester.config import describe, load_config  # noqa: PLC0415 - keep startup light

    # validate checks the file; missing credentials are shown as such, not an error, so a config
    # can be checked on a machine that does not hold the keys.
    settings = load_config(args.config, os.environ, require_credentials=False)
    print(describe(settings))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from harvester.manifest import verify  # noqa: PLC0415

    if not args.root.is_dir():
        raise UsageError(f"{args.root}: no such archive folder")
    report = verify(args.root)
    for kind, paths in (("MISSING", report.missing), ("CORRUPT", report.corrupt), ("EXTRA", report.extra)):
        for p in paths:
            print(f"{kind} {p}")
    print(
        f"checked {report.checked} files: {report.ok} ok, {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.extra)} extra"
    )
    return EXIT_OK if report.clean else EXIT_PARTIAL


def _prune(args: argparse.Namespace) -> int:
    from harvester.prune import apply_prune, plan_prune  # noqa: PLC0415

    if args.keep_days < 1:
        raise UsageError("--keep-days must be at least 1")
    if not args.root.is_dir():
        raise UsageError(f"{args.root}: no such archive folder")
    plan = plan_prune(args.root, args.keep_days, datetime.now(UTC).date(), incidents=args.incidents)
    for path in [*plan.folders, *plan.run_files, *plan.incidents]:
        print(f"{'removing' if args.yes else 'would remove'} {path}")
    if args.yes:
        apply_prune(plan)
        print(f"removed {len(plan.folders)} date folders, {len(plan.incidents)} bundles ({plan.bytes} bytes)")
    else:
        print(f"{len(plan.folders)} date folders, {len(plan.incidents)} bundles; pass --yes to delete")
    return EXIT_OK


def _parse_time(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise UsageError(f"{flag}: not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulate"]:
        from harvester.emulator.cli import main as emulate  # noqa: PLC0415 - emulator only when asked

        return emulate(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:  # commands that own their module (logs, events)
            return int(handler(args))
        if args.command == "validate":
            return _validate(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "prune":
            return _prune(args)
        from harvester.session import run_collect, run_nightly  # noqa: PLC0415

        if args.command == "run":
            return run_nightly(args)
        since = _parse_time(args.since, "--since")
        until = _parse_time(args.until, "--until")
        return run_collect(args, since, until)
    except HarvesterError as exc:
        from harvester.errors import ConfigError  # noqa: PLC0415

        code = EXIT_USAGE if isinstance(exc, ConfigError | UsageError) else 3
        print(f"harvester: error: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
