"""``harvester validate`` as a child process: offline by default, PASS/FAIL probes with --check."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import yaml

from tests.emulator_sigv import EmulatorFactory
from tests.helpers import REPO, EmuInfo, config_data, cred_env, error_lines, run_cli, write_config

PASTED_SK = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY42"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _verdicts(stdout: str) -> list[str]:
    return [
        line.split("  ", 1)[0] for line in stdout.splitlines() if line.startswith(("PASS", "FAIL", "SKIP"))
    ]


async def test_check_passes_with_the_demo_config_and_creates_nothing(tmp_path: Path) -> None:
    """The embedded-emulator demo, no credentials in the environment: all PASS, exit 0, nothing created."""
    folder = tmp_path / "config"
    folder.mkdir()
    config = folder / "demo.yaml"  # its archive root, ../demo-archive, is then tmp_path/demo-archive
    shutil.copy(REPO / "config" / "demo.yaml", config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PYTHONPATH"] = str(REPO)

    result = await run_cli("validate", "--check", "--config", config, env=env)

    assert result.code == 0, result.output
    assert _verdicts(result.stdout) == ["PASS"] * 6, result.stdout
    assert "[emulated] instances found: 6 discovered" in result.stdout
    assert result.stdout.strip().endswith("6 checks: 6 passed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]
    assert list(folder.iterdir()) == [config]


async def test_check_against_a_cloud_that_refuses_the_key(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Refused credentials: a FAIL line naming DCS's answer, exit 1, the key never shown."""
    emu = await emulator_factory(instances=2, seed=8)
    config = write_config(tmp_path / "harvester.yaml", emu, tmp_path / "archive")
    wrong = "WRONGSECRETKEY" + "0" * 26

    result = await run_cli("validate", "--check", "--config", config, env=cred_env(emu, secret_key=wrong))

    assert result.code == 1, result.output
    assert "FAIL  [emulated] credentials accepted by DCS: DCS refused them" in result.stdout
    assert wrong not in result.output
    assert emu.counters.collections == 0


async def test_check_with_dead_endpoints_fails_with_the_cause(tmp_path: Path) -> None:
    """Nothing listening: the reachability FAIL names the cause; exit 1, no traceback."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    info = EmuInfo(dead, f"{dead}/v3", "0" * 32, "AK", "SK", "u", "p", "d")
    config = write_config(tmp_path / "harvester.yaml", info, tmp_path / "archive")

    result = await run_cli("validate", "--check", "--config", config, env=cred_env(info))

    assert result.code == 1, result.output
    assert "FAIL  [emulated] DCS endpoint reachable: " in result.stdout
    assert "connection refused" in result.stdout
    assert "Traceback" not in result.output


async def test_plain_validate_makes_no_network_call(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Without --check nothing is sent: the emulator sees no request at all."""
    emu = await emulator_factory(instances=2, seed=8)
    config = write_config(tmp_path / "harvester.yaml", emu, tmp_path / "archive")

    result = await run_cli("validate", "--config", config, env=cred_env(emu))

    assert result.code == 0, result.output
    assert sum(emu.counters.requests.values()) == 0
    assert not (tmp_path / "archive").exists()


async def test_validate_refuses_a_pasted_secret_without_echoing_it(tmp_path: Path) -> None:
    """A secret key pasted into secret_key_env: exit 2, one line naming the key path, value not shown."""
    info = EmuInfo("http://127.0.0.1:9", "http://127.0.0.1:9/v3", "0" * 32, "AK", "SK", "u", "p", "d")
    data = config_data(info, tmp_path / "archive")
    data["auth"]["secret_key_env"] = PASTED_SK
    config = tmp_path / "harvester.yaml"
    config.write_text(yaml.safe_dump(data))

    for args in (("validate",), ("validate", "--check"), ("run", "--no-progress")):
        result = await run_cli(*args, "--config", config, env=cred_env(info))
        assert result.code == 2, result.output
        lines = error_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("harvester: error: harvester.yaml: auth.secret_key_env: must be the NAME")
        assert PASTED_SK not in result.output
        assert PASTED_SK[:10] not in result.output


async def test_hostile_configs_are_one_line_exit_2(tmp_path: Path) -> None:
    """Deep nesting and an alias bomb: exit 2 with one error line each, never a traceback."""
    config = tmp_path / "harvester.yaml"
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    for text, expected in (
        ("archive: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested more than"),
        ("\n".join(bomb) + "\n", "aliases expand to more than"),
    ):
        config.write_text(text)
        result = await run_cli("validate", "--config", config)
        assert result.code == 2, result.output[-500:]
        lines = error_lines(result.stderr)
        assert len(lines) == 1, result.stderr[-500:]
        assert expected in lines[0]
        assert "Traceback" not in result.output
