"""The emulator's OBS knobs for behaviours contract section 8 leaves open, seen on the wire."""

from __future__ import annotations

import gzip
import time
import zlib
from typing import Any

import aiohttp
from yarl import URL

from harvester.emulator import Emulator, Instance
from tests.emulator_sigv import EmulatorApi
from tests.polling import collections_done


def _running(emu: Emulator) -> Instance:
    return next(i for i in emu.fleet.find(cache_mode="ha") if i.collectable)


async def _link(api: EmulatorApi) -> tuple[str, bytes]:
    inst = _running(api.emu)
    params = {"log_type": "run", "query_time": 1, "replication_id": inst.replicas[0].replication_id}
    await api.call("POST", f"/instances/{inst.instance_id}/redislog", params)
    await collections_done(api.emu, inst.instance_id)
    res = await api.call("GET", f"/instances/{inst.instance_id}/redislog", {"log_type": "run"})
    item: dict[str, Any] = res.json["file_list"][0]
    res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{item['id']}/links")
    plain = next(i for i in api.emu.runlog_items() if i.id == item["id"]).spec.read_all()
    return str(res.json["link"]), plain


async def _raw(url: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    """Exactly what the server sent: no decompression, no redirects followed."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(URL(url, encoded=True), allow_redirects=False, **kw) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_objects_can_be_served_gzip_encoded_with_the_encoded_length(emulator_api: EmulatorApi) -> None:
    """content_encoding=gzip: Content-Encoding set, Content-Length counts the gzip bytes."""
    link, plain = await _link(emulator_api)
    emulator_api.emu.faults.obs.content_encoding = "gzip"
    status, headers, body = await _raw(link, headers={"Accept-Encoding": "identity"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(body)
    assert gzip.decompress(body) == plain


async def test_deflate_raw_is_labelled_deflate_and_chunked_has_no_length(emulator_api: EmulatorApi) -> None:
    """deflate-raw is sent as `deflate` without the zlib wrapper; omit_content_length sends it chunked."""
    link, plain = await _link(emulator_api)
    emulator_api.emu.faults.obs.content_encoding = "deflate-raw"
    emulator_api.emu.faults.obs.omit_content_length = True
    status, headers, body = await _raw(link)
    assert status == 200
    assert headers["Content-Encoding"] == "deflate"
    assert "Content-Length" not in headers
    assert headers["Transfer-Encoding"] == "chunked"
    assert zlib.decompress(body, -zlib.MAX_WBITS) == plain


async def test_redirect_hops_answer_307_to_the_same_object(emulator_api: EmulatorApi) -> None:
    """redirect_hops=2: two 307s with a Location on redirect_base, then the object."""
    link, plain = await _link(emulator_api)
    emu = emulator_api.emu
    emu.faults.obs.redirect_hops = 2
    url = link
    for hop in (1, 2):
        status, headers, _ = await _raw(url)
        assert status == 307
        url = headers["Location"]
        assert url.startswith(emu.base_url + "/obs/")
        assert f"x-emulator-hop={hop}" in url
    status, _, body = await _raw(url)
    assert (status, body) == (200, plain)
    assert emu.counters.faults["redirect"] == 2


async def test_a_stall_before_headers_sends_nothing_for_stall_seconds(emulator_api: EmulatorApi) -> None:
    """header_stall_rate=1 on OBS: the status line itself only comes after stall_seconds."""
    link, plain = await _link(emulator_api)
    emu = emulator_api.emu
    emu.faults.obs.header_stall_rate = 1.0
    emu.faults.obs.stall_seconds = 0.3
    started = time.perf_counter()
    status, _, body = await _raw(link)
    assert time.perf_counter() - started >= 0.3
    assert (status, body) == (200, plain)
    assert emu.counters.faults["stall_headers"] == 1
