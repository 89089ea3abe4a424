"""The nightly harvest through a faulty cloud: errors, throttling, expired links, broken bodies.

Faults are the emulator's own (HTTP 500, 429 with Retry-After, 403 expired, truncated and
stalled bodies) over real loopback HTTP; the engine's retry policy runs with its real waits.
Faults that "heal" are switched off by a watcher once the emulator has served the first one,
so each test sees the fault for certain and finishes on a healthy cloud.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import structlog

from harvester.emulator import Emulator
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    all_entries,
    background,
    code_of,
    emulator_bytes,
    expected_keys,
    files_under,
    harvest,
    keys_of,
    settings_for,
    when,
)
from tests.polling import DEADLINE


def _assert_complete(emu: Emulator, root: Path) -> None:
    """Every expected key is archived with exactly the bytes OBS serves, and no leftovers."""
    assert keys_of(root) == expected_keys(emu)
    served = emulator_bytes(emu)
    for folder, e in all_entries(root):
        data = (root / folder / e["path"]).read_bytes()
        assert len(data) == e["size"]
        assert data == served[e["log_id"]], f"{folder}/{e['path']} is not what OBS served"
    assert not [p for p in files_under(root) if p.name.endswith((".part", ".tmp"))]


async def test_link_errors_and_throttling_still_archive_every_file(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """20% HTTP 500 and 10% 429 (Retry-After 1) on link calls: every file is archived, exit 0."""
    emu = await emulator_factory(instances=2, seed=4)
    emu.faults.links.error_500_rate = 0.2
    emu.faults.links.throttle_rate = 0.1
    emu.faults.links.retry_after = 1
    settings = settings_for(emu, tmp_path)

    summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    assert emu.counters.faults["error_500"] > 0
    assert emu.counters.statuses["links:500"] > 0
    assert emu.counters.statuses["links:429"] > 0
    assert summary.retries >= emu.counters.faults["error_500"] + emu.counters.faults["throttle_429"]
    _assert_complete(emu, settings.archive.root)


async def test_retry_after_is_honoured_on_a_throttled_link(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A 429 with Retry-After: 1 on a link call makes the run wait that second, then it completes."""
    emu = await emulator_factory(instances=1, seed=5, healthy=True)
    emu.faults.links.fail_first = 1
    emu.faults.links.fail_first_kind = "throttle_429"
    emu.faults.links.retry_after = 1
    settings = settings_for(emu, tmp_path)

    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        summary = await harvest(settings)
    elapsed = time.monotonic() - started

    assert code_of(summary) == 0
    assert emu.counters.statuses["links:429"] == 1
    throttled = [e for e in logs if e["event"] == "retry.scheduled" and e["kind"] == "throttled"]
    assert [e["wait"] for e in throttled] == [1.0]
    assert elapsed >= 0.95, f"the run went on after {elapsed:.2f}s, before Retry-After had passed"
    _assert_complete(emu, settings.archive.root)


async def test_links_that_expire_before_download_are_requested_again(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """OBS answers 403 'Request has expired' to a link that was fresh: the engine relinks and archives."""
    emu = await emulator_factory(instances=2, seed=11, healthy=True, link_ttl=5)
    emu.faults.obs.latency_ms = 200  # the first downloads are in flight when the clock jumps
    settings = settings_for(emu, tmp_path, extra={"download": {"expiry_margin": 1}})

    def jump() -> None:
        emu.clock.advance(30)  # past every link issued so far (they live 5 s)

    async with background(when(lambda: emu.counters.requests["obs"] >= 1, jump)):
        summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    files = len(expected_keys(emu))
    assert emu.counters.statuses["obs:403"] >= 1
    assert emu.counters.links_issued >= files + emu.counters.statuses["obs:403"]
    assert emu.counters.links_issued > files
    _assert_complete(emu, settings.archive.root)


async def test_truncated_bodies_are_retried_and_never_archived_short(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A body cut in half is retried; the archived file is whole, its sha256 right, no .part left."""
    emu = await emulator_factory(instances=3, seed=11, healthy=True)
    emu.faults.obs.truncate_rate = 1.0
    settings = settings_for(emu, tmp_path)

    def heal() -> None:
        emu.faults.obs.truncate_rate = 0.0

    async with background(when(lambda: emu.counters.faults["truncate"] >= 1, heal)):
        summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    cut = emu.counters.faults["truncate"]
    assert cut >= 1
    assert emu.counters.downloads == len(expected_keys(emu)) + cut
    retried = [e for _, e in all_entries(settings.archive.root) if e["attempts"] > 1]
    assert len(retried) == cut
    _assert_complete(emu, settings.archive.root)


async def test_stalled_bodies_are_retried(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """A body that stops flowing for longer than download.stall_timeout is abandoned and fetched again."""
    emu = await emulator_factory(instances=2, seed=11, healthy=True)
    emu.faults.obs.stall_rate = 1.0
    emu.faults.obs.stall_seconds = 3600.0  # far beyond the run's deadline: waiting it out fails the test
    settings = settings_for(emu, tmp_path, extra={"download": {"stall_timeout": 1}})

    def heal() -> None:
        emu.faults.obs.stall_rate = 0.0

    async with background(when(lambda: emu.counters.faults["stall"] >= 1, heal)):
        with structlog.testing.capture_logs() as logs, anyio.fail_after(DEADLINE):
            summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    stalled = emu.counters.faults["stall"]
    assert stalled >= 1
    # The engine gave up on each stalled body itself, by download.stall_timeout, and fetched it again.
    reasons = [e["reason"] for e in logs if e["event"] == "harvest.download_retried"]
    assert len(reasons) == stalled
    assert all("no data for 1 s" in r for r in reasons), reasons
    retried = [e for _, e in all_entries(settings.archive.root) if e["attempts"] > 1]
    assert len(retried) == stalled
    _assert_complete(emu, settings.archive.root)
