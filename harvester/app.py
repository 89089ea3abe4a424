"""Startup wiring for every command that talks to the cloud: one run, opened in a fixed order.

config -> credentials -> authenticators -> transport -> engine: :func:`prepare` loads the config
and makes every secret unloggable; :func:`open_engine` starts the embedded emulator when the
config has an ``emulator:`` block, claims the archive (ours alone, writable), takes the run
lock and sweeps what a crashed run left, opens the transport, learns project ids from IAM,
builds one authenticator per project and yields a ready :class:`~harvester.engine.Engine`.

Signals: :class:`SignalWatch` and :func:`cancelled_by_signals` turn SIGINT/SIGTERM into a clean
cancellation of the root scope, and :func:`guarded`/:func:`execute` run a command's work under
them, so the command can still write its records. This is the one place outside
:mod:`harvester.engine` that owns a scope over the whole run (a cancel scope, not a task group:
the engine's pool is still the only task group).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any

import anyio
import structlog

from harvester import eventloop, heap
from harvester import log as logsetup
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.store import Archive
from harvester.cloud.auth import AkSkAuth, Authenticator, StaticTokenAuth
from harvester.cloud.iam import Iam, IamUser, PasswordAuth
from harvester.cloud.retry import call_with_retry
from harvester.cloud.transport import Transport
from harvester.config.emulated import apply_emulator
from harvester.config.load import load_config
from harvester.config.schema import Credentials, Settings
from harvester.engine import Engine
from harvester.engine.core import log_retry, retry_policy
from harvester.errors import AuthError, ConfigError, HarvesterError, UsageError, expected_failure
from harvester.models import RunSummary
from harvester.progress import bars_wanted, make_progress

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


def iam_user(auth: Credentials) -> IamUser | None:
    """The IAM user of password credentials; None while one of its three parts is missing."""
    if auth.username is None or auth.password is None or auth.domain is None:
        return None
    return IamUser(auth.username, auth.password, auth.domain)


def signer(auth: Credentials, project_id: str | None) -> Authenticator | None:
    """The authenticator that needs no login (AK/SK, or a given token); None for password auth
    or when its credential is missing."""
    if auth.method == "aksk" and auth.access_key is not None and auth.secret_key is not None:
        return AkSkAuth(auth.access_key.reveal(), auth.secret_key, project_id=project_id)
    if auth.method == "token" and auth.token is not None:
        return StaticTokenAuth(auth.token)
    return None


_MISSING = {
    "aksk": "auth: access key and secret key are required for method aksk",
    "token": "auth: a token is required for method token",
    "password": "auth: username, password and domain are required for method password",
}


def authenticators(settings: Settings, transport: Transport) -> dict[str, Authenticator]:
    """One authenticator per project: a token is scoped to its project, AK/SK signs anything."""
    auth = settings.credentials
    out: dict[str, Authenticator] = {}
    for project in settings.projects:
        if auth.method == "password":
            user = iam_user(auth)
            if user is None:
                raise ConfigError(_MISSING["password"])
            iam = Iam(transport, project.iam_endpoint, user)
            out[project.name] = PasswordAuth.from_login(
                iam.login(project_id=project.project_id, project_name=project.project_name)
            )
        else:
            found = signer(auth, project.project_id)
            if found is None:
                raise ConfigError(_MISSING[auth.method])
            out[project.name] = found
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
    full_check: bool = False,
) -> AsyncIterator[Engine]:
    """Start what the config asks for and yield a ready engine; closes all of it afterwards.

    ``full_check``: the start-up sweep and reconciliation look at every folder, not only those
    that can have changed since the last run (``run --full-check``, ``verify --repair``).
    """
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
            # Both look only where something can have changed since the last run (records in
            # .state/), so start-up costs the same after a year of nights as after one.
            sweep = functools.partial(archive.remove_orphans, full=full_check)
            removed = await anyio.to_thread.run_sync(sweep)
            if removed:
                log.info("harvest.orphans_removed", count=removed)
            await ManifestWriter(archive).reconcile_all(full=full_check)
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
    user = iam_user(settings.credentials)
    if user is None:  # config.load checks this
        raise ConfigError("projects: project_name needs auth.method password (username, password, domain)")
    policy = retry_policy(settings.limits)

    resolved = []
    for project in settings.projects:
        if project.project_id is None and project.project_name is not None:
            name, iam = project.project_name, Iam(transport, project.iam_endpoint, user)
            project_id = await call_with_retry(
                functools.partial(iam.project_id, name),
                what=f"resolve project {name!r}",
                policy=policy,
                on_retry=log_retry,
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

    This watcher is the one allowed exception to "only :mod:`harvester.engine` manages
    concurrency": it owns the root scope of a command, so a signal cancels everything below
    it. It opens no task group (the engine's pool stays the only one).
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
    full_check: bool = False,
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
            full_check=full_check,
        ) as engine:
            box["summary"] = engine.summary
            if owns_process(args):
                heap.settle()  # the start-up heap (config, archive index) lives as long as we do
            await work(engine)

    async def main() -> None:
        await guarded(lambda: box["summary"], body, watch)

    with structlog.contextvars.bound_contextvars(run_id=run_id):
        anyio.run(main, backend_options=eventloop.backend_options())
    summary = box["summary"]
    summary.finished_at = datetime.now(UTC)
    return summary


def owns_process(args: argparse.Namespace) -> bool:
    """Whether this command is the whole process (console script), not a call inside one."""
    return bool(getattr(args, "owns_process", False))
