"""Credentials on a request: the :class:`Authenticator` seam, the AK/SK signer, a static token.

Three methods, one :class:`Authenticator` each, so the API client never knows which is in use:

    AkSkAuth           signs every request (SDK-HMAC-SHA256); a 401 is final
    PasswordAuth       an IAM token, cached, renewed early, re-fetched once after a 401
                       (:mod:`harvester.cloud.iam`, which owns the whole token flow)
    StaticTokenAuth    a token the user handed us; it cannot be renewed, so a 401 is final

Pure: no I/O. No secret is ever formatted into a string here except the header values that
must carry it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import SplitResult, quote, unquote, urlsplit

from harvester.models import Clock, Secret, utcnow

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
TOKEN_HEADER = "X-Auth-Token"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Authenticator(Protocol):
    """What the API client needs from a credential, whatever its kind."""

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """Headers that authenticate this exact request (``url`` includes its query string)."""
        ...

    async def refresh_after_401(self, rejected: Mapping[str, str] | None = None) -> bool:
        """Called once per request after a 401; True when resending with fresh credentials can help.

        ``rejected`` are the headers the refused request carried: with them, many requests
        refused at once with the same old token share one re-login instead of each forcing one.
        """
        ...


# --------------------------------------------------------------------------------------------
# AK/SK: SDK-HMAC-SHA256


def _encode(text: str) -> str:
    """RFC 3986 encoding as the official SDK does it (``quote(s, safe='~')``)."""
    return quote(text, safe="~")


def canonical_path(path: str) -> str:
    segments = unquote(path).split("/")
    encoded = "/".join(_encode(s) for s in segments)
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_encode(unquote(key)), _encode(unquote(value))))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def host_header(url: str) -> str:
    """``host[:port]`` with the port only when it is not the scheme's default, as HTTP clients send it."""
    return _host_of(urlsplit(url))


def _host_of(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{host}:{port}"
    return host


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Every name without ``_``; Authorization is left out because it cannot sign itself."""
    return sorted({name.lower() for name in headers if "_" not in name and name.lower() != "authorization"})


class AkSkSigner:
    """SDK-HMAC-SHA256 exactly as contract section 5.2 and the official SDK define it."""

    __slots__ = ("_ak", "_sk")

    def __init__(self, access_key: str, secret_key: Secret) -> None:
        self._ak = access_key
        self._sk = secret_key

    def __repr__(self) -> str:
        return f"AkSkSigner(access_key={self._ak!r}, secret_key={self._sk!r})"

    @staticmethod
    def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
        """The text whose hash is signed; ``headers`` must already contain X-Sdk-Date and Host."""
        return _canonical(method, urlsplit(url), headers, signed_header_names(headers), body)

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> dict[str, str]:
        """The complete header set to send: the given headers plus X-Sdk-Date, Host and Authorization.

        Send exactly these: the verifier rebuilds the canonical request from the signed names.
        The URL is split and the signed names listed once per request (every API call is
        signed, so this is on the hot path of a night).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        out = {name: value for name, value in headers.items() if name.lower() != "authorization"}
        names = {name.lower() for name in out}
        if DATE_HEADER.lower() not in names:
            out[DATE_HEADER] = now.astimezone(UTC).strftime(DATE_FORMAT)
        parts = urlsplit(url)
        if "host" not in names:
            out["Host"] = _host_of(parts)
        date = next(v for k, v in out.items() if k.lower() == DATE_HEADER.lower())
        signed = signed_header_names(out)
        canonical = _canonical(method, parts, out, signed, body)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
        signature = hmac.new(self._sk.reveal().encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        out["Authorization"] = (
            f"{ALGORITHM} Access={self._ak}, SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        return out


def _canonical(
    method: str, parts: SplitResult, headers: Mapping[str, str], names: list[str], body: bytes
) -> str:
    """The canonical request of contract section 5.2, from the split URL and the signed names."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    header_lines = "".join(f"{name}:{lowered[name]}\n" for name in names)
    return "\n".join(
        (
            method.upper(),
            canonical_path(parts.path or "/"),
            canonical_query(parts.query),
            header_lines,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        )
    )


class AkSkAuth:
    """Signs each request; keys cannot be refreshed, so a 401 is final."""

    def __init__(
        self, access_key: str, secret_key: Secret, *, project_id: str | None = None, clock: Clock = utcnow
    ) -> None:
        self._signer = AkSkSigner(access_key, secret_key)
        self._project_id = project_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"AkSkAuth({self._signer!r})"

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        base = {"Content-Type": "application/json"}
        if self._project_id:
            base["X-Project-Id"] = self._project_id
        return self._signer.sign(method, url, base, body, self._clock())

    async def refresh_after_401(self, rejected: Mapping[str, str] | None = None) -> bool:
        return False


# --------------------------------------------------------------------------------------------
# A token handed to us


class StaticTokenAuth:
    """A token from the environment: we cannot get another one, so a 401 is final."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenAuth(token=Secret('***'))"

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        return {TOKEN_HEADER: self._token.reveal()}

    async def refresh_after_401(self, rejected: Mapping[str, str] | None = None) -> bool:
        return False
