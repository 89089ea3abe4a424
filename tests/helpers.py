"""Shared helpers for the run tests: configs, credentials, the engine, the CLI and the emulator.

Everything talks to an emulator over real loopback HTTP. The in-process engine helper
(:func:`harvest`) is for tests that need the emulator's counters and knobs; the CLI helpers run
``python -m harvester.cli`` (or the ``harvester`` console script) as a child process, which may
talk to an in-process emulator (the test's event loop keeps serving while it awaits the child)
or to an emulator child process started with :func:`emulator_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import yaml

from harvester.app import new_run_id, open_engine
from harvester.commands.run import Nightly, NightlyOptions
from harvester.config.load import load_config
from harvester.config.schema import Settings
from harvester.emulator import Emulator
from harvester.errors import exit_code
from harvester.models import RunSummary
from tests.polling import eventually

REPO = Path(__file__).resolve().parents[1]
#: The test session's day, and its noon: a night simulated on the emulator's clock starts there
#: (``clock_start=NOON.timestamp()``), far from midnight, so no test straddles two days.
TODAY = datetime.now(UTC).date()
NOON = datetime.combine(TODAY, clock_time(12), tzinfo=UTC)


def day(n: int) -> date:
    """The day n days before TODAY (negative: after)."""
    return TODAY - timedelta(days=n)


#: The console script installed next to the interpreter running the tests.
HARVESTER_SCRIPT = Path(sys.executable).parent / "harvester"
MANIFEST = "manifest.jsonl"
SHA_LIST = "manifest-sha256.txt"
MANIFEST_KEYS = (
    "path",
    "size",
    "sha256",
    "project",
    "project_id",
    "region",
    "instance_id",
    "instance_name",
    "group_name",
    "replication_ip",
    "replication_id",
    "log_id",
    "log_date",
    "file_name",
    "downloaded_at",
    "link_expires_at",
    "attempts",
    "run_id",
    "mtime_ns",
)
#: (instance_id, group_name, replication_ip, log_date): what identifies a file in the archive.
Key = tuple[str, str, str, str]


# --------------------------------------------------------------------------- emulator coordinates


@dataclass(frozen=True, slots=True)
class EmuInfo:
    """How to reach an emulator and its test credentials, in-process or from a ready file."""

    dcs_endpoint: str
    iam_endpoint: str
    project_id: str
    access_key: str
    secret_key: str
    username: str
    password: str
    domain: str

    @classmethod
    def of(cls, emu: Emulator) -> EmuInfo:
        return cls.from_ready(emu.ready_info())

    @classmethod
    def from_ready(cls, info: Mapping[str, Any]) -> EmuInfo:
        return cls(
            dcs_endpoint=str(info["dcs_endpoint"]),
            iam_endpoint=str(info["iam_endpoint"]),
            project_id=str(info["project_id"]),
            access_key=str(info["access_key"]),
            secret_key=str(info["secret_key"]),
            username=str(info["username"]),
            password=str(info["password"]),
            domain=str(info["domain"]),
        )


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_data(
    emu: EmuInfo | Emulator, root: Path, *, auth: str = "aksk", extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A fast config for one emulated project: high request rate, 50 ms polls, loopback links."""
    info = emu if isinstance(emu, EmuInfo) else EmuInfo.of(emu)
    data: dict[str, Any] = {
        "archive": {"root": str(root)},
        "auth": {"method": auth},
        "projects": [
            {
                "name": "emulated",
                "region": "eu-de",
                "project_id": info.project_id,
                "endpoints": {"dcs": info.dcs_endpoint, "iam": info.iam_endpoint},
            }
        ],
        "limits": {"requests_per_second": 500, "api_concurrency": 16, "download_concurrency": 8},
        "collect": {"poll_interval": 0.05, "wait_timeout": 15},
        "download": {"allowed_hosts": ["127.0.0.1"], "stall_timeout": 10, "connect_timeout": 5},
    }
    return _merge(data, extra or {})


def write_config(
    path: Path,
    emu: EmuInfo | Emulator,
    root: Path,
    *,
    auth: str = "aksk",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`config_data` as YAML to ``path``; returns ``path``."""
    path.write_text(yaml.safe_dump(config_data(emu, root, auth=auth, extra=extra), sort_keys=False))
    return path


def cred_env(emu: EmuInfo | Emulator, *, auth: str = "aksk", secret_key: str | None = None) -> dict[str, str]:
    """The process environment without any OS_* variable, plus the emulator's credentials."""
    info = emu if isinstance(emu, EmuInfo) else EmuInfo.of(emu)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PYTHONPATH"] = str(REPO)
    if auth == "aksk":
        env["OS_ACCESS_KEY"] = info.access_key
        env["OS_SECRET_KEY"] = secret_key if secret_key is not None else info.secret_key
    elif auth == "password":
        env["OS_USERNAME"] = info.username
        env["OS_PASSWORD"] = info.password
        env["OS_USER_DOMAIN_NAME"] = info.domain
    return env


def settings_for(
    emu: EmuInfo | Emulator, tmp: Path, *, auth: str = "aksk", extra: Mapping[str, Any] | None = None
) -> Settings:
    """Load (through the real config loader) a config for ``emu`` archiving into ``tmp/archive``."""
    path = write_config(tmp / "harvester.yaml", emu, tmp / "archive", auth=auth, extra=extra)
    return load_config(path, cred_env(emu, auth=auth))


# --------------------------------------------------------------------------- the engine, in-process


async def harvest(
    settings: Settings, *, lock: bool = True, lock_timeout: float = 5.0, **options: Any
) -> RunSummary:
    """One nightly run through the real engine; ``options`` are :class:`NightlyOptions` fields."""
    run_id = new_run_id(datetime.now(UTC))
    async with open_engine(
        settings,
        run_id,
        progress=False,
        lock_name="run" if lock else None,
        lock_timeout=lock_timeout,
        read_only=bool(options.get("dry_run", False)),
    ) as engine:
        await Nightly(engine, NightlyOptions(**options)).run()
        summary = engine.summary
    summary.finished_at = datetime.now(UTC)
    return summary


async def night(settings: Settings, emu: Emulator, **options: Any) -> RunSummary:
    """One nightly run whose clock is the emulator's: move ``emu.clock`` to move both.

    Pair it with ``clock_start`` (a fixed emulator time) and password auth (AK/SK signatures
    carry real time, which a moved emulator clock would refuse).
    """
    async with open_engine(
        settings, new_run_id(emu.clock.now_dt()), progress=False, lock_name="run", lock_timeout=5.0
    ) as engine:
        engine.now = emu.clock.now_dt
        await Nightly(engine, NightlyOptions(**options)).run()
        summary = engine.summary
    summary.finished_at = emu.clock.now_dt()
    return summary


def code_of(summary: RunSummary) -> int:
    return exit_code(summary)


async def when(condition: Callable[[], bool], action: Callable[[], None], *, timeout: float = 30.0) -> None:
    """Poll ``condition`` every 5 ms and run ``action`` once it holds (a fault that heals itself).

    If it never holds, nothing happens: the test's own assertions say what went wrong.
    """
    try:
        await eventually(condition, what="the watched condition", timeout=timeout, every=0.005)
    except AssertionError:
        return
    action()


@contextlib.asynccontextmanager
async def background(coro: Awaitable[None]) -> AsyncIterator[None]:
    """Run ``coro`` alongside the block; cancelled when the block ends."""
    task = asyncio.ensure_future(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- child processes


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_command(*args: str | Path, script: bool = False) -> list[str]:
    """``python -m harvester.cli ARGS`` or, with ``script``, the installed ``harvester`` script."""
    head = [str(HARVESTER_SCRIPT)] if script else [sys.executable, "-m", "harvester.cli"]
    return [*head, *(str(a) for a in args)]


async def start(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *cmd,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> Result:
    """Wait for a child started with :func:`start`; kill it if it overruns."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"timed out after {timeout}s: {err.decode(errors='replace')[-2000:]}") from None
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Result:
    """Run any command to completion without blocking the event loop (in-process emulators serve on)."""
    return await finish(await start(cmd, env=env, cwd=cwd), timeout)


async def run_cli(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    script: bool = False,
) -> Result:
    """The harvester CLI as a child process."""
    return await run(cli_command(*args, script=script), env=env, cwd=cwd, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """Non-log lines of stderr (JSON log lines start with ``{``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.lstrip().startswith("{")]


@contextlib.asynccontextmanager
async def emulator_process(tmp: Path, *args: str) -> AsyncIterator[dict[str, Any]]:
    """``python -m harvester.emulator --port 0 --ready-file F ARGS``; yields its ready info."""
    ready = tmp / f"emulator-ready-{time.monotonic_ns()}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "harvester.emulator", "--port", "0", "--ready-file", str(ready), *args]
    proc = await start(cmd, env=env, cwd=tmp)
    try:
        await eventually(
            ready.exists,
            what="the emulator writing its ready file",
            stop=lambda: None if proc.returncode is None else f"the emulator exited ({proc.returncode})",
            every=0.02,
        )
        yield json.loads(ready.read_text())
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.communicate(), 10)
            except TimeoutError:
                proc.kill()
                await proc.communicate()


# --------------------------------------------------------------------------- the archive


def date_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _is_date(p.name)) if root.is_dir() else []


def _is_date(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return len(name) == 10


def manifest_lines(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every line of every date folder's manifest, parsed; a line that is not JSON fails the test."""
    out: dict[str, list[dict[str, Any]]] = {}
    for folder in date_folders(root):
        path = folder / MANIFEST
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        parsed = []
        for number, line in enumerate(lines, 1):
            try:
                value = json.loads(line)
            except ValueError:
                raise AssertionError(f"{path}:{number} is not JSON: {line[:200]!r}") from None
            assert isinstance(value, dict), f"{path}:{number} is not an object"
            parsed.append(value)
        out[folder.name] = parsed
    return out


def manifest_line_count(root: Path) -> int:
    """Complete lines in all date-folder manifests, without parsing: safe while a run appends."""
    total = 0
    for folder in date_folders(root):
        try:
            total += (folder / MANIFEST).read_bytes().count(b"\n")
        except FileNotFoundError:
            continue
    return total


def all_entries(root: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(folder, e) for folder, lines in manifest_lines(root).items() for e in lines]


def keys_of(root: Path) -> set[Key]:
    return {
        (e["instance_id"], e["group_name"], e["replication_ip"], e["log_date"]) for _, e in all_entries(root)
    }


def files_under(top: Path) -> list[Path]:
    """Every regular file and symlink below ``top``, recursively."""
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(top):
        out.extend(Path(dirpath, n) for n in names)
    return sorted(out)


def payload_files(root: Path) -> list[Path]:
    """Archived payloads: files in date folders that are not the manifests."""
    return [
        p
        for folder in date_folders(root)
        for p in files_under(folder)
        if p.name not in (MANIFEST, SHA_LIST, ".manifest.lock")
    ]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def sha256sum_check(root: Path) -> list[Result]:
    """``sha256sum -c manifest-sha256.txt`` in every date folder (the real coreutils tool)."""
    return [await run(["sha256sum", "--strict", "-c", SHA_LIST], cwd=folder) for folder in date_folders(root)]


def complete_days(today: date) -> list[str]:
    return [(today - timedelta(days=n)).isoformat() for n in range(1, 8)]


def expected_keys(emu: Emulator) -> set[Key]:
    """What a complete archive holds for an in-process emulator without quiet or failed days."""
    today = emu.clock.today()
    return {
        (inst.instance_id, r.group_name, r.ip, day)
        for inst in emu.fleet.instances
        if inst.collectable
        for r in inst.replicas
        for day in complete_days(today)
    }


def emulator_bytes(emu: Emulator) -> dict[str, bytes]:
    """What the emulator serves for each run-log id it ever created."""
    return {item.id: item.spec.read_all() for item in emu.runlog_items()}


def parse_prometheus(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A strict little parser of the Prometheus text format: name -> {sorted labels: value}.

    Fails (AssertionError) on a sample without HELP/TYPE, a malformed line or label set.
    """
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    typed: set[str] = set()
    helped: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("gauge", "counter", "untyped", "histogram", "summary"), line
            typed.add(name)
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        head, _, value = line.rpartition(" ")
        labels: tuple[tuple[str, str], ...] = ()
        name = head
        if "{" in head:
            name, _, rest = head.partition("{")
            assert rest.endswith("}"), line
            pairs = []
            for part in _split_labels(rest[:-1]):
                k, eq, v = part.partition("=")
                assert eq, line
                assert len(v) >= 2, line
                assert v[0] == v[-1] == '"', line
                pairs.append((k, v[1:-1]))
            labels = tuple(sorted(pairs))
        assert name.replace("_", "").replace(":", "").isalnum(), line
        assert name in typed, f"{name} has no TYPE"
        assert name in helped, f"{name} has no HELP"
        samples.setdefault(name, {})[labels] = float(value)
    return samples


def _split_labels(text: str) -> Iterator[str]:
    current = ""
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            yield current
            current = ""
            continue
        current += ch
    if current:
        yield current
