"""Run-log collection and listing: validation, asynchronous readiness, days, retention, growth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from harvester.emulator import Emulator, Instance
from tests.emulator_sigv import EmulatorApi, EmulatorFactory
from tests.polling import collections_done

NOON = datetime(2021, 4, 16, 12, tzinfo=UTC)
#: A collection delay no loaded machine outruns: what must be seen unfinished is, until the
#: test moves the emulator clock past it (the fixture's 50 ms can pass between two requests).
SLOW = 3600.0


def _running(emu: Emulator, mode: str = "ha") -> Instance:
    return next(i for i in emu.fleet.find(cache_mode=mode) if i.collectable)


async def _collect(
    api: EmulatorApi, inst: Instance, query_time: int = 1, replica: int = 0, **extra: Any
) -> int:
    params: dict[str, object] = {"log_type": "run", "query_time": query_time}
    params["replication_id"] = inst.replicas[replica].replication_id
    params.update(extra)
    res = await api.call("POST", f"/instances/{inst.instance_id}/redislog", params)
    assert res.body == b""
    return res.status


async def _list(api: EmulatorApi, inst: Instance, **params: object) -> tuple[int, Any]:
    res = await api.call("GET", f"/instances/{inst.instance_id}/redislog", {"log_type": "run", **params})
    return res.status, res.json


async def _ready_list(api: EmulatorApi, inst: Instance) -> list[dict[str, Any]]:
    await collections_done(api.emu, inst.instance_id)
    status, body = await _list(api, inst, limit=1000)
    assert status == 200
    files: list[dict[str, Any]] = body["file_list"]
    return files


async def test_collect_is_async_and_hidden_until_ready(emulator_factory: EmulatorFactory) -> None:
    """POST answers 204 with no body; in hidden mode the list is 204 until the files are ready."""
    emu = await emulator_factory(collect_delay=SLOW)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        assert await _collect(api, inst) == 204
        assert (await _list(api, inst))[0] == 204
        emu.clock.advance(SLOW + 1)  # the collection's time passes
        files = await _ready_list(api, inst)
        assert [f["status"] for f in files] == ["succeed"]


async def test_creating_mode_shows_progress(emulator_factory: EmulatorFactory) -> None:
    """In creating mode new files are listed as 'creating', then 'succeed'."""
    emu = await emulator_factory(collect_mode="creating", collect_delay=SLOW)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        await _collect(api, inst, 3)
        status, body = await _list(api, inst)
        assert status == 200
        assert {f["status"] for f in body["file_list"]} == {"creating"}
        emu.clock.advance(SLOW + 1)  # the collection's time passes
        assert {f["status"] for f in await _ready_list(api, inst)} == {"succeed"}


async def test_clock_advance_makes_files_ready(emulator_factory: EmulatorFactory) -> None:
    """With a long collection delay, moving the emulator clock past it makes files ready."""
    emu = await emulator_factory(collect_delay=3600, collect_mode="creating")
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        await _collect(api, inst)
        assert (await _list(api, inst))[1]["file_list"][0]["status"] == "creating"
        emu.clock.advance(3601)
        assert (await _list(api, inst))[1]["file_list"][0]["status"] == "succeed"


async def test_failed_fraction(emulator_factory: EmulatorFactory) -> None:
    """failed_rate=1 makes every file end 'failed', and its link is refused with DCS.4026."""
    emu = await emulator_factory(failed_rate=1.0)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        await _collect(api, inst, 3)
        files = await _ready_list(api, inst)
        assert {f["status"] for f in files} == {"failed"}
        res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{files[0]['id']}/links")
        assert res.status == 400
        assert res.json["error_code"] == "DCS.4026"


async def test_quiet_days_create_no_file(emulator_factory: EmulatorFactory) -> None:
    """A quiet (replica, day) yields no file; with quiet_rate=1 the list stays 204."""
    emu = await emulator_factory(quiet_rate=1.0)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        assert await _collect(api, inst, 7) == 204
        await collections_done(emu, inst.instance_id)
        assert (await _list(api, inst))[0] == 204
        assert emu.counters.items_created == 0


async def test_partial_quiet_rate_is_deterministic(emulator_factory: EmulatorFactory) -> None:
    """With quiet_rate=0.5 some days are missing, and the same days on every collection."""
    emu = await emulator_factory(quiet_rate=0.5)
    emu.clock.set_time(NOON)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu, "cluster")
        for replica in range(len(inst.replicas)):
            await _collect(api, inst, 7, replica)
            await _collect(api, inst, 7, replica)
        files = await _ready_list(api, inst)
        pairs = Counter((f["replication_ip"], f["time"]) for f in files)
        assert set(pairs.values()) == {2}
        assert 0 < len(pairs) < 7 * len(inst.replicas)


async def test_day_semantics_and_names(emulator_api: EmulatorApi) -> None:
    """query_time=0 gives today; 3 gives the three days before today; names follow redis_{ip}_{day}.log."""
    emu = emulator_api.emu
    emu.clock.set_time(NOON)
    inst = _running(emu)
    await _collect(emulator_api, inst, 0, replica=1)
    await _collect(emulator_api, inst, 3, replica=1)
    files = await _ready_list(emulator_api, inst)
    assert [f["time"] for f in files] == ["2021-04-16", "2021-04-13", "2021-04-14", "2021-04-15"]
    replica = inst.replicas[1]
    for f in files:
        assert f["file_name"] == f"redis_{replica.ip}_{f['time']}.log"
        assert f["replication_ip"] == replica.ip
        assert f["group_name"] == "group-0"
        assert f["backup_id"] == f["id"]


async def test_each_collection_creates_new_ids(emulator_api: EmulatorApi) -> None:
    """Collecting the same day twice lists two items with different ids."""
    inst = _running(emulator_api.emu)
    await _collect(emulator_api, inst)
    await _collect(emulator_api, inst)
    files = await _ready_list(emulator_api, inst)
    assert len(files) == 2
    assert files[0]["id"] != files[1]["id"]
    assert files[0]["time"] == files[1]["time"]
    assert emulator_api.emu.counters.collections == 2


async def test_single_needs_no_replication_id(emulator_api: EmulatorApi) -> None:
    """For a single-node instance replication_id may be omitted."""
    inst = _running(emulator_api.emu, "single")
    res = await emulator_api.call(
        "POST", f"/instances/{inst.instance_id}/redislog", {"log_type": "run", "query_time": 1}
    )
    assert res.status == 204
    files = await _ready_list(emulator_api, inst)
    assert files[0]["replication_ip"] == inst.replicas[0].ip


async def test_collect_validation_errors(emulator_api: EmulatorApi) -> None:
    """Bad log_type, query_time or replication_id are 400 DCS.4800 with the documented messages."""
    emu = emulator_api.emu
    inst = _running(emu)
    other = _running(emu, "cluster")
    path = f"/instances/{inst.instance_id}/redislog"
    rid = inst.replicas[0].replication_id
    cases: list[tuple[dict[str, object], str]] = [
        ({"log_type": "slow", "query_time": 1, "replication_id": rid}, "Invalid logType."),
        ({"log_type": "run", "query_time": 2, "replication_id": rid}, "Invalid query_time in the request."),
        ({"log_type": "run", "query_time": 1}, "Invalid replication_id in the request."),
        (
            {"log_type": "run", "query_time": 1, "replication_id": other.replicas[0].replication_id},
            "Invalid replication_id in the request.",
        ),
    ]
    for params, message in cases:
        res = await emulator_api.call("POST", path, params)
        assert res.status == 400
        assert res.json == {"error_code": "DCS.4800", "error_msg": message, "error_ext_msg": None}


async def test_collect_refused_for_old_engine_and_unhealthy(emulator_api: EmulatorApi) -> None:
    """Redis 3.0 is 400 DCS.4007, a non-RUNNING instance 400 DCS.4049, unknown 404 DCS.3022."""
    emu = emulator_api.emu
    old = emu.fleet.find(engine_version="3.0")[0]
    sick = next(i for i in emu.fleet.instances if i.status != "RUNNING" and i.engine_version != "3.0")
    for inst, status, code in ((old, 400, "DCS.4007"), (sick, 400, "DCS.4049")):
        res = await emulator_api.call(
            "POST",
            f"/instances/{inst.instance_id}/redislog",
            {"log_type": "run", "query_time": 1, "replication_id": inst.replicas[0].replication_id},
        )
        assert (res.status, res.json["error_code"]) == (status, code)
    res = await emulator_api.call(
        "POST", "/instances/00000000-0000-4000-8000-000000000000/redislog", {"log_type": "run"}
    )
    assert (res.status, res.json["error_code"]) == (404, "DCS.3022")


async def test_list_validation_errors(emulator_api: EmulatorApi) -> None:
    """Listing needs log_type=run and a limit in 1..1000."""
    inst = _running(emulator_api.emu)
    path = f"/instances/{inst.instance_id}/redislog"
    assert (await emulator_api.call("GET", path, {"log_type": "slow"})).json[
        "error_msg"
    ] == "Invalid logType."
    assert (await emulator_api.call("GET", path, {"log_type": "run", "limit": 0})).status == 400
    assert (await emulator_api.call("GET", path, {"log_type": "run", "offset": -1})).status == 400


async def test_list_paginates(emulator_api: EmulatorApi) -> None:
    """offset/limit page through total_num files without overlap; past the end is an empty page."""
    inst = _running(emulator_api.emu, "cluster")
    for replica in range(len(inst.replicas)):
        await _collect(emulator_api, inst, 7, replica)
    await collections_done(emulator_api.emu, inst.instance_id)
    ids: list[str] = []
    offset = 0
    while True:
        status, body = await _list(emulator_api, inst, offset=offset, limit=4)
        assert status == 200
        assert body["total_num"] == 7 * len(inst.replicas)
        if not body["file_list"]:
            break
        ids += [f["id"] for f in body["file_list"]]
        offset += 4
    assert len(ids) == len(set(ids)) == 7 * len(inst.replicas)
    status, body = await _list(emulator_api, inst)
    assert len(body["file_list"]) == 10


async def test_retention_drops_old_days(emulator_api: EmulatorApi) -> None:
    """Files older than 7 days vanish from the list and their ids become unknown (404 DCS.4001)."""
    emu = emulator_api.emu
    emu.clock.set_time(NOON)
    inst = _running(emu)
    await _collect(emulator_api, inst, 7)
    files = await _ready_list(emulator_api, inst)
    assert files[0]["time"] == "2021-04-09"
    emu.clock.advance(2 * 86400)
    _, body = await _list(emulator_api, inst)
    assert [f["time"] for f in body["file_list"]] == [f"2021-04-{d}" for d in range(11, 16)]
    res = await emulator_api.call("POST", f"/instances/{inst.instance_id}/redislog/{files[0]['id']}/links")
    assert (res.status, res.json["error_code"]) == (404, "DCS.4001")


async def test_today_grows_but_items_are_stable(emulator_api: EmulatorApi) -> None:
    """Today's file is bigger on a later collection; an item's size never changes."""
    emu = emulator_api.emu
    emu.clock.set_time(NOON - timedelta(hours=6))
    inst = _running(emu)
    await _collect(emulator_api, inst, 0)
    emu.clock.advance(6 * 3600)
    await _collect(emulator_api, inst, 0)
    first, second = emu.runlog_items(inst.instance_id)
    assert first.day == second.day
    assert first.spec.size < second.spec.size <= first.spec.full_size
    assert abs(second.spec.size / second.spec.full_size - 0.5) < 0.01
    emu.clock.advance(3600)
    assert emu.runlog_items(inst.instance_id)[0].spec.size == first.spec.size
