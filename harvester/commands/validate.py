"""``harvester validate`` and ``harvester config-schema``: the config, checked and described.

Plain ``validate`` reads the file and makes no network call: missing credentials are shown as
such, not an error, so a config can be checked on a machine that does not hold the keys.
``--check`` also probes the cloud (or the embedded emulator), one PASS/FAIL line per probe
(:mod:`harvester.commands.doctor`). ``config-schema`` prints the JSON Schema of the settings
models themselves, so it is always what ``validate`` accepts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import AsyncExitStack

import anyio

from harvester import log as logsetup
from harvester.config.describe import describe
from harvester.config.load import load_config
from harvester.config.schema import Settings, json_schema_text
from harvester.errors import EXIT_OK


def main(args: argparse.Namespace) -> int:
    """``harvester validate [--check]``."""
    settings = load_config(args.config, os.environ, require_credentials=False)
    emulator = None
    if settings.emulator is not None:  # its block is the emulator's to check
        from harvester.app import check_emulator_block  # noqa: PLC0415 - the emulator only when asked for

        emulator = check_emulator_block(settings)
    if args.check:
        return run_checks(settings, owns_process=args.owns_process)
    print(describe(settings, emulator=emulator))
    return EXIT_OK


def config_schema(args: argparse.Namespace) -> int:
    """``harvester config-schema``: the config's JSON Schema on stdout."""
    sys.stdout.write(json_schema_text())
    return EXIT_OK


def run_checks(settings: Settings, *, owns_process: bool = False) -> int:
    """``validate --check``: probe the cloud (or the embedded emulator) and print PASS/FAIL lines."""
    # Network code only for --check: plain validate stays a quick, offline read of the file.
    from harvester.app import SignalWatch, cancelled_by_signals, embedded_emulator, register_secrets  # noqa: PLC0415
    from harvester.commands import doctor  # noqa: PLC0415

    logsetup.configure("auto", "error")  # the checks print their own lines; logs only for bugs
    register_secrets(settings)
    checks: list[doctor.Check] = []

    async def probe() -> None:
        async with AsyncExitStack() as stack:
            resolved = settings
            if settings.emulator is not None:
                resolved = await stack.enter_async_context(embedded_emulator(settings))
            checks.extend(await doctor.run_checks(resolved))

    async def main() -> None:
        async with cancelled_by_signals(watch):
            await probe()

    with SignalWatch(restore=not owns_process) as watch:
        anyio.run(main)
        for check in checks:
            print(logsetup.scrub(check.line()))
        if watch.first is not None:
            print(f"harvester: interrupted by {signal.Signals(watch.first).name}", file=sys.stderr)
            return 128 + watch.first
        print(doctor.tally(checks))
        return doctor.exit_code(checks)
