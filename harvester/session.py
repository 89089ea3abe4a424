"""Everything a run needs around the engine: emulator, sessions, credentials, lock, signals.

``cli.py`` parses arguments and calls :func:`run_nightly` or :func:`run_collect`; this module
opens the resources in a fixed order (config, archive check, lock, orphan sweep, transport,
engine), turns SIGINT/SIGTERM into a clean cancellation of the root scope, and writes the
run's records (summary, metrics) whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import anyio
import structlog

from harvester import log as logsetup
from harvester import plan
from harvester.archive.files import write_bytes_atomic
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.store import Archive
from harvester.cloud.auth import AkSkAuth, Authenticator, StaticTokenAuth
from harvester.cloud.iam import Iam, IamUser, PasswordAuth
from harvester.cloud.retry import RetryEvent, RetryPolicy, call_with_retry
from harvester.cloud.transport import Transport
from harvester.config.emulated import apply_emulator
from harvester.config.load import load_config
from harvester.config.schema import Settings
from harvester.errors import (
    EXIT_OK,
    AuthError,
    ConfigError,
    HarvesterError,
    UsageError,
    exit_code,
    expected_failure,
)
from harvester.harvest import Engine
from harvester.metrics import MetricsSnapshot, ProjectCounts, write_metrics
from harvester.models import Outcome, RunSummary
from harvester.nightly import Nightly, NightlyOptions
from harvester.progress import bars_wanted, make_progress
from harvester.report import render_text, summary_dict, unreachable_lines

log = structlog.get_logger("harvester")


FLEET_LOCK = "run"  # held exclusively by an unsharded run, shared by the shards of a sharded one


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def prepare(args: argparse.Namespace) -> Settings:
    """Load and validate the config, set up logging, and make every secret unloggable."""
    settings = load_config(args.config, os.environ)
    logsetup.configure(args.log_format, args.log_level, bars=bars_wanted(args.no_progress))
    register_secrets(settings)
    return settings


def register_secrets(settings: Settings) -> None:
    auth = settings.credentials
    for secret in (auth.access_key, auth.secret_key, auth.password, auth.token):
        if secret is not None:
            logsetup.register_secret(secret.reveal())


def authenticators(settings: Settings, transport: Transport) -> dict[str, Authenticator]:
    """One authenticator per project: a token is scoped to its project, AK/SK signs anything."""
    auth = settings.credentials
    out: dict[str, Authenticator] = {}
    for project in settings.projects:
        if auth.method == "aksk":
            if auth.access_key is None or auth.secret_key is None:
                raise ConfigError("auth: access key and secret key are required for method aksk")
            out[project.name] = AkSkAuth(
                auth.access_key.reveal(), auth.secret_key, project_id=project.project_id
            )
        elif auth.method == "token":
            if auth.token is None:
                raise ConfigError("auth: a token is required for method token")
            out[project.name] = StaticTokenAuth(auth.token)
        else:
            if auth.username is None or auth.password is None or auth.domain is None:
                raise ConfigError("auth: username, password and domain are required for method password")
            iam = Iam(transport, project.iam_endpoint, IamUser(auth.username, auth.password, auth.domain))
            out[project.name] = PasswordAuth.from_login(
                iam.login(project_id=project.project_id, project_name=project.project_name)
            )
    return out


@asynccontextmanager
async def open_engine(
    settings: Settings,
    run_id: str,
    *,
    progress: bool,
    lock_name: str | None,
    lock_timeout: float,
    read_only: bool = False,
) -> AsyncIterator[Engine]:
    """Start what the config asks for and yield a ready engine; closes all of it afterwards."""
    async with AsyncExitStack() as stack:
        if settings.emulator is not None:
            settings = await stack.enter_async_context(embedded_emulator(settings))
        archive = Archive(settings.archive.root)
        # Ours alone (exit 2 otherwise), checked before anything is written; marked on first use.
        await anyio.to_thread.run_sync(functools.partial(archive.claim, write=not read_only))
        if not read_only:  # --dry-run must work on an archive it may not write
            await anyio.to_thread.run_sync(archive.check_writable)
        if lock_name is not None:
            if lock_name != FLEET_LOCK:
                # A shard shares the fleet lock with its sibling shards; an unsharded run holds
                # it alone, so a manual full run and the sharded CronJob never overlap.
                await stack.enter_async_context(archive.run_lock(FLEET_LOCK, lock_timeout, shared=True))
            holder = await stack.enter_async_context(archive.run_lock(lock_name, lock_timeout))
            if holder is not None:
                log.warning("harvest.stale_lock_taken_over", previous=holder.describe())
            removed = await anyio.to_thread.run_sync(archive.remove_orphans)
            if removed:
                log.info("harvest.orphans_removed", count=removed)
            await ManifestWriter(archive).reconcile_all()
        lim = settings.limits
        dl = settings.download
        transport = await stack.enter_async_context(
            Transport(
                api_connections=lim.api_concurrency,
                download_connections=lim.download_concurrency,
                connect_timeout=dl.connect_timeout,
                stall_timeout=dl.stall_timeout,  # bounds downloads only; API calls have their own
            )
        )
        settings = await resolve_project_ids(settings, transport)
        bars = make_progress(progress)
        stack.callback(bars.close)
        yield Engine(
            settings, transport, archive, authenticators(settings, transport), run_id=run_id, progress=bars
        )


async def resolve_project_ids(settings: Settings, transport: Transport) -> Settings:
    """DCS paths need the project id; a config that names the project gets it from IAM.

    Retried like every other call (a 503 or a reset at start-up must not fail the fleet);
    a refused password is not.
    """
    if all(p.project_id is not None for p in settings.projects):
        return settings
    auth = settings.credentials
    username, password, domain = auth.username, auth.password, auth.domain
    if username is None or password is None or domain is None:  # config.py checks this
        raise ConfigError("projects: project_name needs auth.method password (username, password, domain)")
    user = IamUser(username, password, domain)
    lim = settings.limits
    policy = RetryPolicy(
        attempts=lim.retry_attempts, throttle_attempts=lim.throttle_attempts, timeout=lim.retry_timeout
    )

    def on_retry(event: RetryEvent) -> None:
        log.info(
            "retry.scheduled",
            what=event.what,
            kind=event.kind,
            attempt=event.attempt,
            wait=round(event.wait, 3),
            reason=event.reason,
        )

    resolved = []
    for project in settings.projects:
        if project.project_id is None and project.project_name is not None:
            name, iam = project.project_name, Iam(transport, project.iam_endpoint, user)
            project_id = await call_with_retry(
                functools.partial(iam.project_id, name),
                what=f"resolve project {name!r}",
                policy=policy,
                on_retry=on_retry,
            )
            log.info("harvest.project_resolved", project=project.name, project_id=project_id)
            resolved.append(project.model_copy(update={"project_id": project_id}))
        else:
            resolved.append(project)
    return settings.model_copy(update={"projects": tuple(resolved)})


def check_emulator_block(settings: Settings) -> str:
    """The config's ``emulator:`` block checked by the emulator's own rules; returns its summary.

    A bad key or value is a ConfigError naming ``emulator.<key>``, like any other config error.
    """
    from harvester.emulator.embedded import BlockError, parse_block  # noqa: PLC0415 - only when asked for

    try:
        return parse_block(settings.emulator or {}).summary()
    except BlockError as exc:
        raise ConfigError(f"{settings.config_path.name}: {exc}") from None


@asynccontextmanager
async def embedded_emulator(settings: Settings) -> AsyncIterator[Settings]:
    """``emulator:`` in the config: the demo harvests from a fake cloud started in-process."""
    from harvester.emulator.embedded import run_block  # noqa: PLC0415 - only when asked for

    check_emulator_block(settings)
    async with run_block(settings.emulator or {}) as info:
        log.info("emulator.started", url=info["dcs_endpoint"], projects=len(info["project_ids"]))
        resolved = apply_emulator(settings, info)
        register_secrets(resolved)
        yield resolved


SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalWatch:
    """SIGINT and SIGTERM for one whole command, from loading the config to the last record.

    The first signal stops the work (through the running loop, see :func:`cancelled_by_signals`)
    and decides the exit code. Any later one, while the run is shutting down or writing its
    summary and metrics, is noted and otherwise ignored: a second Ctrl-C must not turn a clean
    stop into a traceback, nor a second SIGTERM into a kill without records. One Python-level
    handler stays installed the whole time, so there is no moment with the default action
    (asyncio's own signal handling restores it when a loop lets go of a signal).
    """

    def __init__(self, *, restore: bool = True) -> None:
        self.first: int | None = None
        self.repeated = 0
        self.logged = 0  # repeats already logged by the loop
        self._restore = restore
        self._previous: dict[signal.Signals, Any] = {}
        self._listener: Callable[[int, bool], None] | None = None

    def __enter__(self) -> SignalWatch:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        unlogged = self.repeated - self.logged
        if unlogged > 0:  # they came after the loop: logging inside a signal handler could deadlock
            log.warning("harvest.signal_ignored", count=unlogged, reason="already stopping")
            self.logged = self.repeated
        for signum, handler in self._previous.items():
            # When the process is ours (the console script) the command is over: the exit code
            # is decided and every record written. Ignore signals from here on, at the OS level:
            # Python resets its own handlers to the default while the interpreter shuts down,
            # and a late Ctrl-C would then replace the exit code with a kill.
            signal.signal(signum, handler if self._restore else signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.first is None
        if first:
            self.first = signum
        else:
            self.repeated += 1
        if self._listener is not None:
            self._listener(signum, first)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


@asynccontextmanager
async def cancelled_by_signals(watch: SignalWatch) -> AsyncIterator[anyio.CancelScope]:
    """A cancel scope that the first signal cancels; later ones are logged as ignored.

    Python runs signal handlers in the main thread only, so a signal that lands on a worker
    thread while the loop sleeps in ``select`` would wait for the next event: the wakeup fd
    (registered with the loop) makes it an event at once.
    """
    loop = asyncio.get_running_loop()
    scope = anyio.CancelScope()

    def on_signal(signum: int, first: bool) -> None:  # in the loop, not in the handler
        name = signal.Signals(signum).name
        if first:
            log.warning("harvest.interrupted", signal=name)
            scope.cancel()
        else:
            watch.logged += 1
            log.warning("harvest.signal_ignored", signal=name, reason="already stopping")

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    loop.add_reader(reader.fileno(), _drain, reader)

    def listener(signum: int, first: bool) -> None:  # in the signal handler: hand over, no more
        loop.call_soon_threadsafe(on_signal, signum, first)

    watch._listener = listener
    if watch.first is not None:  # it came while the config was loading
        scope.cancel()
    try:
        with scope:
            yield scope
    finally:
        watch._listener = None
        loop.remove_reader(reader.fileno())
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()


async def guarded(
    summary_of: Callable[[], RunSummary], body: Callable[[], Awaitable[None]], watch: SignalWatch
) -> None:
    """Run ``body`` so that SIGINT/SIGTERM cancel it cleanly and auth failures stop it in one line."""
    usage: HarvesterError | None = None
    async with cancelled_by_signals(watch):
        try:
            await body()
        except BaseException as exc:  # task groups wrap failures; find the one to report
            failure = expected_failure(exc)
            if failure is None:
                raise
            if isinstance(failure, ConfigError | UsageError):
                usage = failure
            elif isinstance(failure, AuthError):
                summary_of().fatal = f"authentication refused: {failure}"
            else:
                summary_of().fatal = str(failure)
    if watch.first is not None:
        summary_of().interrupted_by = watch.first
    if usage is not None:
        raise usage  # exit 2, reported by cli.main


def execute(
    settings: Settings,
    args: argparse.Namespace,
    run_id: str,
    *,
    lock_name: str | None,
    work: Callable[[Engine], Awaitable[None]],
    watch: SignalWatch,
) -> RunSummary:
    """Open the engine, run ``work`` under signal handling, and return the finished summary."""
    box = {"summary": RunSummary(run_id=run_id, started_at=datetime.now(UTC))}

    async def body() -> None:
        async with open_engine(
            settings,
            run_id,
            progress=not args.no_progress,
            lock_name=lock_name,
            lock_timeout=args.lock_timeout,
            read_only=bool(getattr(args, "dry_run", False)),
        ) as engine:
            box["summary"] = engine.summary
            await work(engine)

    async def main() -> None:
        await guarded(lambda: box["summary"], body, watch)

    with structlog.contextvars.bound_contextvars(run_id=run_id):
        anyio.run(main)
    summary = box["summary"]
    summary.finished_at = datetime.now(UTC)
    return summary


def report_problems(summary: RunSummary) -> None:
    """One ``harvester: error:`` line on stderr per thing that stopped work, none for a clean run.

    The fatal reason first, then every instance that could not be worked on (an instance the
    config names that DCS does not know, with the candidates; a project whose listing failed),
    so cron mail and a terminal both show what to fix without reading JSON logs. Instances
    deliberately skipped (not RUNNING, engine too old) are in the summary, not here.
    An unreachable endpoint comes first, as one line per project naming it and the cause.
    """
    for line in unreachable_lines(summary):
        print(line, file=sys.stderr)
    if summary.fatal:
        print(f"harvester: error: {summary.fatal}", file=sys.stderr)
    for problem in summary.instances:
        # A project whose endpoint could not be reached has its one line above; its instances
        # failed for that reason and are listed in the summary, not once more here.
        if not problem.skipped and problem.project not in summary.unreachable:
            print(
                f"harvester: error: {problem.project}/{problem.instance}: {problem.reason}", file=sys.stderr
            )


def owns_process(args: argparse.Namespace) -> bool:
    """Whether this command is the whole process (console script), not a call inside one."""
    return bool(getattr(args, "owns_process", False))


def run_nightly(args: argparse.Namespace) -> int:
    with SignalWatch(restore=not owns_process(args)) as watch:
        settings = prepare(args)
        shard = plan.parse_shard(args.shard) if args.shard else None
        options = NightlyOptions(
            dry_run=args.dry_run, include_today=args.include_today, only=tuple(args.instance), shard=shard
        )
        run_id = new_run_id(datetime.now(UTC))
        lock_name = (
            None if args.dry_run else (FLEET_LOCK if shard is None else f"run-shard-{shard[0]}-of-{shard[1]}")
        )
        lines: list[str] = []

        async def work(engine: Engine) -> None:
            nightly = Nightly(engine, options)
            await nightly.run()
            if args.dry_run:
                lines.extend(dry_run_text(nightly))

        summary = execute(settings, args, run_id, lock_name=lock_name, work=work, watch=watch)
        if args.dry_run:
            return finish_dry_run(summary, lines)
        return finish(summary, settings, args, shard=args.shard, root_record=True)


def finish_dry_run(summary: RunSummary, lines: list[str]) -> int:
    """Print the plan; "nothing to do" only when the API was asked and everything answered.

    A dry run that could not list instances, was refused, or was interrupted has not found
    "nothing to do": it says what went wrong on stderr and exits like a run would (1 or 3,
    130/143), so a dry run in CI cannot pass while the API is unreachable.
    """
    code = exit_code(summary)
    if lines:
        print("\n".join(lines))
    elif code == EXIT_OK:
        print("nothing to do")
    for problem in summary.instances:
        if problem.skipped:
            print(f"skipped {problem.project}/{problem.instance}: {problem.reason}")
    report_problems(summary)
    if summary.interrupted_by is not None:
        print(
            f"harvester: dry run interrupted by {signal.Signals(summary.interrupted_by).name}",
            file=sys.stderr,
        )
    return code


def dry_run_text(nightly: Nightly) -> list[str]:
    out = []
    for line in nightly.dry_run_lines:
        collect = ", ".join(f"query_time={q}" for q in line.collect) or "nothing"
        out.append(f"{line.target.project}/{line.target.instance_name} {line.replica}: collect {collect}")
        out.extend(f"  download {f}" for f in line.download)
    return out


def finish(
    summary: RunSummary, settings: Settings, args: argparse.Namespace, *, shard: str | None, root_record: bool
) -> int:
    """Write the run's records and print the human summary; returns the exit code."""
    code = exit_code(summary)
    data = summary_dict(summary)
    if (root_record and summary.fatal is None) or summary.files:
        try:
            Archive(settings.archive.root).write_json_atomic(f"runs/{summary.run_id}.json", data)
        except HarvesterError as exc:
            print(f"harvester: error: could not write the run summary: {exc}", file=sys.stderr)
    if args.summary_json is not None:
        write_record("--summary-json", lambda: write_bytes_atomic(Path(args.summary_json), json_bytes(data)))
    metrics_file = getattr(args, "metrics_file", None)
    if metrics_file is not None:
        snapshot = metrics_snapshot(summary, code, shard)
        write_record("--metrics-file", lambda: write_metrics(Path(metrics_file), snapshot))
    print(render_text(summary))
    print(f"archive: {settings.archive.root}")
    report_problems(summary)
    return code


def json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def write_record(what: str, write: Callable[[], object]) -> None:
    """A summary or metrics file that cannot be written is reported, never a traceback, and
    never changes the run's exit code: the harvest itself already happened."""
    try:
        write()
    except (HarvesterError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"harvester: error: {what}: could not write it: {reason}", file=sys.stderr)


def metrics_snapshot(summary: RunSummary, code: int, shard: str | None) -> MetricsSnapshot:
    per: dict[str, ProjectCounts] = {}
    projects = {f.project for f in summary.files} | {i.project for i in summary.instances}
    for project in sorted(projects):
        files = [f for f in summary.files if f.project == project]
        per[project] = ProjectCounts(
            files_archived=sum(1 for f in files if f.outcome is Outcome.ARCHIVED),
            bytes_archived=sum(f.size for f in files if f.outcome is Outcome.ARCHIVED),
            files_failed=sum(1 for f in files if f.outcome in (Outcome.FAILED, Outcome.CANCELLED)),
            files_skipped=sum(1 for f in files if f.outcome is Outcome.PRESENT),
            retries=summary.retries_by_project.get(project, 0),
            instances_failed=sum(1 for i in summary.instances if i.project == project and not i.skipped),
            days_pending=sum(1 for f in files if f.outcome is Outcome.PENDING),
        )
    return MetricsSnapshot(
        started_at=summary.started_at,
        finished_at=summary.finished_at or datetime.now(UTC),
        exit_code=code,
        success=code == 0,
        shard=shard,
        per_project=per,
    )


def run_collect(args: argparse.Namespace, since: datetime | None, until: datetime | None) -> int:
    from harvester.incident import run_incident  # noqa: PLC0415

    return run_incident(args, since, until)


def run_checks(settings: Settings, *, owns_process: bool = False) -> int:
    """``validate --check``: probe the cloud (or the embedded emulator) and print PASS/FAIL lines."""
    from harvester import doctor  # noqa: PLC0415 - only for --check

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
