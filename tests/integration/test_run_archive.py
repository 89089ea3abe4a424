"""The nightly harvest end to end through the real engine, against the emulator over loopback.

A demo-sized fleet lands complete, verifiable and byte-exact; a second run asks DCS for
nothing; ``--instance`` (``NightlyOptions.only``) limits what is collected and archived.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

from harvester.emulator import Emulator
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    MANIFEST_KEYS,
    all_entries,
    code_of,
    emulator_bytes,
    expected_keys,
    files_under,
    harvest,
    keys_of,
    run_cli,
    settings_for,
    sha256_of,
    sha256sum_check,
)

DEMO = {"instances": 6, "seed": 42}


async def _demo(emulator_factory: EmulatorFactory) -> Emulator:
    return await emulator_factory(**DEMO)


async def test_demo_fleet_lands_complete_byte_exact_and_verifiable(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A demo fleet is archived whole: every key, the served bytes, 19-key manifests, sha256sum -c ok."""
    emu = await _demo(emulator_factory)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root
    summary = await harvest(settings)

    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is not Outcome.ARCHIVED]
    wanted = expected_keys(emu)
    assert len(wanted) >= 40
    assert keys_of(root) == wanted
    assert sum(1 for f in summary.files if f.outcome is Outcome.ARCHIVED) == len(wanted)

    served = emulator_bytes(emu)
    items = {i.id: i for i in emu.runlog_items()}
    fleet = {i.instance_id: i for i in emu.fleet.instances}
    entries = all_entries(root)
    assert len(entries) == len(wanted)
    for folder, e in entries:
        assert list(e) == list(MANIFEST_KEYS)
        assert e["log_date"] == folder
        payload = root / folder / e["path"]
        assert payload.is_file()
        data = payload.read_bytes()
        assert e["size"] == len(data) > 0
        assert e["sha256"] == sha256_of(payload)
        assert e["mtime_ns"] == payload.stat().st_mtime_ns
        assert data == served[e["log_id"]], f"{folder}/{e['path']} differs from what OBS served"
        item = items[e["log_id"]]
        inst = fleet[e["instance_id"]]
        assert (e["project"], e["project_id"], e["region"]) == ("emulated", emu.project_id, "eu-de")
        assert e["instance_name"] == inst.name
        assert (e["group_name"], e["replication_ip"]) == (item.replica.group_name, item.replica.ip)
        assert e["log_date"] == item.day.isoformat()
        assert e["file_name"] == item.file_name
        expected_rid = None if inst.cache_mode == "single" else item.replica.replication_id
        assert e["replication_id"] == expected_rid
        assert PurePosixPath(e["path"]).parts == (
            "emulated",
            f"{inst.name}-{inst.instance_id[:8]}",
            item.replica.group_name,
            item.file_name,
        )
        assert e["run_id"] == summary.run_id
        assert e["attempts"] == 1
        for stamp in (e["downloaded_at"], e["link_expires_at"]):
            assert datetime.fromisoformat(stamp).tzinfo is not None
        assert datetime.fromisoformat(e["link_expires_at"]) > datetime.fromisoformat(e["downloaded_at"])
    for folder in {f for f, _ in entries}:
        paths = [e["path"] for f, e in entries if f == folder]
        assert len(paths) == len(set(paths)), f"{folder}: a path is listed twice"

    checks = await sha256sum_check(root)
    assert len(checks) == 7
    assert all(c.code == 0 for c in checks), [c.output for c in checks if c.code]
    verified = await run_cli("verify", root)
    assert verified.code == 0, verified.output
    assert f"checked {len(wanted)} files: {len(wanted)} ok, 0 missing, 0 corrupt, 0 extra" in verified.stdout
    assert not [p for p in files_under(root) if p.name.endswith((".part", ".tmp"))]


async def test_second_run_downloads_nothing_and_requests_no_link(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Run twice: the second run collects nothing, asks for no link and reports every file as present."""
    emu = await _demo(emulator_factory)
    settings = settings_for(emu, tmp_path)
    first = await harvest(settings)
    assert code_of(first) == 0
    before = emu.counters.snapshot()
    mtimes = {p: p.stat().st_mtime_ns for p in files_under(settings.archive.root)}

    second = await harvest(settings)

    after = emu.counters.snapshot()
    assert code_of(second) == 0
    assert after["links_issued"] == before["links_issued"]
    assert after["collections"] == before["collections"]
    assert after["downloads"] == before["downloads"]
    assert second.collections == 0
    outcomes = {f.outcome for f in second.files}
    assert outcomes == {Outcome.PRESENT}
    assert len(second.files) == len(expected_keys(emu))
    # .state/ holds the records start-up keeps (what it last found clean): not payloads.
    payloads = {
        p: m
        for p, m in mtimes.items()
        if "manifest" not in p.name and ".locks" not in p.parts and ".state" not in p.parts
    }
    assert all(p.stat().st_mtime_ns == m for p, m in payloads.items()), "a payload was rewritten"


async def test_instance_option_limits_collection_and_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """``--instance NAME`` collects and archives that one instance only."""
    emu = await _demo(emulator_factory)
    chosen = next(i for i in emu.fleet.instances if i.collectable and len(i.replicas) > 1)
    settings = settings_for(emu, tmp_path)

    summary = await harvest(settings, only=(chosen.name,))

    assert code_of(summary) == 0
    wanted = {k for k in expected_keys(emu) if k[0] == chosen.instance_id}
    assert keys_of(settings.archive.root) == wanted
    assert emu.counters.collections == len(chosen.replicas)
    assert {f.instance_id for f in summary.files} == {chosen.instance_id}
