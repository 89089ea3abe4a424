"""Verifier for ``SDK-HMAC-SHA256`` (AK/SK) request signatures, written from the contract (§5.2).

Independent of the client's signer on purpose: both are checked against the contract's
known-answer vectors, so a shared misreading cannot hide. The verifier rebuilds the
canonical request from the headers the client says it signed, with the values as received.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def _encode(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Every segment RFC 3986-encoded, always ending in ``/`` (as the official SDK does)."""
    encoded = "/".join(_encode(seg) for seg in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    *,
    path: str,
    raw_query: str,
    header: Callable[[str], str | None],
    signed_headers: tuple[str, ...],
    body_hash: str,
) -> str:
    """``header(name)`` returns the received value of a header (case-insensitive) or None."""
    lines = "".join(f"{name}:{(header(name) or '').strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(raw_query),
            lines,
            ";".join(signed_headers),
            body_hash,
        )
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`` -> parts, or None."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    try:
        access, signed, sig = fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        return None
    names = tuple(signed.split(";"))
    if not access or not sig or not all(names) or list(names) != sorted(names):
        return None
    return ParsedAuthorization(access_key=access, signed_headers=names, signature=sig)


def parse_sdk_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of a received request a verifier needs, decoupled from aiohttp."""

    method: str
    path: str
    raw_query: str
    header: Callable[[str], str | None]
    body: bytes


def verify(
    request: SignedRequest, secrets: dict[str, str], now: float, max_skew: float
) -> tuple[str, str] | None:
    """None when the signature is good, else ``(error_code, message)`` for a 401."""
    parsed = parse_authorization(request.header("authorization") or "")
    if parsed is None:
        return "DCS.1001", "Malformed Authorization header."
    secret = secrets.get(parsed.access_key)
    if secret is None:
        return "DCS.1001", "Unknown access key."
    if "x-sdk-date" not in parsed.signed_headers:
        return "DCS.1001", "X-Sdk-Date must be signed."
    raw_date = (request.header("x-sdk-date") or "").strip()
    when = parse_sdk_date(raw_date)
    if when is None:
        return "DCS.1001", "Invalid X-Sdk-Date."
    if abs(when.timestamp() - now) > max_skew:
        return "DCS.1001", "X-Sdk-Date is more than 15 minutes away from the server time."
    content_sha = (request.header("x-sdk-content-sha256") or "").strip()
    body_hash = (
        UNSIGNED_PAYLOAD if content_sha == UNSIGNED_PAYLOAD else hashlib.sha256(request.body).hexdigest()
    )
    canonical = canonical_request(
        request.method,
        path=request.path,
        raw_query=request.raw_query,
        header=request.header,
        signed_headers=parsed.signed_headers,
        body_hash=body_hash,
    )
    expected = signature(secret, string_to_sign(raw_date, canonical))
    if not hmac.compare_digest(expected, parsed.signature.lower()):
        return "DCS.1001", "The request signature does not match."
    return None
