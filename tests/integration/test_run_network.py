"""The nightly harvest against a network that misbehaves below HTTP statuses.

Peers that accept a request and then say nothing, objects served gzip- or deflate-encoded
(with and without Content-Length), redirects, an IAM that fails once at start-up, and an
endpoint that dies in the middle of a run. Everything over real loopback HTTP to the emulator;
"promptly" is asserted as "the run finished while the fault was set to last far longer", with
a deadline on the run rather than a wall-clock bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
import structlog

from harvester.cloud import breaker
from harvester.cloud.api import JsonApi
from harvester.cloud.transport import Transport
from harvester.emulator import Emulator
from harvester.errors import TransportError
from harvester.models import Outcome, RunSummary
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
    sha256sum_check,
    when,
)

DEADLINE = 120.0  # far below any configured stall below, far above a healthy run


async def _harvest(settings: Any) -> RunSummary:
    return await asyncio.wait_for(harvest(settings), DEADLINE)


def _failures(summary: RunSummary) -> list[str]:
    return [f.reason for f in summary.files if f.outcome is not Outcome.ARCHIVED]


async def _assert_plain_archive(emu: Emulator, root: Path) -> None:
    """Every expected file holds the log text itself and the manifest hashes exactly those bytes."""
    assert keys_of(root) == expected_keys(emu)
    served = emulator_bytes(emu)
    for folder, e in all_entries(root):
        data = (root / folder / e["path"]).read_bytes()
        assert data == served[e["log_id"]], f"{folder}/{e['path']} is not the plain log"
        assert e["size"] == len(data)
        assert e["sha256"] == hashlib.sha256(data).hexdigest()
    assert all(c.code == 0 for c in await sha256sum_check(root))
    assert not [p for p in files_under(root) if p.name.endswith((".part", ".tmp"))]


# --------------------------------------------------------------------------- stalls before headers


async def test_a_download_that_stalls_before_its_headers_is_abandoned_after_stall_timeout(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """OBS accepts a GET and sends nothing for 10 min: with stall_timeout 1 s it is retried and archived."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.obs.fail_first = 1
    emu.faults.obs.fail_first_kind = "stall_headers"
    emu.faults.obs.stall_seconds = 600
    settings = settings_for(emu, tmp_path, extra={"download": {"stall_timeout": 1}})

    with structlog.testing.capture_logs() as logs:
        summary = await _harvest(settings)

    assert code_of(summary) == 0, _failures(summary)
    assert emu.counters.faults["stall_headers"] == 1
    retried = [e for e in logs if e["event"] == "harvest.download_retried"]
    assert len(retried) == 1
    assert "no response within 1 s (download.stall_timeout)" in retried[0]["reason"]
    assert [e["attempts"] for _, e in all_entries(settings.archive.root) if e["attempts"] > 1] == [2]
    await _assert_plain_archive(emu, settings.archive.root)


async def test_an_api_call_that_stalls_before_its_headers_times_out(emulator: Emulator) -> None:
    """A DCS call whose answer never starts fails after the API read timeout, and the next one works."""
    emulator.faults.dcs.fail_first = 1
    emulator.faults.dcs.fail_first_kind = "stall_headers"
    emulator.faults.dcs.stall_seconds = 600
    url = f"{emulator.dcs_endpoint}/v2/{emulator.project_id}/instances"
    from harvester.cloud.auth import AkSkAuth  # noqa: PLC0415
    from harvester.models import Secret  # noqa: PLC0415

    auth = AkSkAuth(emulator.access_key, Secret(emulator.secret_key), project_id=emulator.project_id)
    async with Transport(read_timeout=0.5, connect_timeout=2.0) as transport:
        api = JsonApi(transport, auth)
        with pytest.raises(TransportError, match=r"no response within 0\.5 s"):
            await asyncio.wait_for(api.call("GET", url, what="list"), DEADLINE)
        status, body = await api.call("GET", url, what="list")
    assert status == 200
    assert body["instance_num"] == len(emulator.fleet.instances)
    assert emulator.counters.faults["stall_headers"] == 1


# --------------------------------------------------------------------------- Content-Encoding


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_encoded_objects_are_archived_as_the_log_text(
    emulator_factory: EmulatorFactory, tmp_path: Path, coding: str, chunked: bool
) -> None:
    """OBS serves objects gzip/deflate-encoded: the archive holds the log text and its sha256."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True, log_size=64 * 1024)
    emu.faults.obs.content_encoding = coding
    emu.faults.obs.omit_content_length = chunked
    settings = settings_for(emu, tmp_path)

    summary = await _harvest(settings)

    assert code_of(summary) == 0, _failures(summary)
    await _assert_plain_archive(emu, settings.archive.root)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_truncated_encoded_body_is_retried_and_never_archived(
    emulator_factory: EmulatorFactory, tmp_path: Path, chunked: bool
) -> None:
    """A gzip body cut in half (with or without Content-Length) is retried; the archive is whole."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True, log_size=64 * 1024)
    emu.faults.obs.content_encoding = "gzip"
    emu.faults.obs.omit_content_length = chunked
    emu.faults.obs.truncate_rate = 1.0
    settings = settings_for(emu, tmp_path)

    def heal() -> None:
        emu.faults.obs.truncate_rate = 0.0

    async with background(when(lambda: emu.counters.faults["truncate"] >= 1, heal)):
        summary = await _harvest(settings)

    assert code_of(summary) == 0, _failures(summary)
    cut = emu.counters.faults["truncate"]
    assert cut >= 1
    assert len([e for _, e in all_entries(settings.archive.root) if e["attempts"] > 1]) == cut
    await _assert_plain_archive(emu, settings.archive.root)


async def test_an_encoding_we_cannot_decode_fails_the_file_and_names_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """`Content-Encoding: br` is not archived as if it were the log: each file fails once, saying why."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.obs.content_encoding = "br"
    settings = settings_for(emu, tmp_path)

    summary = await _harvest(settings)

    assert code_of(summary) == 3
    assert summary.files
    assert all(f.outcome is Outcome.FAILED for f in summary.files)
    assert all("unsupported Content-Encoding 'br'" in f.reason for f in summary.files)
    assert all(f.attempts == 1 for f in summary.files)
    assert not all_entries(settings.archive.root)


# --------------------------------------------------------------------------- redirects


async def test_redirects_to_an_allowed_host_are_followed(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """OBS answers 307 twice before serving: every file is archived from where it was sent."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.obs.redirect_hops = 2
    settings = settings_for(emu, tmp_path)

    summary = await _harvest(settings)

    assert code_of(summary) == 0, _failures(summary)
    assert emu.counters.faults["redirect"] == 2 * len(expected_keys(emu))
    await _assert_plain_archive(emu, settings.archive.root)


async def test_endless_redirects_fail_the_file_after_a_bounded_number(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A redirect loop is not followed forever: each file fails naming the redirects."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.obs.redirect_hops = 100
    settings = settings_for(emu, tmp_path)

    summary = await _harvest(settings)

    assert code_of(summary) == 3
    assert all("redirected more than 3 times" in f.reason for f in summary.files), _failures(summary)
    assert emu.counters.faults["redirect"] == 4 * len(summary.files)
    assert emu.counters.downloads == 0


async def test_a_redirect_to_a_foreign_host_is_refused_before_the_link_is_sent_there(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A 307 to a host outside download.allowed_hosts fails the file; nothing is requested there."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.obs.redirect_hops = 1
    emu.faults.obs.redirect_base = "http://evil.example.invalid:8080"
    settings = settings_for(emu, tmp_path)

    summary = await _harvest(settings)

    assert code_of(summary) == 3
    for f in summary.files:
        assert f.outcome is Outcome.FAILED
        assert "redirects to host 'evil.example.invalid', which is not in download.allowed_hosts" in f.reason
        assert f.attempts == 1
    assert "Signature" not in " ".join(_failures(summary))


# --------------------------------------------------------------------------- IAM at start-up


@pytest.mark.parametrize("kind", ["error_500", "reset"])
@pytest.mark.parametrize("by", ["project_name", "project_id"])
async def test_one_iam_failure_at_start_up_is_retried(
    emulator_factory: EmulatorFactory, tmp_path: Path, kind: str, by: str
) -> None:
    """IAM fails the first request (500 or a reset): the project lookup or login is retried, exit 0."""
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    emu.faults.iam.fail_first = 1
    emu.faults.iam.fail_first_kind = kind  # type: ignore[assignment]
    project: dict[str, Any] = {
        "name": "emulated",
        "region": "eu-de",
        "endpoints": {"dcs": emu.dcs_endpoint, "iam": emu.iam_endpoint},
    }
    project[by] = emu.project_names[0] if by == "project_name" else emu.project_id
    settings = settings_for(emu, tmp_path, auth="password", extra={"projects": [project]})

    with structlog.testing.capture_logs() as logs:
        summary = await _harvest(settings)

    assert code_of(summary) == 0, _failures(summary)
    assert emu.counters.faults[kind] == 1
    retries = [e for e in logs if e["event"] == "retry.scheduled"]
    assert len(retries) == 1
    assert "IAM login" in retries[0]["reason"]
    assert retries[0]["wait"] > 0
    await _assert_plain_archive(emu, settings.archive.root)


# --------------------------------------------------------------------------- a dead endpoint


async def test_an_endpoint_that_dies_mid_run_fails_the_remaining_work_promptly(
    emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cloud goes away after the first links: the breaker opens and the rest fails without retrying."""
    monkeypatch.setattr(breaker, "MIN_OUTAGE", 0.5)  # the run's breakers open after 0.5 s of outage
    emu = await emulator_factory(instances=4, seed=11, healthy=True)
    emu.faults.obs.latency_ms = 200  # downloads are in flight and queued when it dies
    settings = settings_for(emu, tmp_path, extra={"limits": {"download_concurrency": 2}})
    closing: list[asyncio.Task[None]] = []

    def die() -> None:
        closing.append(asyncio.ensure_future(emu.close()))

    with structlog.testing.capture_logs() as logs:
        async with background(when(lambda: emu.counters.links_issued >= 2, die)):
            summary = await _harvest(settings)
    await asyncio.gather(*closing)

    assert closing, "the emulator never got to issue links"
    assert code_of(summary) in (1, 3)
    endpoint = emu.base_url
    assert list(summary.unreachable) == ["emulated"]
    assert summary.unreachable["emulated"].startswith(
        f"DCS endpoint {endpoint} unreachable: connection refused"
    )
    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    unreachable = [f for f in failed if f"endpoint {endpoint} is unreachable" in f.reason]
    assert unreachable, _failures(summary)
    keys = [(f.instance_id, f.group_name, f.replication_ip, f.day) for f in summary.files]
    assert len(keys) == len(set(keys)), "a file has more than one outcome"
    events = [e["event"] for e in logs]
    assert events.count("harvest.endpoint_unreachable") == 1
    # Without the breaker every queued file spends its own retry budget; once it opens, nothing does.
    after = events[events.index("harvest.endpoint_unreachable") :]
    assert "retry.scheduled" not in after
    assert "harvest.download_retried" not in after


async def test_an_unreachable_iam_is_named_as_such(
    emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DCS answers but the IAM endpoint refuses connections: the one error names IAM and the cause."""
    monkeypatch.setattr(breaker, "MIN_OUTAGE", 0.5)
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    project = {
        "name": "emulated",
        "region": "eu-de",
        "project_id": emu.project_id,
        "endpoints": {"dcs": emu.dcs_endpoint, "iam": f"{dead}/v3"},
    }
    settings = settings_for(emu, tmp_path, auth="password", extra={"projects": [project]})

    summary = await _harvest(settings)

    assert code_of(summary) == 3
    assert list(summary.unreachable) == ["emulated"]
    assert summary.unreachable["emulated"].startswith(f"IAM endpoint {dead} unreachable: connection refused")
    assert emu.counters.requests["dcs"] == 0


async def test_a_tls_failure_is_named_as_the_cause(
    emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """https to a peer that does not speak TLS: exit 3, the one error says 'TLS handshake failed'."""
    monkeypatch.setattr(breaker, "MIN_OUTAGE", 0.5)
    emu = await emulator_factory(instances=1, seed=11, healthy=True)
    wrong = emu.base_url.replace("http://", "https://")
    project = {
        "name": "emulated",
        "region": "eu-de",
        "project_id": emu.project_id,
        "endpoints": {"dcs": wrong, "iam": f"{wrong}/v3"},
    }
    settings = settings_for(emu, tmp_path, extra={"projects": [project]})

    summary = await _harvest(settings)

    assert code_of(summary) == 3
    assert summary.unreachable["emulated"].startswith(
        f"DCS endpoint {wrong} unreachable: TLS handshake failed"
    )
