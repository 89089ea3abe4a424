"""``harvester collect`` prints a bundle path only for a bundle it wrote, and says what it could not do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harvester.archive.paths import MARKER_NAME
from harvester.emulator import Emulator
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import Result, config_data, cred_env, error_lines, run_cli, write_config

QUIET = ("--no-progress", "--log-format", "json")


async def _collect(
    emu: Emulator, tmp: Path, *args: str, extra: dict[str, Any] | None = None, root: Path | None = None
) -> Result:
    config = write_config(tmp / "harvester.yaml", emu, root or tmp / "archive", extra=extra)
    return await run_cli("collect", "--config", config, *QUIET, "--no-slowlog", *args, env=cred_env(emu))


def _good(emu: Emulator) -> str:
    return next(i.name for i in emu.fleet.instances if i.collectable)


async def test_bundle_that_cannot_be_created_prints_no_path_and_exits_3(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """``incidents`` is a file: exit 3, the reason on stderr, and no bundle path on stdout."""
    emu = await emulator_factory(instances=3, seed=8, healthy=True)
    root = tmp_path / "archive"
    root.mkdir()
    (root / MARKER_NAME).write_text("")  # a harvester archive, so only the bundle's own folder fails
    (root / "incidents").write_text("not a folder\n")

    result = await _collect(emu, tmp_path, "--instance", _good(emu))

    assert result.code == 3, result.output
    assert "incidents/" not in result.stdout
    assert not any(line.startswith(str(root)) for line in result.stdout.splitlines())
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("harvester: error: ")
    assert "incidents" in lines[0]
    assert "Traceback" not in result.output


async def test_unwritable_archive_prints_no_bundle_path(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """An archive root below a regular file: exit 3 with 'not writable', no path printed, nothing asked."""
    emu = await emulator_factory(instances=3, seed=8, healthy=True)
    blocker = tmp_path / "file"
    blocker.write_text("x\n")

    result = await _collect(emu, tmp_path, "--instance", _good(emu), root=blocker / "archive")

    assert result.code == 3, result.output
    assert "not writable" in error_lines(result.stderr)[0]
    assert not result.stdout.strip().splitlines()[-1].startswith(str(blocker))  # the summary's total
    assert emu.counters.collections == 0


async def test_bundle_keeps_no_lock_file(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """A finished bundle holds its files, manifests and summary, and no lock or other hidden file."""
    emu = await emulator_factory(instances=3, seed=8, healthy=True)

    result = await _collect(emu, tmp_path, "--instance", _good(emu), "--tar")

    assert result.code == 0, result.output
    bundle = Path(result.stdout.strip().splitlines()[-1])
    assert bundle.is_dir()
    names = [p.relative_to(bundle).as_posix() for p in bundle.rglob("*")]
    assert "summary.json" in names
    assert "manifest.jsonl" in names
    assert [n for n in names if n.endswith(".lock") or n.rsplit("/", 1)[-1].startswith(".")] == []
    assert bundle.with_name(bundle.name + ".tar.gz").is_file()


async def test_configured_instance_unknown_to_dcs_is_reported_and_counts_as_failed(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A config name DCS lacks: a stderr line with the candidates, exit 1, the other instance bundled."""
    emu = await emulator_factory(instances=4, seed=8, healthy=True)
    good = _good(emu)
    typo = good[:-1]
    project = {**config_data(emu, tmp_path)["projects"][0], "instances": [good, typo]}

    result = await _collect(emu, tmp_path, "--instance", good, extra={"projects": [project]})

    assert result.code == 1, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"harvester: error: emulated/{typo}: ")
    assert f"did you mean: {good}" in lines[0]
    bundle = Path(result.stdout.strip().splitlines()[-1])
    assert (bundle / "summary.json").is_file()
