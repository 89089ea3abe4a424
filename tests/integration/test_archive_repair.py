"""Same-size corruption is found and repaired: a run re-hashes what changed, and
``harvester verify --repair`` fetches damaged files again while DCS still has them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harvester.emulator import Emulator
from harvester.models import Outcome
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    all_entries,
    code_of,
    cred_env,
    emulator_bytes,
    error_lines,
    harvest,
    run_cli,
    settings_for,
)

QUIET = ("--no-progress", "--log-format", "json")


def flip_a_byte(path: Path, *, keep_mtime: bool) -> None:
    """Corrupt a file without changing its size (and, if asked, with its mtime put back)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def _archived(emulator_factory: EmulatorFactory, tmp_path: Path) -> tuple[Emulator, Path, Path]:
    """A healthy fleet harvested once; returns the emulator, the config file and the root."""
    emu = await emulator_factory(instances=2, seed=11, healthy=True, log_size=32 * 1024)
    settings = settings_for(emu, tmp_path)
    assert code_of(await harvest(settings)) == 0
    return emu, tmp_path / "harvester.yaml", settings.archive.root


def _victim(root: Path, days_ago: int = 2) -> tuple[Path, dict[str, object]]:
    """One archived file of the day ``days_ago`` and its manifest line."""
    day = (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()
    folder, entry = next((f, e) for f, e in all_entries(root) if f == day)
    return root / folder / str(entry["path"]), entry


async def test_a_run_trusts_an_untouched_file_and_refetches_a_touched_corrupt_one(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Flipped byte, same mtime: trusted (verify's job). Same flip with a new mtime: fetched again."""
    emu, _config, root = await _archived(emulator_factory, tmp_path)
    settings = settings_for(emu, tmp_path)
    path, entry = _victim(root)
    served = emulator_bytes(emu)[str(entry["log_id"])]
    flip_a_byte(path, keep_mtime=True)
    emu.counters.reset()

    trusting = await harvest(settings)

    assert code_of(trusting) == 0
    assert emu.counters.links_issued == 0, "a file with unchanged size and mtime was re-hashed"
    assert path.read_bytes() != served  # documented limit: a stat cannot see this change

    os.utime(path)  # the corruption, as it usually comes: with a new mtime
    repairing = await harvest(settings)

    assert code_of(repairing) == 0, [f.reason for f in repairing.files if f.reason]
    archived = [f for f in repairing.files if f.outcome is Outcome.ARCHIVED]
    assert [(f.instance_id, f.replication_ip, f.day.isoformat()) for f in archived] == [
        (entry["instance_id"], entry["replication_ip"], entry["log_date"])
    ]
    assert path.read_bytes() == served
    assert emu.counters.links_issued == 1
    assert (await run_cli("verify", root)).code == 0


async def test_verify_repair_refetches_corrupt_and_missing_files_then_verify_is_clean(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """verify --repair downloads what is corrupt or missing again; exit 0 and a clean verify after."""
    emu, config, root = await _archived(emulator_factory, tmp_path)
    corrupt, corrupt_entry = _victim(root, 2)
    missing, missing_entry = _victim(root, 5)
    served = emulator_bytes(emu)
    flip_a_byte(corrupt, keep_mtime=True)
    missing.unlink()
    before = await run_cli("verify", root)
    assert before.code == 1
    emu.counters.reset()

    repaired = await run_cli(
        "verify",
        root,
        "--repair",
        "--config",
        config,
        "--no-progress",
        "--log-format",
        "json",
        env=cred_env(emu),
    )

    assert repaired.code == 0, repaired.output
    assert "Traceback" not in repaired.output
    assert error_lines(repaired.stderr) == []
    assert f"REPAIRING {corrupt.relative_to(root)}" in repaired.stdout
    assert f"REPAIRING {missing.relative_to(root)}" in repaired.stdout
    assert "repaired 2 of 2 damaged files; 0 not repaired, 0 extra" in repaired.stdout
    assert corrupt.read_bytes() == served[str(corrupt_entry["log_id"])]
    assert missing.read_bytes() == served[str(missing_entry["log_id"])]
    assert emu.counters.links_issued == 2, "the repair fetched more than the damaged files"
    after = await run_cli("verify", root)
    assert after.code == 0, after.output
    assert " 0 missing, 0 corrupt, 0 extra" in after.stdout


async def test_verify_repair_reports_what_dcs_no_longer_has_and_keeps_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A corrupt file older than DCS's 7 days: exit 1, named with the reason, left in place."""
    emu, config, root = await _archived(emulator_factory, tmp_path)
    source, entry = _victim(root, 2)
    old_day = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
    old = root / old_day / str(entry["path"])
    old.parent.mkdir(parents=True)
    old.write_bytes(source.read_bytes())
    line = {**entry, "log_date": old_day}
    (root / old_day / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    (root / old_day / "manifest-sha256.txt").write_text(f"{entry['sha256']}  {entry['path']}\n")
    assert (await run_cli("verify", root)).code == 0
    flip_a_byte(old, keep_mtime=False)
    damaged = old.read_bytes()
    emu.counters.reset()

    result = await run_cli(
        "verify",
        root,
        "--repair",
        "--config",
        config,
        "--no-progress",
        "--log-format",
        "json",
        env=cred_env(emu),
    )

    assert result.code == 1, result.output
    assert f"NOT REPAIRED {old.relative_to(root)} (DCS keeps run logs for 7 days;" in result.stdout
    assert "repaired 0 of 1 damaged files; 1 not repaired" in result.stdout
    assert old.read_bytes() == damaged, "a file that could not be replaced was touched"
    assert sum(emu.counters.requests.values()) == 0, "nothing fetchable, yet the API was called"


async def test_verify_repair_needs_a_config(tmp_path: Path) -> None:
    """--repair without --config is a usage error (exit 2) in one line; plain verify stays offline."""
    (tmp_path / "archive").mkdir()
    result = await run_cli("verify", tmp_path / "archive", "--repair")
    assert result.code == 2
    assert error_lines(result.stderr) == [
        "harvester: error: verify --repair needs --config F (the credentials and projects to fetch from)"
    ]
