"""``harvester run`` against an endpoint nobody answers on: it gives up, in bounded time, and says so."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.helpers import EmuInfo, cred_env, error_lines, run_cli, write_config


def closed_port() -> int:
    """A loopback port that was just free: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_a_refused_endpoint_ends_with_one_error_line_per_project(tmp_path: Path) -> None:
    """Two projects on a closed port: exit 3, one `harvester: error:` line each naming it, few retries."""
    dead = f"http://127.0.0.1:{closed_port()}"
    info = EmuInfo(dead, f"{dead}/v3", "0" * 32, "AK" * 10, "SK" * 20, "u", "p", "d")
    projects: list[dict[str, Any]] = [
        {
            "name": name,
            "region": "eu-de",
            "project_id": digit * 32,
            "endpoints": {"dcs": dead, "iam": f"{dead}/v3"},
        }
        for name, digit in (("alpha", "a"), ("beta", "b"))
    ]
    config = write_config(tmp_path / "h.yaml", info, tmp_path / "archive", extra={"projects": projects})
    summary_path = tmp_path / "summary.json"

    # The deadline is the test's, not the tool's: the README promises about 20 s for a refusal.
    result = await run_cli(
        "run", "--config", config, "--no-progress", "--log-format", "json", "--summary-json", summary_path,
        env=cred_env(info), timeout=90,
    )  # fmt: skip

    assert result.code == 3, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    for name, line in zip(("alpha", "beta"), lines, strict=True):
        assert line.startswith(f"harvester: error: project {name}: DCS endpoint {dead} unreachable: ")
        assert "connection refused" in line
        assert "connection attempts over" in line  # the breaker, not one call's budget, ended it
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    retries = [e for e in logs if e["event"] == "retry.scheduled"]
    assert 1 <= len(retries) <= 2 * 5, "more retries than one call per project could spend"
    assert all(isinstance(e["wait"], float) and e["wait"] > 0 for e in retries)
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == 3
    assert set(summary["unreachable"]) == {"alpha", "beta"}
