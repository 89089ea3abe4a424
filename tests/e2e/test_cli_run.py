"""``harvester run`` as a child process: exit codes, files, records, signals, secrets.

Most tests run the CLI against an in-process emulator (the test's event loop serves it while
awaiting the child), so they can read its counters and turn its fault knobs; the first one
runs both the CLI and the emulator as child processes, like an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from harvester.emulator import Emulator
from tests.emulator_sigv import EmulatorFactory, sign
from tests.helpers import (
    EmuInfo,
    Result,
    all_entries,
    cli_command,
    config_data,
    cred_env,
    emulator_process,
    error_lines,
    expected_keys,
    files_under,
    finish,
    keys_of,
    manifest_line_count,
    manifest_lines,
    parse_prometheus,
    payload_files,
    run_cli,
    sha256_of,
    sha256sum_check,
    start,
    write_config,
)
from tests.polling import DEADLINE, eventually

QUIET = ("--no-progress", "--log-format", "json")


async def _run(
    emu: Emulator | EmuInfo,
    tmp: Path,
    *args: str | Path,
    auth: str = "aksk",
    extra: dict[str, Any] | None = None,
    secret_key: str | None = None,
) -> Result:
    config = write_config(tmp / "harvester.yaml", emu, tmp / "archive", auth=auth, extra=extra)
    env = cred_env(emu, auth=auth, secret_key=secret_key)
    return await run_cli("run", "--config", config, *args, env=env)


async def _assert_archive_clean(root: Path) -> None:
    """sha256sum -c passes everywhere, ``harvester verify`` is clean, nothing half-written remains."""
    checks = await sha256sum_check(root)
    assert checks, "no date folder"
    assert all(c.code == 0 for c in checks), [c.output for c in checks if c.code]
    verified = await run_cli("verify", root)
    assert verified.code == 0, verified.output
    assert " 0 missing, 0 corrupt, 0 extra" in verified.stdout
    assert not [p for p in files_under(root) if p.name.endswith((".part", ".tmp"))]
    for folder, lines in manifest_lines(root).items():
        paths = [e["path"] for e in lines]
        assert len(paths) == len(set(paths)), f"{folder}: a path is listed twice"


def _pending_days(summary: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (i["instance_id"], d["group_name"], d["replication_ip"], d["day"])
        for i in summary["instances"]
        for d in i["pending_days"]
    }


def _pending_replicas(summary: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(i, g, ip) for i, g, ip, _ in _pending_days(summary)}


# --------------------------------------------------------------------------- the whole journey


async def test_cli_and_emulator_processes_archive_a_demo_fleet(tmp_path: Path) -> None:
    """The console script against an emulator process: exit 0, verified archive, records, served bytes."""
    # Seed 42: the emulator's 2% "failed collection" dice first strike well after these 67 files.
    args = ("--instances", "6", "--seed", "42", "--log-size", "16384", "--collect-delay", "0.05")
    async with emulator_process(tmp_path, *args) as ready:
        info = EmuInfo.from_ready(ready)
        config = write_config(tmp_path / "harvester.yaml", info, tmp_path / "archive")
        root = tmp_path / "archive"
        summary_path = tmp_path / "summary.json"
        result = await run_cli(
            "run", "--config", config, *QUIET, "--summary-json", summary_path, env=cred_env(info), script=True
        )

        assert result.code == 0, result.output
        summary = json.loads(summary_path.read_text())
        assert summary["exit_code"] == 0
        assert summary["fatal"] is None
        assert summary["interrupted_by_signal"] is None
        entries = all_entries(root)
        assert len(entries) == summary["totals"]["downloaded"] > 40
        assert summary["totals"]["failed"] == summary["totals"]["cancelled"] == 0
        run_record = root / "runs" / f"{summary['run_id']}.json"
        assert json.loads(run_record.read_text()) == summary
        assert f"run {summary['run_id']}: exit 0" in result.stdout
        await _assert_archive_clean(root)

        # A sample of files: their bytes are what a fresh signed link to the same log serves.
        async with aiohttp.ClientSession() as session:
            for folder, e in entries[:: max(1, len(entries) // 5)]:
                url = (
                    f"{info.dcs_endpoint}/v2/{info.project_id}/instances/{e['instance_id']}"
                    f"/redislog/{e['log_id']}/links"
                )
                headers = sign("POST", url, info.access_key, info.secret_key)
                async with session.post(url, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    link = (await resp.json())["link"]
                async with session.get(URL(link, encoded=True)) as resp:
                    assert resp.status == 200
                    served = await resp.read()
                assert (root / folder / e["path"]).read_bytes() == served
                assert e["sha256"] == sha256_of(root / folder / e["path"])

        again = await run_cli(
            "run", "--config", config, *QUIET, "--summary-json", summary_path, env=cred_env(info), script=True
        )
        assert again.code == 0, again.output
        second = json.loads(summary_path.read_text())
        assert second["totals"]["downloaded"] == 0
        # Days a quiet Redis left without a file are pending, not given up: the second run
        # collects again for exactly those replicas (one POST each), and they stay pending
        # (two runs on one night are one night of evidence).
        assert second["totals"]["collections"] == len(_pending_replicas(summary))
        assert _pending_days(second) == _pending_days(summary)
        assert second["totals"]["pending"] == summary["totals"]["pending"] == len(_pending_days(summary))
        assert second["totals"]["no_log"] == 0
        assert second["totals"]["skipped"] == len(entries)
        assert f"0 downloaded (0 B), {len(entries)} already archived, 0 failed" in again.stdout
        assert all_entries(root) == entries


# --------------------------------------------------------------------------- killed and interrupted


async def _start_slow_run(emu: Emulator, tmp: Path, *args: str | Path) -> asyncio.subprocess.Process:
    """A run slowed by OBS latency; returns once some files are in a manifest."""
    emu.faults.obs.latency_ms = 150
    extra = {"limits": {"download_concurrency": 2}}
    config = write_config(tmp / "harvester.yaml", emu, tmp / "archive", extra=extra)
    proc = await start(cli_command("run", "--config", config, *QUIET, *args), env=cred_env(emu))
    await eventually(
        lambda: manifest_line_count(tmp / "archive") >= 4,
        what="four files archived by the run",
        stop=lambda: None if proc.returncode is None else "the run ended before it could be interrupted",
        every=0.02,
    )
    return proc


async def test_sigkill_mid_run_then_rerun_completes_the_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """SIGKILL mid-download, run again: every key archived once, no .part, verify and sha256sum clean."""
    emu = await emulator_factory(instances=6, seed=42)
    proc = await _start_slow_run(emu, tmp_path)
    proc.kill()
    killed = await finish(proc)
    assert killed.code == -signal.SIGKILL
    root = tmp_path / "archive"
    assert 0 < manifest_line_count(root) < len(expected_keys(emu))

    emu.faults.obs.latency_ms = 0
    rerun = await run_cli("run", "--config", tmp_path / "harvester.yaml", *QUIET, env=cred_env(emu))

    assert rerun.code == 0, rerun.output
    assert keys_of(root) == expected_keys(emu)
    assert len(all_entries(root)) == len(expected_keys(emu))
    assert len(payload_files(root)) == len(expected_keys(emu))
    await _assert_archive_clean(root)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_signal_stops_the_run_with_its_exit_code_and_a_consistent_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """SIGTERM exits 143 and SIGINT 130; the manifests match the files and no warning leaks to stderr."""
    emu = await emulator_factory(instances=6, seed=42)
    summary_path = tmp_path / "summary.json"
    proc = await _start_slow_run(emu, tmp_path, "--summary-json", summary_path)
    proc.send_signal(signum)
    result = await finish(proc, timeout=DEADLINE)

    assert result.code == code, result.output
    assert "Traceback" not in result.output
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == code
    assert summary["interrupted_by_signal"] == signum
    assert summary["totals"]["downloaded"] == len(all_entries(tmp_path / "archive"))
    await _assert_archive_clean(tmp_path / "archive")
    assert error_lines(result.stderr) == [], "stray output on stderr after an interrupt"


async def test_interrupted_run_reports_unfinished_files_as_cancelled(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """After SIGTERM the summary counts the files that were under way as cancelled, not as nothing."""
    emu = await emulator_factory(instances=6, seed=42)
    summary_path = tmp_path / "summary.json"
    proc = await _start_slow_run(emu, tmp_path, "--summary-json", summary_path)
    proc.send_signal(signal.SIGTERM)
    result = await finish(proc, timeout=DEADLINE)

    assert result.code == 143
    totals = json.loads(summary_path.read_text())["totals"]
    assert totals["downloaded"] < len(expected_keys(emu))
    assert totals["cancelled"] >= 1, totals


@pytest.mark.parametrize(
    ("signals", "code"),
    [
        ((signal.SIGTERM, signal.SIGTERM), 143),
        ((signal.SIGINT, signal.SIGINT), 130),
        ((signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT), 143),
    ],
)
async def test_repeated_signals_during_shutdown_still_end_with_summary_metrics_and_code(
    emulator_factory: EmulatorFactory, tmp_path: Path, signals: tuple[signal.Signals, ...], code: int
) -> None:
    """More signals while stopping: the first one's exit code, summary and metrics, no traceback."""
    emu = await emulator_factory(instances=6, seed=42)
    summary_path = tmp_path / "summary.json"
    metrics = tmp_path / "metrics.prom"
    proc = await _start_slow_run(emu, tmp_path, "--summary-json", summary_path, "--metrics-file", metrics)
    proc.send_signal(signals[0])
    # Two identical pending signals merge into one: wait until the first one was handled (the
    # run logs it and starts stopping), then send the next at once, inside the shutdown.
    assert proc.stderr is not None
    early: list[bytes] = []
    while not early or b"harvest.interrupted" not in early[-1]:
        early.append(await asyncio.wait_for(proc.stderr.readline(), DEADLINE))
        assert early[-1], "the run ended without logging the interruption"
    proc.send_signal(signals[1])
    for signum in signals[2:]:  # the rest spread over the shutdown and the writing of the records
        await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
    rest = await finish(proc, timeout=DEADLINE)
    result = dataclasses.replace(rest, stderr=b"".join(early).decode() + rest.stderr)

    assert result.code == code, (result.code, result.output[-3000:])
    assert "Traceback" not in result.output
    assert "KeyboardInterrupt" not in result.output
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == code
    assert summary["interrupted_by_signal"] == signals[0]
    assert f"exit {code}" in result.stdout
    assert parse_prometheus(metrics.read_text())["dcs_harvester_last_exit_code"] == {(): code}
    await _assert_archive_clean(tmp_path / "archive")
    assert error_lines(result.stderr) == [], "stray output on stderr after an interrupt"
    assert "harvest.signal_ignored" in result.stderr, "the extra signal was not noticed"


# --------------------------------------------------------------------------- bad configs


def _bad_configs(info: EmuInfo, root: Path) -> dict[str, tuple[dict[str, Any], dict[str, str], str]]:
    base = config_data(info, root)
    env = cred_env(info)
    no_sk = {k: v for k, v in env.items() if k != "OS_SECRET_KEY"}
    literal = {**base, "auth": {"method": "aksk", "secret_key": "LITERAL-SECRET-IN-YAML-1234"}}
    return {
        "unknown key": (
            {**base, "download": {**base["download"], "allowd_hosts": ["x"]}},
            env,
            "download: unknown key 'allowd_hosts'",
        ),
        "wrong type": (
            {**base, "limits": {"api_concurrency": "many"}},
            env,
            "limits.api_concurrency: must be an integer",
        ),
        "literal secret": (literal, env, "auth.secret_key: secrets must not be written in the config file"),
        "missing env var": (base, no_sk, "auth: environment variable OS_SECRET_KEY is not set"),
    }


@pytest.mark.parametrize("case", ["unknown key", "wrong type", "literal secret", "missing env var"])
async def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    """A broken config: exit 2, exactly one stderr line that names the key path, no traceback."""
    info = EmuInfo("http://127.0.0.1:9", "http://127.0.0.1:9/v3", "0" * 32, "AK", "SK", "u", "p", "d")
    data, env, key = _bad_configs(info, tmp_path / "archive")[case]
    config = tmp_path / "harvester.yaml"
    config.write_text(yaml.safe_dump(data))

    result = await run_cli("run", "--config", config, "--no-progress", env=env)

    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("harvester: error: harvester.yaml: ")
    assert key in lines[0]
    assert "Traceback" not in result.output
    assert "LITERAL-SECRET-IN-YAML-1234" not in result.output
    assert not (tmp_path / "archive").exists()


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("auth", "fmt"), [("aksk", "console"), ("aksk", "json"), ("password", "json"), ("password", "console")]
)
async def test_no_secret_appears_in_any_output_or_file(
    emulator_factory: EmulatorFactory, tmp_path: Path, auth: str, fmt: str
) -> None:
    """Keys, password, IAM tokens and signed-link query strings never reach stdout, stderr or the archive."""
    emu = await emulator_factory(instances=1, seed=8, healthy=True)
    emu.faults.links.error_500_rate = 0.3  # retries get logged with their reasons
    emu.faults.obs.error_500_rate = 0.5  # and some files fail for good, with a reason naming the URL
    emu.faults.obs.fail_first = 2
    summary_path = tmp_path / "summary.json"
    extra = {"limits": {"download_attempts": 2, "retry_attempts": 3}}

    result = await _run(
        emu,
        tmp_path,
        "--no-progress",
        "--log-format",
        fmt,
        "--log-level",
        "debug",
        "--summary-json",
        summary_path,
        "--metrics-file",
        tmp_path / "metrics.prom",
        auth=auth,
        extra=extra,
    )

    assert result.code in (0, 1), result.output
    assert "harvest.link_requested" in result.stderr, "debug logs (with redacted links) were not emitted"
    tokens = list(emu.state.tokens.tokens)
    if auth == "password":
        assert tokens, "password auth logged in without a token?"
    forbidden = {
        "secret key": emu.secret_key,
        "password": emu.password,
        "OBS secret key": emu.config.obs_secret_key,
        "OBS access key in a link": "AWSAccessKeyId=",
        "link signature": "Signature=",
        "link expiry parameter": "Expires=",
        **{f"IAM token {i}": t for i, t in enumerate(tokens)},
        **{f"IAM token {i} prefix": t[:24] for i, t in enumerate(tokens)},
    }
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    for path in files_under(tmp_path):
        if path.name != "harvester.yaml":
            texts[str(path.relative_to(tmp_path))] = path.read_bytes().decode("utf-8", "replace")
    assert "summary.json" in texts
    leaks = [
        f"{what} in {where}" for where, text in texts.items() for what, s in forbidden.items() if s in text
    ]
    assert leaks == []


# --------------------------------------------------------------------------- dry run and --instance


async def test_dry_run_writes_nothing_requests_nothing_and_shows_the_plan(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--dry-run: no file, collection or link; it prints each replica's plan, limited by --instance."""
    emu = await emulator_factory(instances=6, seed=42)
    chosen = next(i for i in emu.fleet.instances if i.collectable and len(i.replicas) > 1)
    others = [i.name for i in emu.fleet.instances if i.instance_id != chosen.instance_id]

    everything = await _run(emu, tmp_path, "--no-progress", "--dry-run")
    limited = await _run(emu, tmp_path, "--no-progress", "--dry-run", "--instance", chosen.name)

    assert everything.code == 0, everything.output
    assert limited.code == 0, limited.output
    assert emu.counters.collections == 0
    assert emu.counters.links_issued == 0
    assert emu.counters.downloads == 0
    assert files_under(tmp_path / "archive") == []
    for inst in emu.fleet.instances:
        if inst.collectable:
            assert f"emulated/{inst.name} " in everything.stdout
    plan = [line for line in limited.stdout.splitlines() if line.startswith("emulated/")]
    assert len(plan) == len(chosen.replicas)
    for replica in chosen.replicas:
        assert f"emulated/{chosen.name} {replica.ip}: collect query_time=7" in plan
    assert not [name for name in others if name in limited.stdout]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_dry_run_that_cannot_reach_the_api_fails_and_never_says_nothing_to_do(tmp_path: Path) -> None:
    """--dry-run against a dead DCS endpoint: exit 3, stderr names endpoint and cause, no "nothing to do"."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    info = EmuInfo(dead, f"{dead}/v3", "0" * 32, "AK", "SK", "u", "p", "d")
    extra = {"limits": {"retry_attempts": 1}}

    result = await _run(info, tmp_path, "--no-progress", "--log-format", "json", "--dry-run", extra=extra)

    assert result.code == 3, result.output
    assert "nothing to do" not in result.stdout
    lines = error_lines(result.stderr)
    assert lines, result.stderr
    assert all(line.startswith("harvester: error: ") for line in lines)
    assert any("127.0.0.1" in line and "connection refused" in line for line in lines), lines
    assert "Traceback" not in result.output


async def test_dry_run_with_refused_credentials_fails_and_never_says_nothing_to_do(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--dry-run with a wrong secret key: exit 3, 'authentication refused' on stderr, no "nothing to do"."""
    emu = await emulator_factory(instances=2, seed=8)

    result = await _run(emu, tmp_path, "--no-progress", "--dry-run", secret_key="WRONG" + "0" * 35)

    assert result.code == 3, result.output
    assert "nothing to do" not in result.stdout
    assert error_lines(result.stderr)[0].startswith("harvester: error: authentication refused")


async def test_dry_run_with_nothing_missing_says_nothing_to_do(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A dry run whose only instance is unusable says "nothing to do" and why it skipped it, exit 0."""
    emu = await emulator_factory(instances=6, seed=8)
    unusable = [i.name for i in emu.fleet.instances if not i.collectable]
    assert unusable, "seed 8 should hold an unusable instance"

    result = await _run(emu, tmp_path, "--no-progress", "--dry-run", "--instance", unusable[0])

    assert result.code == 0, result.output
    assert "nothing to do" in result.stdout
    assert f"skipped emulated/{unusable[0]}" in result.stdout


async def test_configured_instance_unknown_to_dcs_is_an_error_line_with_candidates(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A configured name DCS does not know: stderr names it with candidates; it counts as failed."""
    emu = await emulator_factory(instances=4, seed=42, healthy=True)
    good = emu.fleet.instances[0].name
    typo = good[:-1]
    extra = {"projects": [{**config_data(emu, tmp_path)["projects"][0], "instances": [good, typo]}]}

    result = await _run(emu, tmp_path, "--no-progress", "--log-format", "json", extra=extra)

    assert result.code == 1, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"harvester: error: emulated/{typo}: ")
    assert f"did you mean: {good}" in lines[0]

    alone = {"projects": [{**extra["projects"][0], "instances": [typo]}]}
    nothing = await _run(emu, tmp_path, "--no-progress", "--log-format", "json", extra=alone)
    assert nothing.code == 3, nothing.output
    assert f"did you mean: {good}" in error_lines(nothing.stderr)[0]


async def test_instance_option_archives_only_that_instance(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """``run --instance NAME`` collects and archives that instance alone; a later dry run plans the rest."""
    emu = await emulator_factory(instances=6, seed=42)
    chosen = next(i for i in emu.fleet.instances if i.collectable and len(i.replicas) > 1)

    result = await _run(emu, tmp_path, "--no-progress", "--instance", chosen.name)

    assert result.code == 0, result.output
    assert keys_of(tmp_path / "archive") == {k for k in expected_keys(emu) if k[0] == chosen.instance_id}
    assert emu.counters.collections == len(chosen.replicas)
    dry = await _run(emu, tmp_path, "--no-progress", "--dry-run")
    for replica in chosen.replicas:
        assert f"emulated/{chosen.name} {replica.ip}: collect nothing" in dry.stdout
    assert "collect query_time=7" in dry.stdout


# --------------------------------------------------------------------------- nothing could be done


async def test_unwritable_archive_exits_3_before_any_request(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """An archive root below a regular file: exit 3, one error line, and the cloud is never asked."""
    emu = await emulator_factory(instances=2, seed=8)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file\n")
    config = write_config(tmp_path / "harvester.yaml", emu, blocker / "archive")

    result = await run_cli("run", "--config", config, "--no-progress", env=cred_env(emu))

    assert result.code == 3, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "not writable" in lines[0]
    assert str(blocker / "archive") in lines[0]
    assert "Traceback" not in result.output
    assert sum(emu.counters.requests.values()) == 0


async def test_refused_credentials_exit_3_with_one_line(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A wrong secret key: exit 3 with one 'authentication refused' line, nothing archived, key not shown."""
    emu = await emulator_factory(instances=2, seed=8)
    wrong = "WRONGSECRETKEY0000000000000000000000000000"

    result = await _run(emu, tmp_path, "--no-progress", secret_key=wrong)

    assert result.code == 3, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("harvester: error: authentication refused")
    assert "Traceback" not in result.output
    assert wrong not in result.output
    assert emu.counters.auth_failures["DCS.1001"] >= 1
    assert payload_files(tmp_path / "archive") == []


# --------------------------------------------------------------------------- metrics


async def test_metrics_file_is_prometheus_text_and_keeps_last_success_after_a_failure(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """--metrics-file: per-project gauges and exit code; a failed run keeps the last success time."""
    emu = await emulator_factory(instances=2, seed=8, healthy=True)
    metrics = tmp_path / "metrics.prom"

    before = time.time()
    ok = await _run(emu, tmp_path, "--no-progress", "--metrics-file", metrics)
    after = time.time()

    assert ok.code == 0, ok.output
    first = parse_prometheus(metrics.read_text())
    project = (("project", "emulated"),)
    files = len(expected_keys(emu))
    assert first["dcs_harvester_files_archived"] == {project: files}
    assert first["dcs_harvester_bytes_archived"][project] == sum(
        p.stat().st_size for p in payload_files(tmp_path / "archive")
    )
    assert first["dcs_harvester_files_failed"] == {project: 0}
    assert first["dcs_harvester_last_exit_code"] == {(): 0}
    success = first["dcs_harvester_last_success_timestamp_seconds"][()]
    assert before - 1 <= success <= after + 1  # when this run ended (the 1 s allows for rounding)

    failed = await _run(emu, tmp_path, "--no-progress", "--metrics-file", metrics, secret_key="WRONG" * 8)

    assert failed.code == 3, failed.output
    second = parse_prometheus(metrics.read_text())
    assert second["dcs_harvester_last_exit_code"] == {(): 3}
    assert second["dcs_harvester_last_success_timestamp_seconds"] == {(): success}
    assert (
        second["dcs_harvester_last_run_start_timestamp_seconds"][()]
        > first["dcs_harvester_last_run_start_timestamp_seconds"][()]
    )
