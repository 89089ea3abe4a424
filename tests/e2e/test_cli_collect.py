"""``harvester collect`` as a subprocess against the emulator as a subprocess: exit codes and files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tarfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harvester.emulator import FleetConfig, Instance, build_fleet
from tests.collect_helpers import (
    BUNDLE_METADATA,
    CliResult,
    bundle_files,
    colliding_seeds,
    credentials_env,
    emulator_process,
    instance_folder,
    listed_runlogs,
    log_files,
    logs_every_day,
    ready_project,
    run_cli,
    sha256_file,
    sha_list,
    subprocess_env,
    tree_snapshot,
    write_config,
)

SEED = 1
INSTANCES = 12
_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Cloud:
    """One emulator process, the fleet it serves, and a config pointing at it."""

    info: dict[str, Any]
    fleet: tuple[Instance, ...]
    config: Path
    root: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        return subprocess_env(credentials_env(self.info["access_key"], self.info["secret_key"]))

    def pick(self, cache_mode: str, *, days: int = 0) -> Instance:
        """A usable instance of that mode that has a log on each of the last ``days`` days and today."""
        today = datetime.now(UTC).date()
        wanted = [today - timedelta(days=n) for n in range(days + 1)]
        return next(
            i
            for i in self.fleet
            if i.cache_mode == cache_mode and i.collectable and logs_every_day(i, SEED, wanted)
        )

    async def collect(self, *args: str) -> CliResult:
        return await run_cli(
            "collect", "--config", str(self.config), "--no-progress", *args, env=self.env, cwd=self.workdir
        )


def _fleet(seed: int) -> tuple[Instance, ...]:
    return build_fleet(FleetConfig(instances=INSTANCES, seed=seed)).instances


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    """An emulator process (12 instances, seed 1, 4 KiB logs) and a config for it."""
    emu_dir = tmp_path / "emulator"
    args = ("--instances", str(INSTANCES), "--seed", str(SEED), "--log-size", "4096")
    async with emulator_process(emu_dir, *args) as info:
        root = tmp_path / "archive"
        config = write_config(tmp_path / "harvester.yaml", root, [ready_project(info)])
        yield Cloud(info, _fleet(SEED), config, root, tmp_path)


def _instance_args(instances: Sequence[Instance]) -> list[str]:
    return [arg for i in instances for arg in ("--instance", i.name)]


async def _expected_files(cloud: Cloud, inst: Instance) -> set[str]:
    """``<group>/<file>`` of every ready item the emulator lists for an instance."""
    items = await listed_runlogs(cloud.info, inst.instance_id)
    return {f"{i['group_name']}/{i['file_name']}" for i in items if i["status"] == "succeed"}


async def _nothing_collected(info: dict[str, Any], instances: Sequence[Instance]) -> None:
    for inst in instances:
        assert await listed_runlogs(info, inst.instance_id) == [], inst.name


def _summary(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "summary.json").read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- a bundle and its tarball


async def test_bundle_path_is_the_last_line_and_holds_every_replica(cloud: Cloud) -> None:
    """The bundle path is stdout's last line; it holds each instance's metadata and every replica's log."""
    chosen = [cloud.pick(m) for m in ("single", "ha", "cluster")]
    result = await cloud.collect(*_instance_args(chosen), "--label", "db outage/eu")

    assert result.returncode == 0, result.stderr
    bundle = Path(result.last_line)
    assert bundle.is_dir()
    assert bundle.parent == cloud.root / "incidents"
    assert re.fullmatch(r"\d{8}T\d{6}Z-db outage_eu", bundle.name)
    for inst in chosen:
        folder = instance_folder(bundle, "emulated", inst)
        expected = await _expected_files(cloud, inst)
        assert expected
        assert log_files(folder) == expected
        assert json.loads((folder / "instance.json").read_text())["instance_id"] == inst.instance_id
        assert (folder / "groups.json").is_file() == (inst.cache_mode != "single")
        assert (folder / "slowlog.jsonl").is_file()
    summary = _summary(bundle)
    assert summary["exit_code"] == 0
    assert summary["bundle"] == str(bundle)
    assert summary["totals"]["downloaded"] == sum(
        len(log_files(instance_folder(bundle, "emulated", i))) for i in chosen
    )


async def test_tarball_matches_the_bundle_and_its_checksums(cloud: Cloud) -> None:
    """``--tar`` writes <bundle>.tar.gz holding exactly the bundle's files, with the manifest's digests."""
    chosen = [cloud.pick(m) for m in ("single", "ha", "cluster")]
    result = await cloud.collect(*_instance_args(chosen), "--tar")

    assert result.returncode == 0, result.stderr
    bundle = Path(result.last_line)
    tarball = bundle.with_name(bundle.name + ".tar.gz")
    assert f"tarball: {tarball}" in result.stdout.splitlines()
    files = bundle_files(bundle)
    digests = sha_list(bundle)
    assert set(digests) == files - BUNDLE_METADATA
    with tarfile.open(tarball, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        assert set(members) == {f"{bundle.name}/{p}" for p in files}
        for name, member in members.items():
            rel = name.split("/", 1)[1]
            extracted = tar.extractfile(member)
            assert extracted is not None
            data = extracted.read()
            assert hashlib.sha256(data).hexdigest() == sha256_file(bundle / rel), rel
            if rel not in BUNDLE_METADATA:
                assert hashlib.sha256(data).hexdigest() == digests[rel], rel

    check = await asyncio.create_subprocess_exec(
        "sha256sum", "--strict", "-c", "manifest-sha256.txt", cwd=bundle, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await check.communicate()
    assert check.returncode == 0, out.decode()
    assert out.decode().count(": OK") == len(digests)


async def test_verify_is_clean_after_collect(cloud: Cloud) -> None:
    """``harvester verify <root>`` finds nothing missing, corrupt or extra after a plain collect."""
    result = await cloud.collect("--instance", cloud.pick("ha").name)
    assert result.returncode == 0, result.stderr

    verified = await run_cli("verify", str(cloud.root), env=cloud.env, cwd=cloud.workdir)
    assert verified.returncode == 0, verified.stdout
    assert "0 missing, 0 corrupt, 0 extra" in verified.stdout


async def test_verify_is_clean_after_collect_with_tar(cloud: Cloud) -> None:
    """``harvester verify <root>`` stays clean when the bundle was also written as a tarball."""
    result = await cloud.collect("--instance", cloud.pick("ha").name, "--tar")
    assert result.returncode == 0, result.stderr

    verified = await run_cli("verify", str(cloud.root), env=cloud.env, cwd=cloud.workdir)
    assert verified.returncode == 0, verified.stdout
    assert "0 missing, 0 corrupt, 0 extra" in verified.stdout


async def test_no_slowlog_flag_leaves_it_out(cloud: Cloud) -> None:
    """``--no-slowlog`` writes no slowlog.jsonl."""
    result = await cloud.collect("--instance", cloud.pick("cluster").name, "--no-slowlog")

    assert result.returncode == 0, result.stderr
    assert not any(p.endswith("slowlog.jsonl") for p in bundle_files(Path(result.last_line)))


# --------------------------------------------------------------------------- days and the nightly archive


async def test_days_one_leaves_the_nightly_archive_alone(cloud: Cloud) -> None:
    """``--days 1`` bundles yesterday's logs and creates or changes no date folder of the archive."""
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    nightly = cloud.root / yesterday / "emulated"
    nightly.mkdir(parents=True)
    (nightly / "kept.log").write_bytes(b"archived by the nightly run\n")
    before = tree_snapshot(cloud.root)
    ha = cloud.pick("ha", days=1)

    result = await cloud.collect("--instance", ha.name, "--days", "1")

    assert result.returncode == 0, result.stderr
    bundle = Path(result.last_line)
    files = log_files(instance_folder(bundle, "emulated", ha))
    days = {f.rsplit("_", 1)[1].removesuffix(".log") for f in files}
    assert yesterday in days
    assert days <= {yesterday, today.isoformat()}
    after = tree_snapshot(cloud.root)
    assert after.pop(".harvester-archive", None) is not None  # the root is marked on first use
    assert after == before
    dated = sorted(p.name for p in cloud.root.iterdir() if _DATE_NAME.fullmatch(p.name))
    assert dated == [yesterday]
    assert not (cloud.root / "runs").exists()


# --------------------------------------------------------------------------- usage errors (exit 2)


async def test_ambiguous_name_is_exit_2_before_collecting(tmp_path: Path) -> None:
    """A name two projects share: exit 2, one stderr line naming both ids, nothing collected."""
    seed_a, seed_b, name = colliding_seeds(INSTANCES)
    base = ("--instances", str(INSTANCES), "--log-size", "4096")
    async with (
        emulator_process(tmp_path / "a", *base, "--seed", str(seed_a)) as a,
        emulator_process(tmp_path / "b", *base, "--seed", str(seed_b)) as b,
    ):
        projects = [ready_project(a, "alpha"), ready_project(b, "beta")]
        config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects)
        (ia,) = (i for i in _fleet(seed_a) if i.name == name)
        (ib,) = (i for i in _fleet(seed_b) if i.name == name)
        env = subprocess_env(credentials_env(a["access_key"], a["secret_key"]))

        result = await run_cli("collect", "--config", str(config), "--instance", name, env=env, cwd=tmp_path)

        assert result.returncode == 2
        assert len(result.stderr_lines) == 1, result.stderr
        line = result.stderr_lines[0]
        assert name in line
        assert ia.instance_id in line
        assert ib.instance_id in line
        assert result.stdout == ""
        assert not (tmp_path / "archive" / "incidents").exists()
        await _nothing_collected(a, [ia])
        await _nothing_collected(b, [ib])


async def test_unknown_name_is_exit_2_with_candidates(cloud: Cloud) -> None:
    """A name matching nothing: exit 2, one stderr line listing similar names, nothing collected."""
    good = cloud.pick("ha")
    prod = sorted(i.name for i in cloud.fleet if i.name.startswith("redis-prod-"))

    result = await cloud.collect("--instance", good.name, "--instance", "redis-prod")

    assert result.returncode == 2
    assert len(result.stderr_lines) == 1, result.stderr
    for name in prod:
        assert name in result.stderr_lines[0]
    assert not (cloud.root / "incidents").exists()
    await _nothing_collected(cloud.info, [good])


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "2030-01-02T00:00:00", "--until", "2030-01-01T00:00:00"),
        ("--since", "2030-01-01T00:00:00Z", "--until", "2030-01-01T00:00:00Z"),
        ("--since", "yesterday"),
        ("--since", "2030-01-01T00:00:00Z"),
        ("--days", "2"),
        ("--replica",),
    ],
)
async def test_bad_arguments_are_exit_2_before_collecting(cloud: Cloud, args: tuple[str, ...]) -> None:
    """``--since`` not before ``--until``, unreadable times or bad flags: exit 2, one line, nothing done."""
    ha = cloud.pick("ha")
    result = await cloud.collect("--instance", ha.name, *args)

    assert result.returncode == 2
    assert len(result.stderr_lines) == 1, result.stderr
    assert not (cloud.root / "incidents").exists()
    await _nothing_collected(cloud.info, [ha])


# --------------------------------------------------------------------------- unusable instances


def _unusable(cloud: Cloud) -> tuple[Instance, Instance]:
    not_running = next(i for i in cloud.fleet if i.status != "RUNNING")
    old = next(i for i in cloud.fleet if i.engine_version == "3.0" and i.status == "RUNNING")
    return not_running, old


async def test_unusable_instance_beside_a_good_one_is_exit_1(cloud: Cloud) -> None:
    """A stopped and a Redis 3.0 instance are reported in summary.json; the good one is bundled; exit 1."""
    not_running, old = _unusable(cloud)
    good = cloud.pick("single")

    result = await cloud.collect(*_instance_args([not_running, old, good]))

    bundle = Path(result.last_line)
    assert log_files(instance_folder(bundle, "emulated", good)) == await _expected_files(cloud, good)
    problems = _summary(bundle)["instance_problems"]
    assert len(problems) == 2
    reasons = {p["instance"]: p["reason"] for p in problems}
    assert any(not_running.instance_id in i and not_running.status in r for i, r in reasons.items())
    assert any(old.instance_id in i and "3.0" in r for i, r in reasons.items())
    assert result.returncode == 1


async def test_only_unusable_instances_is_exit_3(cloud: Cloud) -> None:
    """When no named instance can be collected from, nothing could be done: exit 3 with the reasons."""
    not_running, old = _unusable(cloud)

    result = await cloud.collect(*_instance_args([not_running, old]))

    assert not_running.name in result.stdout
    assert result.returncode == 3


async def test_refused_credentials_are_exit_3(cloud: Cloud) -> None:
    """Credentials the cloud refuses stop the collection with exit 3 and say so on stderr."""
    env = {**cloud.env, "OS_SECRET_KEY": "WRONG" + cloud.info["secret_key"][5:]}
    ha = cloud.pick("ha")

    result = await run_cli(
        "collect", "--config", str(cloud.config), "--instance", ha.name, env=env, cwd=cloud.workdir
    )

    assert result.returncode == 3
    assert "harvester: error: authentication refused" in result.stderr
    assert "WRONG" not in result.stderr + result.stdout
    await _nothing_collected(cloud.info, [ha])
