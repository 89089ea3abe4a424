"""A tiny, independent SDK-HMAC-SHA256 signer and raw DCS client for the emulator's tests.

Written from the contract (§5.2), separately from the emulator's verifier and from the
client's signer, so the tests do not just check the emulator against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from harvester.emulator import Emulator

EmulatorFactory = Callable[..., Awaitable[Emulator]]


def _enc(value: str) -> str:
    return quote(value, safe="~")


def canonical(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> tuple[str, str]:
    """(CanonicalRequest, SignedHeaders) for a full URL and the headers that will be sent."""
    parts = urlsplit(url)
    path = "/".join(_enc(s) for s in unquote(parts.path).split("/"))
    if not path.endswith("/"):
        path += "/"
    pairs = sorted(
        (unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)
    lower = {k.lower(): v.strip() for k, v in headers.items() if "_" not in k}
    names = sorted(lower)
    header_lines = "".join(f"{n}:{lower[n]}\n" for n in names)
    signed = ";".join(names)
    body_hash = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{query}\n{header_lines}\n{signed}\n{body_hash}", signed


def sign(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    when: datetime | None = None,
) -> dict[str, str]:
    """Headers to send: the given ones plus Host, X-Sdk-Date and Authorization."""
    out = dict(headers or {})
    present = {k.lower(): k for k in out}
    if "host" not in present:
        out["Host"] = urlsplit(url).netloc
    if "x-sdk-date" not in present:
        out["X-Sdk-Date"] = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    sdk_date = out[present.get("x-sdk-date", "X-Sdk-Date")]
    creq, signed = canonical(method, url, out, body)
    to_sign = f"SDK-HMAC-SHA256\n{sdk_date}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    sig = hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"SDK-HMAC-SHA256 Access={access_key}, SignedHeaders={signed}, Signature={sig}"
    return out


@dataclass(slots=True)
class ApiResult:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class EmulatorApi:
    """Raw DCS calls against an emulator, AK/SK-signed or with a token."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu
        self.auth: Literal["aksk", "token", "none"] = "aksk"
        self.token: str | None = None
        self.sdk_date: datetime | None = None
        self.secret_key: str | None = None

    def url(
        self, path: str, params: Mapping[str, object] | None = None, project_id: str | None = None
    ) -> str:
        if not path.startswith("/v"):
            path = f"/v2/{project_id or self.emu.project_id}{path}"
        query = "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in (params or {}).items())
        return self.emu.dcs_endpoint + path + (f"?{query}" if query else "")

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        project_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResult:
        url = self.url(path, params, project_id)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.auth == "aksk":
            when = self.sdk_date or self.emu.clock.now_dt()
            secret = self.secret_key or self.emu.secret_key
            sent = sign(method, url, self.emu.access_key, secret, headers=sent, when=when)
        elif self.auth == "token":
            if self.token is None:
                self.token = await self.fetch_token()
            sent["X-Auth-Token"] = self.token
        async with self.session.request(method, URL(url, encoded=True), headers=sent) as resp:
            return ApiResult(resp.status, CIMultiDict(resp.headers), await resp.read())

    async def fetch_token(self, project_id: str | None = None) -> str:
        body = token_request(self.emu, project_id=project_id or self.emu.project_id)
        async with self.session.post(self.emu.iam_endpoint + "/auth/tokens", json=body) as resp:
            assert resp.status == 201, await resp.text()
            return resp.headers["X-Subject-Token"]

    async def get(self, url: str, headers: dict[str, str] | None = None) -> ApiResult:
        """A plain GET, no DCS auth (OBS links)."""
        async with self.session.get(URL(url, encoded=True), headers=headers) as resp:
            return ApiResult(resp.status, CIMultiDict(resp.headers), await resp.read())


def token_request(
    emu: Emulator,
    *,
    project_id: str | None = None,
    project_name: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    scope = {"id": project_id} if project_name is None else {"name": project_name}
    user = {"name": emu.username, "password": password or emu.password, "domain": {"name": emu.domain}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": scope},
        }
    }


def utc_ms(dt: datetime) -> str:
    return str(int(dt.astimezone(UTC).timestamp() * 1000))
