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
from typing import TYPE_CHECKING

from harvester import __version__
from harvester.errors import EXIT_OK, EXIT_PARTIAL, EXIT_SIGINT, EXIT_USAGE, HarvesterError, UsageError
from harvester.models import QUERY_TIMES

if TYPE_CHECKING:
    from harvester.archive.prune import PrunePlan
    from harvester.archive.verify import VerifyReport

_CODES_HARVEST = """exit codes:
  0        every file archived or already archived (also: nothing new)
  1        partial: some files or instances failed; everything else is archived
  2        usage or configuration error (one line on stderr naming the flag or key)
  3        nothing could be done: credentials refused, API unreachable, archive not
           writable, lock held by another run, or every file failed
  130/143  interrupted by SIGINT/SIGTERM; the summary and metrics are still written"""

RUN_EPILOG = (
    _CODES_HARVEST
    + """

--dry-run uses the same codes: 0 the plan was shown (or there is nothing to do), 1 or 3
when some or all of the API could not be asked (each problem is a line on stderr)."""
)
COLLECT_EPILOG = (
    _CODES_HARVEST.replace(
        "every file archived or already archived (also: nothing new)", "the bundle is complete"
    )
    + """

The bundle path is the last line of stdout, and is printed only for a bundle that was written
(with its summary.json); a bundle that could not be written is exit 3 with the reason."""
)
VALIDATE_EPILOG = """exit codes:
  0  the config is valid (with --check: every check passed)
  1  --check: at least one check failed (its FAIL line says why)
  2  the config is invalid (one line on stderr naming the key path)

Plain validate reads the file only and makes no network call. --check also probes, one
PASS/FAIL line each: credentials present, archive root writable (a probe file is written and
removed; a missing root is not created), archive root is the harvester's, each endpoint
reachable, credentials accepted (list instances, limit=1), and configured instances found.
Each call is one attempt of at most 15 s."""
CONFIG_SCHEMA_EPILOG = """exit codes:
  0  the schema was printed
  2  bad arguments

Save it next to your config and make the config's first line
  # yaml-language-server: $schema=schema.json
(a path relative to the YAML file, or a URL): editors using the YAML language server (VS Code's
YAML extension, Neovim, Helix...) then complete keys, show each key's description and mark
unknown keys and wrong types as you type. The repository ships it as config/schema.json."""
VERIFY_EPILOG = """exit codes:
  0  every file matches its manifest line (with --repair: everything was repaired)
  1  some file is missing, corrupt, or not in any manifest (each is listed), or not repairable
  2  usage or config error (no such folder, --repair without --config)
  3  --repair: nothing could be done (lock held by a run, credentials refused)"""
PRUNE_EPILOG = """exit codes:
  0  the plan was shown, or (with --yes) carried out
  2  usage error (bad --keep-days, no such folder, not a harvester archive)
  3  the archive could not be changed (lock held by a run after --lock-timeout)"""
READ_EPILOG = """exit codes:
  0  every source was read (parse warnings, if any, are counted on stderr)
  1  some file could not be read (each is named on stderr); the rest was shown
  2  usage error (no such source, a bad filter, time or zone)

Sources: a dated archive root, an incident bundle, or plain Redis log files, in any mix.
Times are printed in UTC; instance clocks are read as UTC unless --tz says otherwise."""
MAIN_EPILOG = """commands: run, collect, validate, verify, prune, logs, events, timeline, emulate;
each has its own --help with its options and exit codes. In short: 0 ok, 1 partial, 2 usage or
config, 3 nothing could be done, 130/143 interrupted."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on its own errors, which matches our usage code; keep it one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="YAML config file")
    p.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log lines on stderr: json, console, or auto (console on a terminal, else json)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="lowest level logged (default info); while progress bars show, only warnings and errors",
    )
    p.add_argument("--summary-json", type=Path, help="also write the run summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")
    p.add_argument(
        "--lock-timeout", type=float, default=60.0, help="seconds to wait for another run's lock (default 60)"
    )


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="harvester",
        description="Harvest Redis run logs from OTC DCS.",
        epilog=MAIN_EPILOG,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="the nightly harvest into the dated archive", epilog=RUN_EPILOG, formatter_class=raw
    )
    _add_common(run)
    run.add_argument(
        "--dry-run", action="store_true", help="show what would be collected and downloaded; change nothing"
    )
    run.add_argument(
        "--instance",
        action="append",
        default=[],
        metavar="NAME_OR_ID",
        help="limit the run to this instance (repeatable)",
    )
    run.add_argument("--include-today", action="store_true", help="also archive today's (partial) log")
    run.add_argument("--shard", metavar="K/N", help="harvest only shard K of N (stable hash partition)")
    run.add_argument("--metrics-file", type=Path, help="write Prometheus textfile metrics here")

    col = sub.add_parser(
        "collect",
        help="gather everything about a few instances now, into a bundle",
        epilog=COLLECT_EPILOG,
        formatter_class=raw,
    )
    _add_common(col)
    col.add_argument(
        "--instance",
        action="append",
        required=True,
        metavar="NAME_OR_ID",
        help="an instance to collect from (repeatable; a name must match exactly one instance)",
    )
    col.add_argument(
        "--days",
        type=int,
        choices=QUERY_TIMES,
        default=0,
        help="0: today's log only (default); N: also the N days before",
    )
    col.add_argument("--replica", default="all", help="all (default) | master | IP | REPLICATION_ID")
    col.add_argument(
        "--label",
        default="incident",
        help="bundle name suffix: incidents/<UTC time>-<label> (default incident)",
    )
    col.add_argument("--no-slowlog", action="store_true", help="do not fetch the slow log")
    col.add_argument("--since", help="slow-log window start (ISO 8601, UTC if no zone)")
    col.add_argument("--until", help="slow-log window end (ISO 8601, UTC if no zone)")
    col.add_argument("--tar", action="store_true", help="also write <bundle>.tar.gz")

    val = sub.add_parser(
        "validate",
        help="check a config and print what it resolved (--check: also probe the cloud)",
        epilog=VALIDATE_EPILOG,
        formatter_class=raw,
    )
    val.add_argument("--config", required=True, type=Path, help="YAML config file")
    val.add_argument(
        "--check",
        action="store_true",
        help="also probe credentials, archive root, endpoints and instances (network calls)",
    )

    schema = sub.add_parser(
        "config-schema",
        help="print the config file's JSON Schema (editors use it to complete and check the YAML)",
        description="Print the JSON Schema of the YAML config file, generated from the settings "
        "models themselves, so it is always what validate accepts.",
        epilog=CONFIG_SCHEMA_EPILOG,
        formatter_class=raw,
    )
    schema.set_defaults(handler=_config_schema)

    ver = sub.add_parser(
        "verify",
        help="re-hash an archive against its manifests (--repair: fetch damaged files again)",
        description="Re-hash every archived file against its manifest and list missing, corrupt and "
        "extra files (offline). With --repair (and --config), files that are missing or corrupt are "
        "downloaded again while DCS still has them (7 days), under the archive lock; a damaged file "
        "stays in place until its replacement is complete.",
        epilog=VERIFY_EPILOG,
        formatter_class=raw,
    )
    ver.add_argument("root", type=Path, help="the archive root")
    ver.add_argument("--repair", action="store_true", help="download missing or corrupt files again")
    ver.add_argument("--config", type=Path, help="YAML config file (required with --repair)")
    ver.add_argument(
        "--lock-timeout", type=float, default=60.0, help="--repair: seconds to wait for a run's lock"
    )
    ver.add_argument(
        "--log-format", choices=("auto", "json", "console"), default="auto", help="--repair: log format"
    )
    ver.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="--repair: log level",
    )
    ver.add_argument("--no-progress", action="store_true", help="--repair: no progress bars")
    ver.add_argument("--summary-json", type=Path, help="--repair: also write the run summary as JSON here")

    pr = sub.add_parser(
        "prune",
        help="remove date folders older than N days",
        description="Delete date folders (and run summaries, and with --incidents incident bundles) "
        "older than --keep-days days, today included, and record the retention watermark in "
        ".state/retention.json so that no later run collects a pruned day again. Without --yes it "
        "only shows what it would do. With --yes it takes the archive lock like a run.",
        epilog=PRUNE_EPILOG,
        formatter_class=raw,
    )
    pr.add_argument("root", type=Path, help="the archive root")
    pr.add_argument("--keep-days", type=int, required=True, help="days to keep, today included (>= 1)")
    pr.add_argument("--yes", action="store_true", help="really delete (default: only show)")
    pr.add_argument("--incidents", action="store_true", help="also prune incident bundles")
    pr.add_argument(
        "--lock-timeout", type=float, default=60.0, help="seconds to wait for a running harvest's lock"
    )

    sub.add_parser(
        "emulate",
        help="run the DCS/IAM/OBS emulator (harvester emulate --help for its options)",
        add_help=False,
    )

    # Reading the archive offline (issue 11): harvester/logs/cli.py owns these commands.
    from harvester.logs.cli import add_commands as add_log_commands  # noqa: PLC0415

    add_log_commands(sub, READ_EPILOG)
    from harvester.logs.timeline_cmd import add_command as add_timeline_command  # noqa: PLC0415

    add_timeline_command(sub, READ_EPILOG)
    return parser


def _validate(args: argparse.Namespace) -> int:
    from harvester.config.describe import describe  # noqa: PLC0415 - keep startup light
    from harvester.config.load import load_config  # noqa: PLC0415

    # validate checks the file; missing credentials are shown as such, not an error, so a config
    # can be checked on a machine that does not hold the keys.
    settings = load_config(args.config, os.environ, require_credentials=False)
    emulator = None
    if settings.emulator is not None:  # its block is the emulator's to check
        from harvester.session import check_emulator_block  # noqa: PLC0415

        emulator = check_emulator_block(settings)
    if args.check:
        from harvester.session import run_checks  # noqa: PLC0415 - network code only when asked

        return run_checks(settings, owns_process=args.owns_process)
    print(describe(settings, emulator=emulator))
    return EXIT_OK


def _config_schema(args: argparse.Namespace) -> int:
    from harvester.config.schema import json_schema_text  # noqa: PLC0415

    sys.stdout.write(json_schema_text())
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from harvester.archive.store import Archive  # noqa: PLC0415
    from harvester.archive.verify import verify  # noqa: PLC0415

    if args.repair:
        if args.config is None:
            raise UsageError("verify --repair needs --config F (the credentials and projects to fetch from)")
        from harvester.repair import run_repair  # noqa: PLC0415

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


def _prune(args: argparse.Namespace) -> int:
    import anyio  # noqa: PLC0415

    from harvester.archive.prune import apply_prune, plan_prune  # noqa: PLC0415
    from harvester.archive.state import record_watermark  # noqa: PLC0415
    from harvester.archive.store import Archive  # noqa: PLC0415
    from harvester.session import FLEET_LOCK  # noqa: PLC0415

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
    # Called as the process entry point: signal handlers stay ours until the interpreter exits,
    # so a late Ctrl-C cannot turn a finished run's exit code into a traceback or a kill.
    args.owns_process = argv is None
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
