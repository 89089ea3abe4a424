"""OBS downloads: V2 query-string presigning and a streaming, Range-aware object GET.

Real links are virtual-host style (``https://{bucket}.obs.../{key}``), which loopback cannot
serve, so the emulator serves path style on its own port: ``{base}/obs/{bucket}/{key}``.
The signature still covers ``/{bucket}/{key}`` exactly as OBS does. Bodies are produced
block by block from :mod:`logs`, so a multi-GiB file is streamed without being held.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from email.utils import formatdate
from urllib.parse import quote

from aiohttp import web

from .errors import xml_error
from .runlogs import RunlogItem
from .state import STATE, EmulatorState

OBS_PREFIX = "/obs"


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


async def get_object(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
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
    spec = item.spec
    wanted = parse_range(request.headers.get("Range"), spec.size)
    if wanted is False:
        return xml_error(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            {"Content-Range": f"bytes */{spec.size}"},
        )
    first, last = wanted if isinstance(wanted, tuple) else (0, spec.size - 1)
    response = web.StreamResponse(status=206 if isinstance(wanted, tuple) else 200)
    response.content_type = "text/plain"
    response.content_length = last - first + 1
    response.headers["ETag"] = spec.etag()
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Last-Modified"] = formatdate(item.ready_at, usegmt=True)
    if isinstance(wanted, tuple):
        response.headers["Content-Range"] = f"bytes {first}-{last}/{spec.size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    state.counters.downloads += 1
    await _stream(state, request, response, item, first=first, last=last)
    return response


async def _stream(
    state: EmulatorState,
    request: web.Request,
    response: web.StreamResponse,
    item: RunlogItem,
    *,
    first: int,
    last: int,
) -> None:
    """Write ``[first, last]`` block by block, applying the truncate and stall faults."""
    knobs = state.faults.obs
    total = last - first + 1
    injector = state.injector
    cut = total // 2 if injector.chance(knobs.truncate_rate) else None
    stall_at = total // 2 if injector.chance(knobs.stall_rate) else None
    if cut is not None:
        state.counters.faults["truncate"] += 1
    if stall_at is not None:
        state.counters.faults["stall"] += 1
    sent = 0
    for block in item.spec.iter_range(first, last):
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
