"""The slow-log call: time-window validation, sorting, paging and entry shape."""

from __future__ import annotations

from typing import Any

from harvester.emulator import Instance
from tests.emulator_sigv import EmulatorApi

HOUR_MS = 3_600_000


def _inst(api: EmulatorApi) -> Instance:
    return api.emu.fleet.find(cache_mode="cluster")[0]


async def _slowlog(api: EmulatorApi, **params: object) -> tuple[int, Any]:
    res = await api.call("GET", f"/instances/{_inst(api).instance_id}/slowlog", params)
    return res.status, res.json


def _now_ms(api: EmulatorApi) -> int:
    return int(api.emu.clock.now() * 1000)


async def test_slowlog_entries_over_last_days(emulator_api: EmulatorApi) -> None:
    """A 6-day window returns about slowlog_per_day entries per day in the documented shape."""
    now = _now_ms(emulator_api)
    status, body = await _slowlog(emulator_api, start_time=now - 144 * HOUR_MS, end_time=now, limit=1000)
    assert status == 200
    assert 5 * 24 <= body["total_num"] <= 7 * 24
    assert body["count"] == len(body["slowlogs"]) == body["total_num"]
    entry = body["slowlogs"][0]
    assert set(entry) == {"id", "command", "start_time", "duration", "shard_name", "database_id", "username"}
    assert isinstance(entry["duration"], str)
    assert entry["duration"].isdigit()
    assert entry["start_time"].endswith("Z")
    assert len(entry["start_time"]) == len("2020-06-19T07:06:07Z")
    assert entry["shard_name"].startswith("group-")


async def test_slowlog_sorting_and_paging(emulator_api: EmulatorApi) -> None:
    """Default is start_time desc; sort_key=duration asc orders by duration; pages do not overlap."""
    now = _now_ms(emulator_api)
    window = {"start_time": now - 72 * HOUR_MS, "end_time": now}
    _, desc = await _slowlog(emulator_api, **window, limit=1000)
    times = [e["start_time"] for e in desc["slowlogs"]]
    assert times == sorted(times, reverse=True)
    _, by_duration = await _slowlog(emulator_api, **window, sort_key="duration", sort_dir="asc", limit=1000)
    durations = [int(e["duration"]) for e in by_duration["slowlogs"]]
    assert durations == sorted(durations)
    _, page1 = await _slowlog(emulator_api, **window, limit=5)
    _, page2 = await _slowlog(emulator_api, **window, offset=5, limit=5)
    assert page1["count"] == 5
    ids = [e["id"] for e in page1["slowlogs"] + page2["slowlogs"]]
    assert len(set(ids)) == 10
    assert ids == [e["id"] for e in desc["slowlogs"][:10]]


async def test_slowlog_is_deterministic(emulator_api: EmulatorApi) -> None:
    """The same window gives the same entries."""
    now = _now_ms(emulator_api)
    window = {"start_time": now - 48 * HOUR_MS, "end_time": now - 24 * HOUR_MS, "limit": 1000}
    assert await _slowlog(emulator_api, **window) == await _slowlog(emulator_api, **window)


async def test_slowlog_time_errors(emulator_api: EmulatorApi) -> None:
    """Invalid, reversed, too old and future windows give DCS.4800/4025/4030/4031."""
    now = _now_ms(emulator_api)
    cases: list[tuple[dict[str, object], str]] = [
        ({"start_time": "yesterday", "end_time": now}, "DCS.4800"),
        ({"end_time": now}, "DCS.4800"),
        ({"start_time": now - HOUR_MS, "end_time": now - 2 * HOUR_MS}, "DCS.4025"),
        ({"start_time": now - 8 * 24 * HOUR_MS, "end_time": now}, "DCS.4030"),
        ({"start_time": now + HOUR_MS, "end_time": now + 2 * HOUR_MS}, "DCS.4031"),
        ({"start_time": now - HOUR_MS, "end_time": now, "sort_key": "size"}, "DCS.4800"),
        ({"start_time": now - HOUR_MS, "end_time": now, "sort_dir": "up"}, "DCS.4800"),
    ]
    for params, code in cases:
        status, body = await _slowlog(emulator_api, **params)
        assert (status, body["error_code"]) == (400, code), params
