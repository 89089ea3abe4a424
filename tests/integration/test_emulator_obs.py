"""Download links and OBS: presigned GETs, expiry, signatures, Range, and hostile mode."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from harvester.emulator import Emulator, Instance
from tests.emulator_sigv import EmulatorApi, EmulatorFactory
from tests.polling import collections_done


def _running(emu: Emulator, mode: str = "ha") -> Instance:
    return next(i for i in emu.fleet.find(cache_mode=mode) if i.collectable)


async def _collected_files(
    api: EmulatorApi, inst: Instance, query_time: int = 1, *, ready: bool = True
) -> list[dict[str, Any]]:
    """Collect, then list: once every file is done, or (``ready=False``) at once."""
    params = {"log_type": "run", "query_time": query_time, "replication_id": inst.replicas[0].replication_id}
    assert (await api.call("POST", f"/instances/{inst.instance_id}/redislog", params)).status == 204
    if ready:
        await collections_done(api.emu, inst.instance_id)
    res = await api.call("GET", f"/instances/{inst.instance_id}/redislog", {"log_type": "run", "limit": 100})
    files: list[dict[str, Any]] = res.json["file_list"]
    return files


async def _ready_files(api: EmulatorApi, inst: Instance, query_time: int = 1) -> list[dict[str, Any]]:
    return await _collected_files(api, inst, query_time)


async def _link(api: EmulatorApi, inst: Instance, log_id: str) -> str:
    res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{log_id}/links")
    assert res.status == 200, res.body
    assert res.json["id"] == res.json["backup_id"] == log_id
    link: str = res.json["link"]
    return link


async def test_link_and_full_download(emulator_api: EmulatorApi) -> None:
    """A link is a presigned path-style OBS URL; GET returns the whole file with length and ETag."""
    emu = emulator_api.emu
    inst = _running(emu)
    files = await _ready_files(emulator_api, inst)
    link = await _link(emulator_api, inst, files[0]["id"])
    assert link.startswith(emu.obs_base + "/")
    assert set(parse_qs(urlsplit(link).query)) == {"AWSAccessKeyId", "Expires", "Signature"}
    res = await emulator_api.get(link)
    item = emu.runlog_items()[0]
    assert res.status == 200
    assert res.body == item.spec.read_all()
    assert int(res.headers["Content-Length"]) == item.spec.size
    assert res.headers["ETag"].startswith('"')
    assert re.search(rb"^1:[MS] \d\d \w{3} \d{4} [\d:.]{12} \* ", res.body, re.M)  # Redis 4+ log lines
    assert emu.counters.links_issued == 1
    assert emu.counters.bytes_served == item.spec.size


async def test_link_ttl_configurable(emulator_factory: EmulatorFactory) -> None:
    """Expires is the emulator clock plus link_ttl."""
    emu = await emulator_factory(link_ttl=120)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        log_id = (await _ready_files(api, inst))[0]["id"]
        before = emu.clock.now()
        link = await _link(api, inst, log_id)
        expires = int(parse_qs(urlsplit(link).query)["Expires"][0])
        assert int(before) + 120 <= expires <= emu.clock.now() + 120


async def test_expired_link_is_403(emulator_api: EmulatorApi) -> None:
    """After the link's lifetime on the emulator clock the GET is 403 'Request has expired'."""
    emu = emulator_api.emu
    inst = _running(emu)
    link = await _link(emulator_api, inst, (await _ready_files(emulator_api, inst))[0]["id"])
    emu.clock.advance(86400 + 5)
    res = await emulator_api.get(link)
    assert res.status == 403
    assert b"<Code>AccessDenied</Code>" in res.body
    assert b"<Message>Request has expired</Message>" in res.body


async def test_bad_signature_is_403(emulator_api: EmulatorApi) -> None:
    """A tampered Signature or Expires is 403 SignatureDoesNotMatch."""
    inst = _running(emulator_api.emu)
    link = await _link(emulator_api, inst, (await _ready_files(emulator_api, inst))[0]["id"])
    tampered_sig = link.replace("Signature=", "Signature=AAAA")
    expires = parse_qs(urlsplit(link).query)["Expires"][0]
    tampered_exp = link.replace(f"Expires={expires}", f"Expires={int(expires) + 999}")
    for url in (tampered_sig, tampered_exp):
        res = await emulator_api.get(url)
        assert res.status == 403
        assert b"SignatureDoesNotMatch" in res.body
    res = await emulator_api.get(link.split("?")[0])
    assert res.status == 403


async def test_range_requests(emulator_api: EmulatorApi) -> None:
    """Range bytes=a-b is 206 with Content-Range; an unsatisfiable range is 416."""
    emu = emulator_api.emu
    inst = _running(emu)
    link = await _link(emulator_api, inst, (await _ready_files(emulator_api, inst))[0]["id"])
    whole = emu.runlog_items()[0].spec.read_all()
    res = await emulator_api.get(link, {"Range": "bytes=100-199"})
    assert res.status == 206
    assert res.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert res.body == whole[100:200]
    res = await emulator_api.get(link, {"Range": "bytes=-50"})
    assert res.body == whole[-50:]
    res = await emulator_api.get(link, {"Range": f"bytes={len(whole)}-"})
    assert res.status == 416


async def test_same_day_same_bytes_across_collections(emulator_api: EmulatorApi) -> None:
    """Two collections of the same past day serve identical bytes and ETags under different ids."""
    inst = _running(emulator_api.emu)
    await _ready_files(emulator_api, inst)
    files = await _ready_files(emulator_api, inst)
    bodies = []
    for f in files:
        res = await emulator_api.get(await _link(emulator_api, inst, f["id"]))
        bodies.append((res.body, res.headers["ETag"]))
    assert files[0]["id"] != files[1]["id"]
    assert bodies[0] == bodies[1]


async def test_link_errors(emulator_factory: EmulatorFactory) -> None:
    """Unknown id is 404 DCS.4001; a file still being created is 400 DCS.4026."""
    emu = await emulator_factory(collect_mode="creating", collect_delay=60)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/nope/links")
        assert (res.status, res.json["error_code"]) == (404, "DCS.4001")
        files = await _collected_files(api, inst, ready=False)  # creating mode lists it at once
        assert files[0]["status"] == "creating"
        res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{files[0]['id']}/links")
        assert (res.status, res.json["error_code"]) == (400, "DCS.4026")
        other = _running(emu, "cluster")
        res = await api.call("POST", f"/instances/{other.instance_id}/redislog/{files[0]['id']}/links")
        assert res.status == 404


async def test_large_file_streams(emulator_factory: EmulatorFactory) -> None:
    """A multi-MiB file streams completely in many chunks."""
    emu = await emulator_factory(log_size=6 * 1024 * 1024, log_size_jitter=0.0)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        link = await _link(api, inst, (await _ready_files(api, inst))[0]["id"])
        chunks = 0
        total = 0
        async with session.get(link) as resp:
            async for chunk in resp.content.iter_chunked(64 * 1024):
                chunks += 1
                total += len(chunk)
        assert total == 6 * 1024 * 1024
        assert chunks > 10


async def test_hostile_file_names(emulator_factory: EmulatorFactory) -> None:
    """Hostile mode lists names with traversal, absolute paths, NUL or 300+ chars; they still download."""
    emu = await emulator_factory()
    emu.faults.hostile.file_name_rate = 1.0
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu, "cluster")
        files = await _ready_files(api, inst, 7)
        names = [f["file_name"] for f in files]
        assert all(".." in n or n.startswith(("/", "~")) or "\x00" in n or len(n) > 255 for n in names)
        res = await api.get(await _link(api, inst, files[0]["id"]))
        assert res.status == 200
        assert emu.counters.faults["hostile_file_name"] == len(files)


async def test_hostile_links_point_elsewhere(emulator_factory: EmulatorFactory) -> None:
    """With link_rate=1 every link targets another host."""
    emu = await emulator_factory()
    emu.faults.hostile.link_rate = 1.0
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        link = await _link(api, inst, (await _ready_files(api, inst))[0]["id"])
        assert urlsplit(link).hostname == "evil.example.invalid"
        assert emu.counters.faults["hostile_link"] == 1


async def test_tail_of_a_2_gib_file_is_cheap(emulator_factory: EmulatorFactory) -> None:
    """A Range at the end of a 2 GiB file is served at once, without generating what precedes it."""
    emu = await emulator_factory(log_size=2 * 1024**3, log_size_jitter=0.0)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        inst = _running(emu)
        link = await _link(api, inst, (await _ready_files(api, inst))[0]["id"])
        res = await api.get(link, {"Range": "bytes=-4096"})
        assert res.status == 206
        assert res.headers["Content-Range"] == f"bytes {2 * 1024**3 - 4096}-{2 * 1024**3 - 1}/{2 * 1024**3}"
        assert res.body.endswith(b"\n")
        assert emu.counters.bytes_served == 4096
