"""``harvester collect`` over a flaky cloud: retries make the bundle complete all the same."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from harvester.archive.verify import verify
from harvester.emulator import Emulator
from harvester.models import Outcome
from tests.collect_helpers import (
    BUNDLE_METADATA,
    bundle_files,
    collect_in_process,
    expected_logs,
    instance_folder,
    log_files,
    projects_of,
    sha_list,
    write_config,
)


async def test_flaky_links_still_give_a_complete_bundle(tmp_path: Path, emulator: Emulator) -> None:
    """With 20% HTTP 500 and 10% 429 (Retry-After 1) on the link call, every log still lands (exit 0)."""
    links = emulator.faults.links
    links.error_500_rate = 0.2
    links.throttle_rate = 0.1
    links.retry_after = 1
    chosen = [i for i in emulator.fleet.instances if i.collectable]
    assert {i.cache_mode for i in chosen} >= {"single", "ha", "cluster"}
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))

    run = await collect_in_process(config, [i.name for i in chosen])

    assert run.exit_code == 0, run.summary
    today = emulator.clock.today().isoformat()
    for inst in chosen:
        assert log_files(instance_folder(run.bundle, "emulated", inst)) == expected_logs(inst, [today])
    injected = emulator.counters.faults["error_500"] + emulator.counters.faults["throttle_429"]
    assert emulator.counters.faults["error_500"] > 0
    assert emulator.counters.faults["throttle_429"] > 0
    assert run.summary.retries >= injected
    assert set(sha_list(run.bundle)) == bundle_files(run.bundle) - BUNDLE_METADATA
    assert verify(run.root).clean


async def test_a_day_the_bundle_did_not_get_is_reported_pending(tmp_path: Path, emulator: Emulator) -> None:
    """A requested day no collection produced is in the summary as pending, per replica; the rest lands."""
    today = emulator.clock.today()
    emulator.config.lost_days = {today - timedelta(days=1)}
    inst = next(i for i in emulator.fleet.instances if i.collectable and i.cache_mode == "ha")
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))

    run = await collect_in_process(config, [inst.name], days=1)

    assert run.exit_code == 0, run.summary
    assert log_files(instance_folder(run.bundle, "emulated", inst)) == expected_logs(
        inst, [today.isoformat()]
    )
    pending = [f for f in run.summary.files if f.outcome is Outcome.PENDING]
    assert {(f.replication_ip, f.day) for f in pending} == {
        (r.ip, today - timedelta(days=1)) for r in inst.replicas
    }
    assert all(f.reason.startswith("not in this bundle: ") for f in pending)
