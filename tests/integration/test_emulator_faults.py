"""Fault injection knobs, each observed over real HTTP, plus the counters that report them."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

from harvester.emulator import Emulator, Instance
from tests.emulator_sigv import EmulatorApi
from tests.polling import collections_done


def _running(emu: Emulator) -> Instance:
    return next(i for i in emu.fleet.find(cache_mode="ha") if i.collectable)


async def _ready_file(api: EmulatorApi) -> tuple[Instance, dict[str, Any]]:
    inst = _running(api.emu)
    params = {"log_type": "run", "query_time": 1, "replication_id": inst.replicas[0].replication_id}
    await api.call("POST", f"/instances/{inst.instance_id}/redislog", params)
    await collections_done(api.emu, inst.instance_id)
    res = await api.call("GET", f"/instances/{inst.instance_id}/redislog", {"log_type": "run"})
    return inst, res.json["file_list"][0]


async def _link(api: EmulatorApi) -> str:
    inst, item = await _ready_file(api)
    res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{item['id']}/links")
    link: str = res.json["link"]
    return link


async def test_latency(emulator_api: EmulatorApi) -> None:
    """latency_ms delays every request of the route class."""
    emulator_api.emu.faults.dcs.latency_ms = 150
    t0 = time.perf_counter()
    assert (await emulator_api.call("GET", "/instances")).status == 200
    assert time.perf_counter() - t0 >= 0.15
    assert emulator_api.emu.counters.faults["latency"] == 1


async def test_error_500_on_links_only(emulator_api: EmulatorApi) -> None:
    """error_500_rate=1 on links makes link calls 500 DCS.5000 while listing still works."""
    emu = emulator_api.emu
    emu.faults.links.error_500_rate = 1.0
    inst, item = await _ready_file(emulator_api)
    res = await emulator_api.call("POST", f"/instances/{inst.instance_id}/redislog/{item['id']}/links")
    assert res.status == 500
    assert res.json == {"error_code": "DCS.5000", "error_msg": "Internal error.", "error_ext_msg": None}
    emu.faults.links.error_500_rate = 0.0
    res = await emulator_api.call("POST", f"/instances/{inst.instance_id}/redislog/{item['id']}/links")
    assert res.status == 200
    assert emu.counters.faults["error_500"] == 1
    assert emu.counters.statuses["links:500"] == 1


async def test_fail_first_k(emulator_api: EmulatorApi) -> None:
    """fail_first=2 fails exactly the first two requests of the class."""
    emulator_api.emu.faults.dcs.fail_first = 2
    statuses = [(await emulator_api.call("GET", "/instances")).status for _ in range(4)]
    assert statuses == [500, 500, 200, 200]


async def test_throttle_with_retry_after_seconds(emulator_api: EmulatorApi) -> None:
    """throttle_rate=1 answers 429 APIG.0308 with Retry-After in seconds."""
    emulator_api.emu.faults.dcs.throttle_rate = 1.0
    emulator_api.emu.faults.dcs.retry_after = 3
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 429
    assert res.json["error_code"] == "APIG.0308"
    assert res.headers["Retry-After"] == "3"


async def test_throttle_with_retry_after_http_date(emulator_api: EmulatorApi) -> None:
    """retry_after_http_date=True sends an HTTP-date that far in the future."""
    knobs = emulator_api.emu.faults.dcs
    knobs.fail_first, knobs.fail_first_kind = 1, "throttle_429"
    knobs.retry_after, knobs.retry_after_http_date = 10, True
    before = time.time()
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 429
    when = parsedate_to_datetime(res.headers["Retry-After"]).timestamp()
    assert int(before) + 10 <= when <= time.time() + 10  # whole seconds: the date drops the fraction


async def test_rate_limit_per_project(emulator_api: EmulatorApi) -> None:
    """Above rate_limit_rps requests in a second the project gets 429 with Retry-After."""
    emulator_api.emu.faults.dcs.rate_limit_rps = 3
    statuses = [(await emulator_api.call("GET", "/instances")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert emulator_api.emu.counters.faults["rate_limit"] == 2


async def test_connection_reset(emulator_api: EmulatorApi) -> None:
    """reset_rate=1 closes the connection abruptly; the client sees a connection error."""
    emulator_api.emu.faults.dcs.reset_rate = 1.0
    with pytest.raises(aiohttp.ClientError):
        await emulator_api.call("GET", "/instances")
    emulator_api.emu.faults.dcs.reset_rate = 0.0
    assert (await emulator_api.call("GET", "/instances")).status == 200


async def test_malformed_json(emulator_api: EmulatorApi) -> None:
    """malformed_json_rate=1 sends a 200 whose JSON body is cut short."""
    emulator_api.emu.faults.dcs.malformed_json_rate = 1.0
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 200
    with pytest.raises(json.JSONDecodeError):
        _ = res.json


async def test_iam_faults(emulator_api: EmulatorApi) -> None:
    """IAM has its own knobs: a failing token call does not affect DCS."""
    emulator_api.emu.faults.iam.fail_first = 1
    async with emulator_api.session.post(emulator_api.emu.iam_endpoint + "/auth/tokens", json={}) as resp:
        assert resp.status == 500
    emulator_api.auth = "token"
    assert (await emulator_api.call("GET", "/instances")).status == 200


async def test_obs_truncated_body(emulator_api: EmulatorApi) -> None:
    """truncate_rate=1 sends fewer bytes than Content-Length, then closes."""
    emu = emulator_api.emu
    link = await _link(emulator_api)
    emu.faults.obs.truncate_rate = 1.0
    with pytest.raises(aiohttp.ClientPayloadError):
        await emulator_api.get(link)
    assert emu.counters.faults["truncate"] == 1
    assert 0 < emu.counters.bytes_served < emu.runlog_items()[0].spec.size


async def test_obs_stall_then_complete(emulator_api: EmulatorApi) -> None:
    """stall_rate=1 pauses mid-body for stall_seconds, then finishes the body."""
    emu = emulator_api.emu
    link = await _link(emulator_api)
    emu.faults.obs.stall_rate, emu.faults.obs.stall_seconds = 1.0, 0.3
    t0 = time.perf_counter()
    res = await emulator_api.get(link)
    assert time.perf_counter() - t0 >= 0.3
    assert res.body == emu.runlog_items()[0].spec.read_all()


async def test_obs_500_and_throttle_are_xml(emulator_api: EmulatorApi) -> None:
    """OBS faults speak XML: 500 InternalError, and 503 SlowDown with Retry-After."""
    emu = emulator_api.emu
    link = await _link(emulator_api)
    emu.faults.obs.fail_first = 1
    res = await emulator_api.get(link)
    assert res.status == 500
    assert b"<Code>InternalError</Code>" in res.body
    emu.faults.obs.throttle_rate = 1.0
    res = await emulator_api.get(link)
    assert res.status == 503
    assert b"SlowDown" in res.body
    assert res.headers["Retry-After"] == "1"


async def test_counters_per_route_class(emulator_api: EmulatorApi) -> None:
    """Requests are counted per route class, and reset() zeroes everything."""
    emu = emulator_api.emu
    await emulator_api.get(await _link(emulator_api))
    counters = emu.counters
    assert counters.requests["dcs"] == 2
    assert counters.requests["links"] == 1
    assert counters.requests["obs"] == 1
    assert counters.downloads == 1
    assert counters.collections == 1
    assert counters.snapshot()["links_issued"] == 1
    counters.reset()
    assert counters.snapshot()["requests"] == {}
