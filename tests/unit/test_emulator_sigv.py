"""The AK/SK verifier against the contract's known-answer vectors (§5.2), and its refusals."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from harvester.emulator.auth import (
    SignedRequest,
    canonical_query,
    canonical_request,
    canonical_uri,
    parse_authorization,
    signature,
    string_to_sign,
    verify,
)
from tests.emulator_sigv import canonical as reference_canonical
from tests.emulator_sigv import sign

AK = "AKEXAMPLE0000000000"
SK = "SKEXAMPLESECRET00000000000000000000000000"
PATH = "/v2/0524e839a54847039e9b2b46e8aa788a/instances/5560df16-cebf-4473-95c4-d1b573c16e79/redislog"
HEADERS = {
    "content-type": "application/json",
    "x-sdk-date": "20250101T000000Z",
    "x-project-id": "0524e839a54847039e9b2b46e8aa788a",
    "host": "dcs.eu-de.otc.t-systems.com",
}
SIGNED = ("content-type", "host", "x-project-id", "x-sdk-date")
EMPTY = hashlib.sha256(b"").hexdigest()
KAT_DATE = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def _kat(method: str, query: str) -> str:
    return canonical_request(
        method, path=PATH, raw_query=query, header=HEADERS.get, signed_headers=SIGNED, body_hash=EMPTY
    )


def test_kat_get_canonical_request_hash() -> None:
    """The GET vector's canonical request hashes to the contract's value."""
    creq = _kat("GET", "log_type=run&offset=0&limit=10")
    assert creq.split("\n")[2] == "limit=10&log_type=run&offset=0"
    assert hashlib.sha256(creq.encode()).hexdigest() == (
        "d9148a37d140a5c9a4ec12c76b1d0b554cdc4aec6bae769088403696323f645f"
    )


def test_kat_get_signature() -> None:
    """The GET vector's signature matches the contract."""
    creq = _kat("GET", "log_type=run&offset=0&limit=10")
    assert signature(SK, string_to_sign("20250101T000000Z", creq)) == (
        "15996bbe11c03f4879c32ac939f9da0fef523a1d0a46c6b3bd73317c0fcbe1d4"
    )


def test_kat_post_signature() -> None:
    """The POST vector's canonical query and signature match the contract."""
    creq = _kat("POST", "query_time=7&log_type=run&replication_id=dfbd3f84-08bc-42f0-b538-01d03e6dc178")
    assert (
        creq.split("\n")[2] == "log_type=run&query_time=7&replication_id=dfbd3f84-08bc-42f0-b538-01d03e6dc178"
    )
    assert signature(SK, string_to_sign("20250101T000000Z", creq)) == (
        "69231a832fc6e4cd5f4986eeea1c9a14eceb9e7fe998941baddf45c1677886d5"
    )


def test_test_signer_reproduces_kat() -> None:
    """The tests' own signer reproduces the vector too, so integration tests exercise the real scheme."""
    url = f"https://dcs.eu-de.otc.t-systems.com{PATH}?log_type=run&offset=0&limit=10"
    creq, signed = reference_canonical("GET", url, HEADERS)
    assert signed == ";".join(SIGNED)
    assert hashlib.sha256(creq.encode()).hexdigest().startswith("d9148a37")
    out = sign("GET", url, AK, SK, headers=dict(HEADERS))
    assert out["Authorization"].endswith(
        "Signature=15996bbe11c03f4879c32ac939f9da0fef523a1d0a46c6b3bd73317c0fcbe1d4"
    )


def test_canonical_uri_encodes_segments_and_appends_slash() -> None:
    """Segments are RFC 3986-encoded and the path always ends in a slash."""
    assert canonical_uri("/v2/a b/x~y") == "/v2/a%20b/x~y/"
    assert canonical_uri("/v2/") == "/v2/"


def test_canonical_query_sorts_and_encodes() -> None:
    """Pairs are sorted and values re-encoded the same way as keys."""
    assert canonical_query("b=2&a=x%20y&c=") == "a=x%20y&b=2&c="


def _request(headers: dict[str, str], query: str = "log_type=run&offset=0&limit=10") -> SignedRequest:
    lower = {k.lower(): v for k, v in headers.items()}
    return SignedRequest("GET", PATH, query, lower.get, b"")


def _signed_headers(host: str = "127.0.0.1:8555", when: datetime | None = None) -> dict[str, str]:
    url = f"http://{host}{PATH}?log_type=run&offset=0&limit=10"
    base = {"Content-Type": "application/json", "User-Agent": "huaweicloud-usdk-python/3.0", "Host": host}
    return sign("GET", url, AK, SK, headers=base, when=when or datetime(2025, 1, 1, tzinfo=UTC))


def test_verify_accepts_host_with_port_and_user_agent() -> None:
    """A request signed with Host 127.0.0.1:8555 and user-agent, as the SDK does locally, verifies."""
    assert verify(_request(_signed_headers()), {AK: SK}, KAT_DATE, 900) is None


def test_verify_rejects_tampered_query() -> None:
    """Changing a query value after signing breaks the signature (DCS.1001)."""
    result = verify(_request(_signed_headers(), "log_type=run&offset=0&limit=11"), {AK: SK}, KAT_DATE, 900)
    assert result is not None
    assert result[0] == "DCS.1001"


def test_verify_rejects_clock_skew() -> None:
    """An X-Sdk-Date more than 15 minutes from the server clock is refused."""
    headers = _signed_headers(when=datetime(2025, 1, 1, tzinfo=UTC) - timedelta(minutes=16))
    result = verify(_request(headers), {AK: SK}, KAT_DATE, 900)
    assert result is not None
    assert "15 minutes" in result[1]
    ok = _signed_headers(when=datetime(2025, 1, 1, tzinfo=UTC) - timedelta(minutes=14))
    assert verify(_request(ok), {AK: SK}, KAT_DATE, 900) is None


def test_verify_rejects_unknown_access_key() -> None:
    """A signature from an unknown AK is refused."""
    assert verify(_request(_signed_headers()), {"OTHER": SK}, KAT_DATE, 900) is not None


def test_parse_authorization_rejects_malformed_headers() -> None:
    """Missing fields, other algorithms or unsorted SignedHeaders do not parse."""
    assert (
        parse_authorization("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;x-sdk-date, Signature=ab")
        is not None
    )
    assert parse_authorization("AWS4-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=ab") is None
    assert parse_authorization("SDK-HMAC-SHA256 Access=A, Signature=ab") is None
    assert (
        parse_authorization("SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date;host, Signature=ab") is None
    )
