"""Shared pieces of the ``harvester collect`` tests: configs, runs, bundle readers, subprocesses.

In-process runs (:func:`collect_in_process`) drive :class:`harvester.commands.collect.Incident` with a
real engine over loopback HTTP; CLI runs (:func:`run_cli`) start ``python -m harvester.cli`` as
a subprocess against an emulator that is itself a subprocess (:func:`emulator_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp

from harvester.app import new_run_id, open_engine
from harvester.commands.collect import Incident, IncidentOptions, bundle_name
from harvester.config.load import load_config
from harvester.emulator import Clock, Counters, Emulator, EmulatorConfig, FleetConfig, Instance, build_fleet
from harvester.emulator.runlogs import RunlogStore
from harvester.errors import exit_code
from harvester.models import RunSummary
from tests import helpers
from tests.emulator_sigv import sign

REPO = Path(__file__).resolve().parents[1]
EMULATOR_AK = "EMULATORAK0000000000"
EMULATOR_SK = "EMULATORSK00000000000000000000000000000000"
#: Files every bundle holds at its top level that no manifest can list (they describe it).
BUNDLE_METADATA = frozenset({"manifest.jsonl", "manifest-sha256.txt", "summary.json"})


@dataclass(frozen=True, slots=True)
class ProjectEndpoint:
    """One ``projects[]`` entry of a test config: a config label pointing at an emulated project."""

    name: str
    project_id: str
    dcs_endpoint: str

    @property
    def iam_endpoint(self) -> str:
        return self.dcs_endpoint + "/v3"


def projects_of(emu: Emulator, name: str = "emulated") -> list[ProjectEndpoint]:
    """The emulator's first project under the label ``name``."""
    return [ProjectEndpoint(name, emu.project_id, emu.dcs_endpoint)]


def write_config(
    path: Path, root: Path, projects: Sequence[ProjectEndpoint], *, wait_timeout: float = 20.0
) -> Path:
    """A harvester YAML config for the emulator: fast polling, a generous rate limit."""
    lines = [
        "archive:",
        f"  root: {json.dumps(str(root))}",
        "auth:",
        "  method: aksk",
        "projects:",
    ]
    for p in projects:
        lines += [
            f"  - name: {p.name}",
            "    region: eu-de",
            f"    project_id: {p.project_id}",
            "    endpoints:",
            f"      dcs: {p.dcs_endpoint}",
            f"      iam: {p.iam_endpoint}",
        ]
    lines += [
        f"collect: {{poll_interval: 0.05, wait_timeout: {wait_timeout}}}",
        "limits: {requests_per_second: 500}",
        "download:",
        '  allowed_hosts: ["127.0.0.1"]',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def credentials_env(access_key: str = EMULATOR_AK, secret_key: str = EMULATOR_SK) -> dict[str, str]:
    return {"OS_ACCESS_KEY": access_key, "OS_SECRET_KEY": secret_key}


# --------------------------------------------------------------------------- in-process runs


@dataclass(frozen=True, slots=True)
class CollectRun:
    """What one in-process ``collect`` left behind."""

    summary: RunSummary
    root: Path
    bundle: Path

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary)


async def collect_in_process(
    config: Path,
    instances: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    days: int = 0,
    replica: str = "all",
    slowlog: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    label: str = "incident",
) -> CollectRun:
    """Run :class:`Incident` the way ``harvester collect`` does, minus argument parsing."""
    settings = load_config(config, credentials_env() if env is None else env)
    started = datetime.now(UTC)
    bundle = bundle_name(started, label)
    options = IncidentOptions(
        only=tuple(instances), days=days, replica=replica, slowlog=slowlog, since=since, until=until
    )
    async with open_engine(
        settings, new_run_id(started), progress=False, lock_name=None, lock_timeout=5.0
    ) as engine:
        incident = Incident(engine, options, bundle)
        await incident.run()
    root = settings.archive.root
    return CollectRun(engine.summary, root, root / incident.bundle)


# --------------------------------------------------------------------------- reading bundles


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_files(bundle: Path) -> set[str]:
    """Every regular file below ``bundle`` (POSIX relative paths), hidden lock files excepted."""
    return {
        p.relative_to(bundle).as_posix()
        for p in bundle.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def sha_list(bundle: Path) -> dict[str, str]:
    """``manifest-sha256.txt`` as {path: hex digest}."""
    out: dict[str, str] = {}
    for line in (bundle / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines():
        digest, _, path = line.partition("  ")
        out[path] = digest
    return out


def manifest_lines(bundle: Path) -> list[dict[str, Any]]:
    text = (bundle / "manifest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def instance_folder(bundle: Path, project: str, inst: Instance) -> Path:
    """``<bundle>/<project>/<instance name>-<id8>``."""
    return bundle / project / f"{inst.name}-{inst.instance_id[:8]}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def log_files(folder: Path) -> set[str]:
    """``<group>/<file>`` of every run log below an instance folder."""
    return {p.relative_to(folder).as_posix() for p in folder.glob("*/*.log")}


def expected_logs(inst: Instance, days: Sequence[str], *, masters_only: bool = False) -> set[str]:
    """The run-log files an instance folder should hold: one per replica and day."""
    return {
        f"{r.group_name}/redis_{r.ip}_{day}.log"
        for r in inst.replicas
        if not masters_only or r.role == "master"
        for day in days
    }


def tree_snapshot(root: Path, *, skip: str = "incidents") -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` outside ``skip``."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != skip
    }


def logs_every_day(inst: Instance, seed: int, days: Sequence[date]) -> bool:
    """Whether, with the emulator's default quiet rate, some replica of ``inst`` has a log each day.

    A quiet Redis writes no log some days; an instance all of whose replicas are quiet makes
    ``collect`` wait for ``wait_timeout`` and fail, so tests against a stock emulator avoid it.
    """
    store = RunlogStore(EmulatorConfig(seed=seed), Clock(), Counters())
    return all(any(not store.is_quiet(r, day) for r in inst.replicas) for day in days)


def colliding_seeds(instances: int) -> tuple[int, int, str]:
    """Two emulator seeds whose fleets share an instance name (the ids differ): ``(a, b, name)``."""

    def names(seed: int) -> set[str]:
        return {i.name for i in build_fleet(FleetConfig(instances=instances, seed=seed)).instances}

    names_a = names(1)
    for seed in range(2, 200):
        shared = names_a & names(seed)
        if shared:
            return 1, seed, min(shared)
    raise AssertionError("no two seeds share an instance name")  # pragma: no cover


# --------------------------------------------------------------------------- subprocesses


@dataclass(frozen=True, slots=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PYTEST"))}
    env["PYTHONPATH"] = str(REPO)
    return {**env, **(extra or {})}


async def run_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60.0) -> CliResult:
    """``python -m harvester.cli ARGS`` to completion."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harvester.cli",
        *args,
        cwd=cwd,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@contextlib.asynccontextmanager
async def emulator_process(workdir: Path, *args: str) -> AsyncIterator[dict[str, Any]]:
    """A fast-collecting emulator child process in ``workdir``; yields its ready file."""
    workdir.mkdir(parents=True, exist_ok=True)
    async with helpers.emulator_process(workdir, "--collect-delay", "0.05", *args) as info:
        yield info


def ready_project(info: Mapping[str, Any], name: str = "emulated") -> ProjectEndpoint:
    return ProjectEndpoint(name, str(info["project_id"]), str(info["dcs_endpoint"]))


async def emulator_get(info: Mapping[str, Any], path: str, **params: str) -> tuple[int, Any]:
    """A signed ``GET {dcs}/v2/{project}{path}`` against an emulator process: (status, JSON or None)."""
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    url = f"{info['dcs_endpoint']}/v2/{info['project_id']}{path}" + (f"?{query}" if query else "")
    headers = sign("GET", url, str(info["access_key"]), str(info["secret_key"]))
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


async def listed_runlogs(info: Mapping[str, Any], instance_id: str) -> list[dict[str, Any]]:
    """Every run-log item the emulator lists for an instance (one page of up to 1000)."""
    status, body = await emulator_get(
        info, f"/instances/{instance_id}/redislog", log_type="run", offset="0", limit="1000"
    )
    assert status in (200, 204), status
    return [] if body is None else list(body["file_list"])
