"""Large bodies through the real download path: transport, OBS body, the archive's ``.part``.

A body of several MiB arrives in many socket-sized pieces and is written in several batches,
the pieces handed to the writer thread as they came (never joined). It must land byte for byte,
with the sha256 and size of the stored (decoded) bytes, whether OBS sends it plain or gzip,
with Content-Length or chunked; and a consumer slower than ``stall_timeout`` (a slow disk) must
not be taken for a stalled peer, because the stall clock is aiohttp's ``sock_read``, which stops
while reading is paused for us. Over loopback to the emulator; the payload writer alone (no
network) at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import anyio
import pytest

from harvester.archive.part import BATCH_BYTES, FLUSH_BYTES
from harvester.archive.store import Archive
from harvester.cloud.obs import open_download
from harvester.cloud.transport import Transport
from harvester.emulator import Emulator
from harvester.engine.download import fetch_to_archive
from harvester.models import SignedLink, SignedUrl
from tests.emulator_sigv import EmulatorApi, EmulatorFactory
from tests.polling import DEADLINE, collections_done

DAY = "2025-01-02"
REL = PurePosixPath("proj/redis-a-abcd1234/group-0/redis.log")
LOG_SIZE = 6 * 1024 * 1024
CHUNK = 64 * 1024  # download.chunk_size's minimum: the smallest read buffer, the most pieces


@pytest.fixture
async def big(emulator_factory: EmulatorFactory) -> Emulator:
    """An emulator whose run logs are exactly 6 MiB."""
    return await emulator_factory(instances=2, seed=3, log_size=LOG_SIZE, log_size_jitter=0.0)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """Generous timeouts: a loaded machine must not turn a healthy download into a stall."""
    async with Transport(download_connections=4, stall_timeout=30.0) as t:
        yield t


async def _link(emu: Emulator) -> tuple[SignedLink, bytes]:
    """A signed link to one collected file, and the log text it holds."""
    inst = next(i for i in emu.fleet.find(cache_mode="ha") if i.collectable)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        params = {"log_type": "run", "query_time": 1, "replication_id": inst.replicas[0].replication_id}
        await api.call("POST", f"/instances/{inst.instance_id}/redislog", params)
        await collections_done(emu, inst.instance_id)
        res = await api.call("GET", f"/instances/{inst.instance_id}/redislog", {"log_type": "run"})
        item: dict[str, Any] = res.json["file_list"][0]
        res = await api.call("POST", f"/instances/{inst.instance_id}/redislog/{item['id']}/links")
    plain = next(i for i in emu.runlog_items() if i.id == item["id"]).spec.read_all()
    now = datetime.now(UTC)
    return SignedLink(SignedUrl(str(res.json["link"])), now + timedelta(hours=1), now), plain


@pytest.mark.parametrize(
    ("coding", "chunked"),
    [("", False), ("", True), ("gzip", False), ("gzip", True)],
    ids=["plain", "plain-chunked", "gzip", "gzip-chunked"],
)
async def test_a_multi_mib_body_is_archived_whole_with_its_sha256(
    big: Emulator, transport: Transport, tmp_path: Path, coding: str, chunked: bool
) -> None:
    """A 6 MiB log lands byte for byte, decoded if encoded, with the sha256 and size of those bytes."""
    link, plain = await _link(big)
    assert len(plain) == LOG_SIZE
    big.faults.obs.content_encoding = coding
    big.faults.obs.omit_content_length = chunked
    archive = Archive(tmp_path / "archive")
    received: list[int] = []

    with anyio.fail_after(DEADLINE):
        done = await fetch_to_archive(
            transport,
            link,
            archive,
            DAY,
            REL,
            allowed_hosts=["127.0.0.1"],
            chunk_size=CHUNK,
            on_bytes=received.append,
        )

    assert (done.size, done.sha256) == (len(plain), hashlib.sha256(plain).hexdigest())
    assert (archive.root / DAY / REL).read_bytes() == plain
    assert sum(received) == len(plain)
    assert len(received) > 1  # it really streamed, in pieces
    assert not [p for p in archive.root.rglob("*") if p.name.endswith(".part")]


async def test_a_consumer_slower_than_stall_timeout_is_not_a_stall(big: Emulator) -> None:
    """A slow disk pausing the read for longer than stall_timeout does not fail a healthy download."""
    link, plain = await _link(big)
    pieces: list[bytes] = []
    async with (
        Transport(stall_timeout=0.5) as impatient,
        open_download(impatient, link.url, chunk_size=CHUNK) as body,
    ):
        async for piece in body.chunks():
            if not pieces:
                await anyio.sleep(1.5)  # far more than stall_timeout, with most of the body unread
            pieces.append(piece)
    assert b"".join(pieces) == plain


# --------------------------------------------------------------------------------------------
# The payload writer alone


async def test_a_large_body_in_uneven_pieces_lands_whole_and_hashed(tmp_path: Path) -> None:
    """Pieces of every size, crossing several write batches, are stored in order with their sha256."""
    archive = Archive(tmp_path / "archive")
    sizes = [1, 300_000, 7, 65_536, FLUSH_BYTES, 2 * FLUSH_BYTES + 3, 12_345, BATCH_BYTES, 262_144]
    pieces = [bytes([n % 251]) * size for n, size in enumerate(sizes * 3)]
    async with archive.open_part(DAY, REL) as part:
        for piece in pieces:
            await part.write(piece)
        done = await part.commit()
    data = b"".join(pieces)
    assert (archive.root / DAY / REL).read_bytes() == data
    assert (done.size, done.sha256) == (len(data), hashlib.sha256(data).hexdigest())


async def test_after_its_first_batch_a_large_body_reaches_the_disk_a_mib_at_a_time(tmp_path: Path) -> None:
    """The first BATCH_BYTES are written at once; later pieces wait until FLUSH_BYTES are gathered."""
    archive = Archive(tmp_path / "archive")
    piece = b"p" * (64 * 1024)

    def on_disk() -> int:
        return sum(p.stat().st_size for p in archive.root.rglob("*.part"))

    async with archive.open_part(DAY, REL) as part:
        for _ in range(BATCH_BYTES // len(piece)):
            await part.write(piece)
        assert on_disk() == BATCH_BYTES
        for _ in range(FLUSH_BYTES // len(piece) - 1):
            await part.write(piece)
            assert on_disk() == BATCH_BYTES
        await part.write(piece)
        assert on_disk() == BATCH_BYTES + FLUSH_BYTES
        await part.reset()  # a restarted download starts with a first batch again
        for _ in range(BATCH_BYTES // len(piece)):
            await part.write(piece)
        assert on_disk() == BATCH_BYTES
        done = await part.commit()
    assert done.size == BATCH_BYTES
