"""OBS downloads: V2 query-string presigning and a streaming, Range-aware object GET.

Real links are virtual-host style (``https://{bucket}.obs.../{key}``), which loopback cannot
serve, so the emulator serves path style on its own port: ``{base}/obs/{bucket}/{key}``.
The signature still covers ``/{bucket}/{key}`` exactly as OBS does. Bodies are produced
block by block from :mod:`logs`, so a multi-GiB file is streamed without being held.

Knobs on ``faults.obs`` change how an object is served the way a real OBS may (contract
section 8): ``content_encoding`` serves it compressed, as an object *stored* with
``Content-Encoding: gzip`` is, whatever the client's ``Accept-Encoding`` (held in memory, so for
test-sized logs; a Range then applies to the encoded bytes, as it would on OBS);
``omit_content_length`` sends it chunked; ``redirect_hops`` answers 307 first.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import zlib
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from aiohttp import web

from .errors import xml_error
from .runlogs import RunlogItem
from .state import STATE, EmulatorState

OBS_PREFIX = "/obs"
HOP_PARAM = "x-emulator-hop"


def obs_signature(secret_key: str, expires: int, bucket: str, key: str) -> str:
    to_sign = f"GET\n\n\n{expires}\n/{bucket}/{key}"
    return base64.b64encode(hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def presign(state: EmulatorState, item: RunlogItem, *, base: str | None = None) -> tuple[str, int]:
    """A link valid for ``link_ttl`` on the emulator clock; ``base`` replaces the host (hostile mode)."""
    cfg = state.config
    expires = int(state.clock.now() + cfg.link_ttl)
    key = item.object_key
    sig = obs_signature(cfg.obs_secret_key, expires, cfg.bucket, key)
    root = base.rstrip("/") + OBS_PREFIX if base else state.obs_base
    query = f"AWSAccessKeyId={cfg.obs_access_key}&Expires={expires}&Signature={quote(sig, safe='')}"
    return f"{root}/{cfg.bucket}/{key}?{query}", expires


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """``(first, last)`` for a single satisfiable range, None to ignore it, False if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_s, sep, last_s = header[6:].strip().partition("-")
    if not sep or not (first_s.isdigit() or last_s.isdigit()):
        return None
    if not first_s:
        length = int(last_s)
        return (max(0, size - length), size - 1) if length > 0 and size > 0 else False
    first = int(first_s)
    last = int(last_s) if last_s.isdigit() else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


def _check_signature(
    state: EmulatorState, request: web.Request, bucket: str, key: str
) -> web.Response | None:
    cfg = state.config
    q = request.query
    access = q.get("AWSAccessKeyId") or q.get("AccessKeyId")
    expires_s, sig = q.get("Expires"), q.get("Signature")
    if not access or not expires_s or not sig:
        return xml_error(403, "AccessDenied", "Query-string authentication requires Signature and Expires.")
    if access != cfg.obs_access_key:
        return xml_error(403, "InvalidAccessKeyId", "The access key Id you provided does not exist.")
    if not expires_s.isdigit():
        return xml_error(403, "AccessDenied", "Invalid date (should be seconds since epoch).")
    expected = obs_signature(cfg.obs_secret_key, int(expires_s), bucket, key)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return xml_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if int(expires_s) < state.clock.now():
        return xml_error(403, "AccessDenied", "Request has expired")
    return None


def encode_body(data: bytes, coding: str) -> bytes:
    """``data`` as served with ``Content-Encoding: coding``; unknown codings leave it as it is."""
    if coding == "gzip":
        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "deflate-raw":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return packer.compress(data) + packer.flush()
    return data


def _slices(payload: bytes, first: int, last: int) -> Iterator[bytes]:
    for at in range(first, last + 1, 64 * 1024):
        yield payload[at : min(at + 64 * 1024, last + 1)]


def _redirect(state: EmulatorState, request: web.Request) -> web.StreamResponse | None:
    """A 307 to the same object (with a hop counter) while ``redirect_hops`` asks for one."""
    knobs = state.faults.obs
    hop = request.query.get(HOP_PARAM, "0")
    hops = int(hop) if hop.isdigit() else 0
    if hops >= knobs.redirect_hops:
        return None
    path, _, query = request.raw_path.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith(f"{HOP_PARAM}=")]
    kept.append(f"{HOP_PARAM}={hops + 1}")
    parts = urlsplit(state.obs_base)
    base = knobs.redirect_base.rstrip("/") or f"{parts.scheme}://{parts.netloc}"
    state.counters.faults["redirect"] += 1
    return web.Response(status=307, headers={"Location": f"{base}{path}?{'&'.join(kept)}"})


async def get_object(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    redirect = _redirect(state, request)
    if redirect is not None:
        return redirect
    bucket = request.match_info["bucket"]
    raw_path = request.raw_path.split("?", 1)[0]
    key = raw_path[len(f"{OBS_PREFIX}/{bucket}/") :]
    denied = _check_signature(state, request, bucket, key)
    if denied is not None:
        return denied
    parts = key.split("/")
    item = state.runlogs.get(parts[2]) if bucket == state.config.bucket and len(parts) == 4 else None
    if item is None or item.object_key != key:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.")
    knobs = state.faults.obs
    spec = item.spec
    payload = encode_body(spec.read_all(), knobs.content_encoding) if knobs.content_encoding else None
    size, etag = spec.size, spec.etag()
    if payload is not None:
        size, etag = len(payload), '"' + hashlib.md5(payload, usedforsecurity=False).hexdigest() + '"'
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted is False:
        return xml_error(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            {"Content-Range": f"bytes */{size}"},
        )
    first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
    response = web.StreamResponse(status=206 if isinstance(wanted, tuple) else 200)
    response.content_type = "text/plain"
    if knobs.content_encoding:
        response.headers["Content-Encoding"] = knobs.content_encoding.removesuffix("-raw")
    if knobs.omit_content_length:
        response.enable_chunked_encoding()
    else:
        response.content_length = last - first + 1
    response.headers["ETag"] = etag
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Last-Modified"] = formatdate(item.ready_at, usegmt=True)
    if isinstance(wanted, tuple):
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    state.counters.downloads += 1
    body = spec.iter_range(first, last) if payload is None else _slices(payload, first, last)
    await _stream(state, request, response, body, total=last - first + 1)
    return response


async def _stream(
    state: EmulatorState,
    request: web.Request,
    response: web.StreamResponse,
    blocks: Iterator[bytes],
    *,
    total: int,
) -> None:
    """Write ``total`` bytes from ``blocks``, applying the truncate and stall faults."""
    knobs = state.faults.obs
    injector = state.injector
    cut = total // 2 if injector.chance(knobs.truncate_rate) else None
    stall_at = total // 2 if injector.chance(knobs.stall_rate) else None
    if cut is not None:
        state.counters.faults["truncate"] += 1
    if stall_at is not None:
        state.counters.faults["stall"] += 1
    sent = 0
    for block in blocks:
        chunk = block
        if cut is not None and sent + len(chunk) >= cut:
            chunk = chunk[: cut - sent]
        if stall_at is not None and sent + len(chunk) >= stall_at:
            head = chunk[: stall_at - sent]
            await response.write(head)
            sent += len(head)
            state.counters.bytes_served += len(head)
            chunk = chunk[len(head) :]
            await asyncio.sleep(knobs.stall_seconds)
            stall_at = None
        if chunk:
            await response.write(chunk)
            sent += len(chunk)
            state.counters.bytes_served += len(chunk)
        if cut is not None and sent >= cut:
            if request.transport is not None:
                request.transport.close()
            return
