"""Running it like infrastructure: ``--shard K/N`` side by side on one archive, and run locks.

Shards run as concurrent child processes against one emulator process and one archive root;
their union must equal an unsharded run. A second run of the same shard waits
``--lock-timeout`` and gives up with exit 3; a lock left behind by a SIGKILLed run is taken over.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from harvester.plan import in_shard
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    EmuInfo,
    all_entries,
    cli_command,
    cred_env,
    emulator_process,
    error_lines,
    expected_keys,
    files_under,
    finish,
    keys_of,
    manifest_lines,
    parse_prometheus,
    run_cli,
    sha256sum_check,
    start,
    write_config,
)
from tests.polling import eventually

QUIET = ("--no-progress", "--log-format", "json")
# Seed 10 with 9 instances: all three shards hold instances and no collected file is "failed".
FLEET = ("--instances", "9", "--seed", "10", "--log-size", "16384", "--collect-delay", "0.05")


async def test_three_concurrent_shards_archive_what_one_unsharded_run_does(tmp_path: Path) -> None:
    """Shards 0/3, 1/3, 2/3 at once on one root: their union equals an unsharded run, manifests intact."""
    # The reference runs against a twin emulator (same seed: same fleet, same quiet days): a fresh
    # archive against a cloud whose logs another run already collected would re-collect quiet days.
    async with emulator_process(tmp_path, *FLEET) as shared, emulator_process(tmp_path, *FLEET) as twin:
        info, twin_info = EmuInfo.from_ready(shared), EmuInfo.from_ready(twin)
        assert info.project_id == twin_info.project_id
        sharded = tmp_path / "sharded"
        reference = tmp_path / "reference"
        config = write_config(tmp_path / "sharded.yaml", info, sharded)
        ref_config = write_config(tmp_path / "reference.yaml", twin_info, reference)
        env = cred_env(info)
        runs = [
            run_cli(
                "run",
                "--config",
                config,
                *QUIET,
                "--shard",
                f"{k}/3",
                "--summary-json",
                tmp_path / f"shard-{k}.json",
                "--metrics-file",
                tmp_path / f"shard-{k}.prom",
                env=env,
            )
            for k in range(3)
        ]
        runs.append(run_cli("run", "--config", ref_config, *QUIET, env=cred_env(twin_info)))
        results = await asyncio.gather(*runs)

    assert [r.code for r in results] == [0, 0, 0, 0], [r.output[-2000:] for r in results if r.code]
    summaries = [json.loads((tmp_path / f"shard-{k}.json").read_text()) for k in range(3)]
    instance_sets = [{i["instance_id"] for i in s["instances"]} for s in summaries]
    assert all(instance_sets), "a shard had nothing to do: the fleet does not exercise sharding"
    assert sum(len(s) for s in instance_sets) == len(set().union(*instance_sets)), "an instance in two shards"

    wanted = keys_of(reference)
    assert len(wanted) > 100
    assert keys_of(sharded) == wanted
    lines = manifest_lines(sharded)  # every line parses as one JSON object: none torn or interleaved
    assert sum(len(v) for v in lines.values()) == sum(s["totals"]["downloaded"] for s in summaries)
    for folder, entries in lines.items():
        paths = [e["path"] for e in entries]
        assert len(paths) == len(set(paths)), f"{folder}: a path is listed twice"
    assert {e["instance_id"] for _, e in all_entries(sharded)} == set().union(*instance_sets)

    verified = await run_cli("verify", sharded)
    assert verified.code == 0, verified.output
    assert all(c.code == 0 for c in await sha256sum_check(sharded))
    for k in range(3):
        metrics = parse_prometheus((tmp_path / f"shard-{k}.prom").read_text())
        assert metrics["dcs_harvester_last_exit_code"] == {(("shard", f"{k}/3"),): 0}
        archived = metrics["dcs_harvester_files_archived"]
        assert archived == {
            (("project", "emulated"), ("shard", f"{k}/3")): summaries[k]["totals"]["downloaded"]
        }


async def test_same_shard_twice_waits_for_the_lock_then_exits_3_and_a_killed_holder_is_taken_over(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A busy shard: a second run exits 3 after --lock-timeout; once the holder is SIGKILLed a rerun works."""
    emu = await emulator_factory(instances=6, seed=8, healthy=True)
    k = next(
        k for k in range(2) if any(in_shard(emu.project_id, i.instance_id, k, 2) for i in emu.fleet.instances)
    )
    shard = f"{k}/2"
    config = write_config(tmp_path / "harvester.yaml", emu, tmp_path / "archive")
    lock = tmp_path / "archive" / ".locks" / f"run-shard-{k}-of-2.lock"
    emu.faults.links.latency_ms = 600_000  # the first run sits on its lock, asking for links, until killed

    first = await start(cli_command("run", "--config", config, *QUIET, "--shard", shard), env=cred_env(emu))
    await eventually(
        lambda: emu.counters.requests["links"] > 0,
        what="the first run asking for a link",
        stop=lambda: None if first.returncode is None else "the first run ended early",
        every=0.02,
    )
    holder = json.loads(lock.read_text())
    assert holder["pid"] == first.pid

    started = time.monotonic()
    second = await run_cli(
        "run", "--config", config, *QUIET, "--shard", shard, "--lock-timeout", "1", env=cred_env(emu)
    )
    waited = time.monotonic() - started

    assert second.code == 3, second.output
    assert waited >= 1.0
    lines = error_lines(second.stderr)
    assert len(lines) == 1, second.stderr
    assert "another harvester run holds" in lines[0]
    assert f"pid {first.pid}" in lines[0]
    assert "Traceback" not in second.output

    first.kill()
    assert (await finish(first)).code == -signal.SIGKILL
    assert json.loads(lock.read_text())["pid"] == first.pid  # a killed run cannot clear its note
    emu.faults.links.latency_ms = 0

    third = await run_cli("run", "--config", config, *QUIET, "--shard", shard, env=cred_env(emu))

    assert third.code == 0, third.output
    assert "stale_lock_taken_over" in third.stderr
    assert f"pid {first.pid}" in third.stderr
    mine = {i.instance_id for i in emu.fleet.instances if in_shard(emu.project_id, i.instance_id, k, 2)}
    assert keys_of(tmp_path / "archive") == {key for key in expected_keys(emu) if key[0] in mine}
    assert lock.read_text() == "", "the lock note was not cleared by a clean exit"
    verified = await run_cli("verify", tmp_path / "archive")
    assert verified.code == 0, verified.output
    assert not [p for p in files_under(tmp_path / "archive") if p.name.endswith(".part")]
