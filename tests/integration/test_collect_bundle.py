"""``harvester collect`` against the emulator: what one bundle holds, per instance and per replica."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from harvester.archive.verify import verify
from harvester.emulator import Emulator, Instance
from tests.collect_helpers import (
    BUNDLE_METADATA,
    bundle_files,
    collect_in_process,
    expected_logs,
    instance_folder,
    log_files,
    manifest_lines,
    projects_of,
    sha256_file,
    sha_list,
    tree_snapshot,
    write_config,
)
from tests.emulator_sigv import EmulatorApi


def _pick(emu: Emulator, cache_mode: str) -> Instance:
    """The first instance of a cache mode that can collect run logs."""
    return next(i for i in emu.fleet.find(cache_mode=cache_mode) if i.collectable)


def _config(tmp_path: Path, emu: Emulator) -> Path:
    return write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emu))


async def test_one_bundle_holds_single_ha_and_cluster(
    tmp_path: Path, emulator: Emulator, emulator_api: EmulatorApi
) -> None:
    """Each instance gets its API instance.json/groups.json, a slow log and every replica's log of today."""
    chosen = [_pick(emulator, m) for m in ("single", "ha", "cluster")]
    run = await collect_in_process(_config(tmp_path, emulator), [i.name for i in chosen])

    assert run.exit_code == 0, run.summary
    assert run.bundle.parent == run.root / "incidents"
    today = emulator.clock.today().isoformat()
    for inst in chosen:
        folder = instance_folder(run.bundle, "emulated", inst)
        shown = await emulator_api.call("GET", f"/instances/{inst.instance_id}")
        assert (folder / "instance.json").is_file()
        assert _json(folder / "instance.json") == shown.json
        if inst.cache_mode == "single":
            assert not (folder / "groups.json").exists()
        else:
            groups = await emulator_api.call(
                "GET", f"/v2/{emulator.project_id}/instance/{inst.instance_id}/groups"
            )
            assert _json(folder / "groups.json") == groups.json
            assert len(groups.json["group_list"]) == inst.sharding_count
        assert (folder / "slowlog.jsonl").is_file()
        assert log_files(folder) == expected_logs(inst, [today])
    assert len(chosen[2].replicas) > len(chosen[2].groups) > 1  # a real multi-shard cluster


async def test_manifest_covers_every_file_of_the_bundle(tmp_path: Path, emulator: Emulator) -> None:
    """manifest.jsonl and manifest-sha256.txt list every file of the bundle with its true digest."""
    chosen = [_pick(emulator, m) for m in ("single", "ha")]
    run = await collect_in_process(_config(tmp_path, emulator), [i.name for i in chosen])

    payload = bundle_files(run.bundle) - BUNDLE_METADATA
    digests = sha_list(run.bundle)
    assert set(digests) == payload
    assert {e["path"] for e in manifest_lines(run.bundle)} == payload
    for path, digest in digests.items():
        assert sha256_file(run.bundle / path) == digest, path
    for name in ("instance.json", "slowlog.jsonl"):
        assert sum(p.endswith("/" + name) for p in payload) == len(chosen)
    assert verify(run.root).clean


async def test_replica_master_limits_to_masters(tmp_path: Path, emulator: Emulator) -> None:
    """``--replica master`` collects and bundles only each shard's master."""
    ha, cluster = _pick(emulator, "ha"), _pick(emulator, "cluster")
    run = await collect_in_process(_config(tmp_path, emulator), [ha.name, cluster.name], replica="master")

    assert run.exit_code == 0, run.summary
    today = emulator.clock.today().isoformat()
    for inst in (ha, cluster):
        folder = instance_folder(run.bundle, "emulated", inst)
        assert log_files(folder) == expected_logs(inst, [today], masters_only=True)
    assert emulator.counters.collections == len(ha.groups) + len(cluster.groups)


async def test_replica_ip_limits_to_one(tmp_path: Path, emulator: Emulator) -> None:
    """``--replica <IP>`` collects and bundles that one replica's log only."""
    ha = _pick(emulator, "ha")
    slave = next(r for r in ha.replicas if r.role == "slave")
    run = await collect_in_process(_config(tmp_path, emulator), [ha.name], replica=slave.ip)

    assert run.exit_code == 0, run.summary
    today = emulator.clock.today().isoformat()
    folder = instance_folder(run.bundle, "emulated", ha)
    assert log_files(folder) == {f"{slave.group_name}/redis_{slave.ip}_{today}.log"}
    assert emulator.counters.collections == 1


async def test_replica_id_limits_to_one(tmp_path: Path, emulator: Emulator) -> None:
    """``--replica <REPLICATION_ID>`` picks the replica of a cluster shard with that id."""
    cluster = _pick(emulator, "cluster")
    target = cluster.groups[-1].replicas[-1]
    run = await collect_in_process(_config(tmp_path, emulator), [cluster.name], replica=target.replication_id)

    today = emulator.clock.today().isoformat()
    folder = instance_folder(run.bundle, "emulated", cluster)
    assert log_files(folder) == {f"{target.group_name}/redis_{target.ip}_{today}.log"}
    assert emulator.counters.collections == 1


async def test_replica_matching_nothing_is_reported(tmp_path: Path, emulator: Emulator) -> None:
    """A ``--replica`` that names no replica of an instance is reported for it, with nothing collected."""
    ha = _pick(emulator, "ha")
    run = await collect_in_process(_config(tmp_path, emulator), [ha.name], replica="10.99.99.99")

    assert run.exit_code == 3
    (problem,) = run.summary.instances
    assert "10.99.99.99" in problem.reason
    assert ha.name in problem.instance
    assert emulator.counters.collections == 0


async def test_days_one_collects_yesterday_and_today(tmp_path: Path, emulator: Emulator) -> None:
    """``--days 1`` bundles yesterday's log and today's (today is always included) for every replica."""
    ha = _pick(emulator, "ha")
    run = await collect_in_process(_config(tmp_path, emulator), [ha.name], days=1)

    today = emulator.clock.today()
    days = [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    assert log_files(instance_folder(run.bundle, "emulated", ha)) == expected_logs(ha, days)
    assert run.exit_code == 0, run.summary


async def test_collect_never_touches_the_nightly_archive(tmp_path: Path, emulator: Emulator) -> None:
    """Collecting past days writes only below incidents/: date folders and run records stay as they were."""
    root = tmp_path / "archive"
    yesterday = (emulator.clock.today() - timedelta(days=1)).isoformat()
    (root / yesterday / "emulated").mkdir(parents=True)
    (root / yesterday / "emulated" / "old.log").write_bytes(b"nightly bytes\n")
    (root / yesterday / "manifest.jsonl").write_bytes(b"")
    (root / "runs").mkdir()
    (root / "runs" / "earlier.json").write_text("{}\n")
    before = tree_snapshot(root)
    top_before = sorted(p.name for p in root.iterdir())

    ha = _pick(emulator, "ha")
    run = await collect_in_process(_config(tmp_path, emulator), [ha.name], days=3)

    assert run.bundle.is_dir()
    after = tree_snapshot(root)
    assert after.pop(".harvester-archive", None) is not None  # the root is marked on first use
    assert after == before
    assert sorted(p.name for p in root.iterdir()) == sorted([*top_before, "incidents", ".harvester-archive"])


def _json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))
