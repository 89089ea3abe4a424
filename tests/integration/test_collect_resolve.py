"""``harvester collect --instance``: names are resolved strictly, and before anything is collected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harvester.emulator import Emulator, Instance
from harvester.errors import UsageError
from tests.collect_helpers import (
    ProjectEndpoint,
    collect_in_process,
    colliding_seeds,
    instance_folder,
    log_files,
    projects_of,
    write_config,
)
from tests.emulator_sigv import EmulatorFactory


def _nothing_collected(*emus: Emulator) -> None:
    for emu in emus:
        assert emu.counters.collections == 0
        assert emu.counters.links_issued == 0
        assert not any(k.endswith(":204") for k in emu.counters.statuses)  # no collect POST answered


async def _two_clouds(emulator_factory: EmulatorFactory) -> tuple[Emulator, Emulator, str]:
    """Two projects whose fleets both hold an instance of the same name (different ids)."""
    seed_a, seed_b, name = colliding_seeds(12)
    a = await emulator_factory(seed=seed_a)
    b = await emulator_factory(seed=seed_b)
    return a, b, name


def _config_for(tmp_path: Path, a: Emulator, b: Emulator) -> Path:
    projects = [
        ProjectEndpoint("alpha", a.project_id, a.dcs_endpoint),
        ProjectEndpoint("beta", b.project_id, b.dcs_endpoint),
    ]
    return write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects)


async def test_ambiguous_name_stops_before_collecting(
    tmp_path: Path, emulator_factory: EmulatorFactory
) -> None:
    """A name two projects share is a one-line usage error listing both ids; nothing is collected."""
    a, b, name = await _two_clouds(emulator_factory)
    (ia,) = a.fleet.find(name=name)
    (ib,) = b.fleet.find(name=name)
    assert ia.instance_id != ib.instance_id

    with pytest.raises(UsageError) as caught:
        await collect_in_process(_config_for(tmp_path, a, b), [name])

    message = str(caught.value)
    assert "\n" not in message
    assert ia.instance_id in message
    assert ib.instance_id in message
    assert "alpha" in message
    assert "beta" in message
    _nothing_collected(a, b)
    assert not (tmp_path / "archive" / "incidents").exists()


async def test_ambiguous_name_among_good_ones_still_stops_everything(
    tmp_path: Path, emulator_factory: EmulatorFactory
) -> None:
    """One ambiguous name among unambiguous ones stops the whole collection before it starts."""
    a, b, name = await _two_clouds(emulator_factory)
    good = next(i for i in a.fleet.instances if i.collectable and i.name != name)
    assert not b.fleet.find(name=good.name)

    with pytest.raises(UsageError, match="matches 2 instances"):
        await collect_in_process(_config_for(tmp_path, a, b), [good.name, name])
    _nothing_collected(a, b)


async def test_instance_id_resolves_a_shared_name(tmp_path: Path, emulator_factory: EmulatorFactory) -> None:
    """Giving the id instead of the shared name collects exactly that instance."""
    a, b, name = await _two_clouds(emulator_factory)
    (ib,) = b.fleet.find(name=name)
    if not ib.collectable:  # the shared name may belong to an unusable instance: pick another id
        ib = next(i for i in b.fleet.instances if i.collectable)

    run = await collect_in_process(_config_for(tmp_path, a, b), [ib.instance_id])

    assert run.exit_code == 0, run.summary
    assert [p.name for p in run.bundle.iterdir() if p.is_dir()] == ["beta"]
    assert log_files(instance_folder(run.bundle, "beta", ib))
    _nothing_collected(a)


async def test_unknown_name_stops_with_candidates(tmp_path: Path, emulator: Emulator) -> None:
    """A name that matches nothing is a one-line usage error listing similar names; nothing is collected."""
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))
    prod = sorted(i.name for i in emulator.fleet.instances if i.name.startswith("redis-prod-"))

    with pytest.raises(UsageError) as caught:
        await collect_in_process(config, ["redis-prod"])

    message = str(caught.value)
    assert "\n" not in message
    assert "redis-prod" in message
    for name in prod:
        assert name in message
    _nothing_collected(emulator)
    assert not (tmp_path / "archive" / "incidents").exists()


async def test_misspelt_name_lists_the_close_candidate(tmp_path: Path, emulator: Emulator) -> None:
    """A one-letter typo in ``--instance`` suggests the instance that was probably meant."""
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))
    meant = next(i for i in emulator.fleet.instances if i.collectable)
    typo = meant.name.replace("-", "", 1)

    with pytest.raises(UsageError) as caught:
        await collect_in_process(config, [typo])

    assert meant.name in str(caught.value)
    _nothing_collected(emulator)


async def test_unknown_name_among_good_ones_stops_everything(tmp_path: Path, emulator: Emulator) -> None:
    """One unknown name next to valid ones stops the collection before any of them is touched."""
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))
    good = next(i for i in emulator.fleet.instances if i.collectable)

    with pytest.raises(UsageError, match="no-such-instance"):
        await collect_in_process(config, [good.name, "no-such-instance"])
    _nothing_collected(emulator)


def _unusable(emu: Emulator) -> tuple[Instance, Instance, Instance]:
    not_running = next(i for i in emu.fleet.instances if i.status != "RUNNING")
    old = next(i for i in emu.fleet.instances if i.engine_version == "3.0" and i.status == "RUNNING")
    good = next(i for i in emu.fleet.find(cache_mode="ha") if i.collectable)
    return not_running, old, good


async def test_unusable_instances_do_not_stop_the_good_one(tmp_path: Path, emulator: Emulator) -> None:
    """A stopped and a Redis 3.0 instance are reported with DCS's reason; only their instance.json is kept."""
    not_running, old, good = _unusable(emulator)
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))

    run = await collect_in_process(config, [not_running.name, old.name, good.name])

    assert log_files(instance_folder(run.bundle, "emulated", good))
    for unusable in (not_running, old):
        folder = instance_folder(run.bundle, "emulated", unusable)
        assert not log_files(folder)
        shown = json.loads((folder / "instance.json").read_text())
        assert shown["status"] == unusable.status
    problems = {p.instance: p.reason for p in run.summary.instances}
    assert len(problems) == 2
    (stopped,) = (r for i, r in problems.items() if not_running.instance_id in i)
    (too_old,) = (r for i, r in problems.items() if old.instance_id in i)
    assert not_running.status in stopped or "DCS.4049" in stopped
    assert "3.0" in too_old or "DCS.4007" in too_old
    assert emulator.counters.collections == len(good.replicas)


async def test_unusable_instance_beside_a_good_one_is_a_partial_result(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Asking for an instance that cannot be collected from makes the run partial (exit 1)."""
    not_running, _, good = _unusable(emulator)
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))

    run = await collect_in_process(config, [not_running.name, good.name])

    assert log_files(instance_folder(run.bundle, "emulated", good))
    assert run.exit_code == 1
