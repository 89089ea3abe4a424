"""Command line: the arguments of every command, and the dispatch to its module.

Parsing only: each command's work is in :mod:`harvester.commands` (imported when it runs, so
``--help`` and the offline commands start fast). Every expected failure ends here as one line
on stderr and an exit code from :mod:`harvester.errors`; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harvester import __version__
from harvester.errors import EXIT_NOTHING, EXIT_USAGE, ConfigError, HarvesterError, UsageError
from harvester.models import QUERY_TIMES

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


def _add_common(p: argparse.ArgumentParser, *, config_required: bool = True, scope: str = "") -> None:
    """The options every command that talks to the cloud shares; ``scope`` prefixes their help
    (``verify`` takes them only for ``--repair``)."""
    config_help = "YAML config file" if config_required else "YAML config file (required with --repair)"
    p.add_argument("--config", required=config_required, type=Path, help=config_help)
    p.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help=scope + "log lines on stderr: json, console, or auto (console on a terminal, else json)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help=scope + "lowest level logged (default info); while progress bars show, only warnings and errors",
    )
    p.add_argument("--summary-json", type=Path, help=scope + "also write the run summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help=scope + "no progress bars even on a terminal")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        help=scope + "seconds to wait for another run's lock (default 60)",
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
    run.add_argument(
        "--full-check",
        action="store_true",
        help="sweep leftovers and reconcile manifests in every archive folder, not only recent ones",
    )

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

    sub.add_parser(
        "config-schema",
        help="print the config file's JSON Schema (editors use it to complete and check the YAML)",
        description="Print the JSON Schema of the YAML config file, generated from the settings "
        "models themselves, so it is always what validate accepts.",
        epilog=CONFIG_SCHEMA_EPILOG,
        formatter_class=raw,
    )

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
    _add_common(ver, config_required=False, scope="--repair: ")

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

    # Reading the archive offline (issue 11): harvester/commands/logs.py owns these commands.
    from harvester.commands.logs import add_commands as add_log_commands  # noqa: PLC0415

    add_log_commands(sub, READ_EPILOG)
    from harvester.commands.timeline import add_command as add_timeline_command  # noqa: PLC0415

    add_timeline_command(sub, READ_EPILOG)
    return parser


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
        return dispatch(args)
    except HarvesterError as exc:
        code = EXIT_USAGE if isinstance(exc, ConfigError | UsageError) else EXIT_NOTHING
        print(f"harvester: error: {exc}", file=sys.stderr)
        return code


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; each module is imported only when its command runs."""
    handler = getattr(args, "handler", None)
    if handler is not None:  # the offline readers own their parsers (harvester/logs/)
        return int(handler(args))
    if args.command == "run":
        from harvester.commands import run  # noqa: PLC0415

        return run.main(args)
    if args.command == "collect":
        from harvester.commands import collect  # noqa: PLC0415
        from harvester.commands.logs import parse_time  # noqa: PLC0415 - one reading of a time flag

        return collect.main(args, parse_time(args.since, "--since"), parse_time(args.until, "--until"))
    if args.command == "verify":
        from harvester.commands import verify  # noqa: PLC0415

        return verify.main(args)
    if args.command == "prune":
        from harvester.commands import prune  # noqa: PLC0415

        return prune.main(args)
    from harvester.commands import validate  # noqa: PLC0415

    if args.command == "config-schema":
        return validate.config_schema(args)
    return validate.main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
