"""Authenticated JSON calls to DCS: credentials on every request, one resend after a 401.

:class:`JsonApi` is what the DCS client calls through. It signs (or tokens) each request
with its :class:`~harvester.cloud.auth.Authenticator`, and when the answer is a 401 it asks
the authenticator once whether fresh credentials exist; if so the request is sent once more.
That resend is part of authenticating (a token was revoked or expired early), not retry
policy, which stays with the engine.

The status of an answer becomes our error here, once, for DCS and IAM alike
(:func:`api_error`): a 401 is an :class:`AuthError`, anything else an :class:`ApiError`
with the service's code, message and ``Retry-After``. A 2xx whose body is not JSON is
reported as a 502 (:data:`MALFORMED_STATUS`), so the engine retries it like a bad gateway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from harvester.cloud.auth import Authenticator
from harvester.cloud.transport import Response, Transport
from harvester.cloud.wire import parse_error_body, parse_retry_after
from harvester.errors import ApiError, AuthError

MALFORMED_STATUS = 502  # a 2xx with an unreadable body is reported as a bad gateway: retryable


def encode_query(params: Mapping[str, str]) -> str:
    """RFC 3986 encoding, the same the AK/SK signer applies, so the wire and the signature agree."""
    return "&".join(f"{quote(str(k), safe='~')}={quote(str(v), safe='~')}" for k, v in params.items())


def with_query(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{encode_query(params)}"


def api_error(status: int, body: bytes, headers: Mapping[str, str], *, what: str) -> ApiError:
    """The error an answer with ``status`` stands for; a 401 means the credentials were refused."""
    code, msg = parse_error_body(body)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    cls = AuthError if status == 401 else ApiError
    return cls(status, code, msg, what=what, retry_after=retry_after)


def malformed(message: str, *, what: str) -> ApiError:
    """An answer we cannot use although its status says success: retried like a bad gateway."""
    return ApiError(MALFORMED_STATUS, "", message, what=what)


def parse_json(status: int, body: bytes, *, what: str) -> Any:
    """The JSON of a successful answer; ``None`` for 204 or an empty body."""
    if status == 204 or not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise malformed(f"malformed JSON response (HTTP {status})", what=what) from None


@dataclass(frozen=True, slots=True)
class JsonApi:
    """JSON calls made with one authenticator (one project's credentials)."""

    transport: Transport = field(repr=False)
    auth: Authenticator

    async def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        what: str,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or None)`` for a status in ``ok``; any other status raises."""
        full = with_query(url, params)
        method = method.upper()
        headers = await self._headers(method, full)
        resp = await self.transport.send(method, full, headers=headers, what=what)
        if resp.status == 401 and await self.auth.refresh_after_401(headers):
            resp = await self.transport.send(
                method, full, headers=await self._headers(method, full), what=what
            )
        return resp.status, self._body(resp, what=what, ok=ok)

    async def _headers(self, method: str, url: str) -> dict[str, str]:
        return await self.auth.headers(method, url, b"")

    @staticmethod
    def _body(resp: Response, *, what: str, ok: tuple[int, ...]) -> Any:
        if resp.status in ok:
            return parse_json(resp.status, resp.body, what=what)
        if 200 <= resp.status < 300:
            raise ApiError(resp.status, "", f"unexpected HTTP status {resp.status}", what=what)
        raise api_error(resp.status, resp.body, resp.headers, what=what)
