"""``python -m harvester.emulator`` as a subprocess: ready file, config file, serving, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.emulator_sigv import sign
from tests.polling import DEADLINE, eventually

REPO = Path(__file__).resolve().parents[2]


async def _start(tmp_path: Path, *extra: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harvester.emulator",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        "--collect-delay",
        "0.05",
        *extra,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            ready.exists,
            what="the emulator writing its ready file",
            stop=lambda: None if proc.returncode is None else f"the emulator exited ({proc.returncode})",
        )
    except AssertionError:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
        raise
    return proc, json.loads(ready.read_text())


async def test_subprocess_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """It publishes a ready file, answers signed DCS calls, and exits 0 on SIGTERM."""
    config = tmp_path / "harvester.yaml"
    proc, info = await _start(tmp_path, "--instances", "5", "--write-config", str(config))
    try:
        assert info["iam_endpoint"] == info["dcs_endpoint"] + "/v3"
        assert info["project_id"] == info["project_ids"][0]
        url = f"{info['dcs_endpoint']}/v2/{info['project_id']}/instances?limit=100"
        headers = sign("GET", url, info["access_key"], info["secret_key"])
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["instance_num"] == 5
        written = yaml.safe_load(config.read_text())
        assert written["projects"][0]["project_id"] == info["project_id"]
        assert written["projects"][0]["endpoints"] == {
            "dcs": info["dcs_endpoint"],
            "iam": info["iam_endpoint"],
        }
        assert written["auth"]["method"] == "aksk"
        assert written["download"]["allowed_hosts"] == ["127.0.0.1"]
        assert f"OS_ACCESS_KEY={info['access_key']}" in config.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0
    assert info["dcs_endpoint"] in out.decode()


async def test_subprocess_stops_on_sigint(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) also stops it cleanly with exit code 0."""
    proc, _ = await _start(tmp_path)
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0
