"""Pure parts of the cloud boundary: Retry-After, error bodies, query encoding, safe error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest

from harvester.cloud.api import api_error, encode_query, parse_json, with_query
from harvester.cloud.obs import obs_error
from harvester.cloud.transport import connection_failure, map_errors
from harvester.cloud.wire import parse_error_body, parse_obs_error, parse_retry_after
from harvester.errors import (
    Action,
    ApiError,
    DownloadError,
    EndpointUnavailableError,
    LinkExpiredError,
    TransportError,
    classify,
)

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
SIGNED = (
    "https://dcs-runlog.obs.eu-de.otc.t-systems.com/a/b.log"
    "?AWSAccessKeyId=AKOBS&Expires=1735732800&Signature=c2VjcmV0LXNpZw%3D%3D"
)
SECRET_BITS = ("AWSAccessKeyId", "AKOBS", "Signature", "c2VjcmV0LXNpZw", "Expires=")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-4", 0.0),
        (format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    """Retry-After as seconds or an HTTP-date becomes seconds to wait; garbage is ignored."""
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error_code":"DCS.4800","error_msg":"Invalid offset in the request.","error_ext_msg":null}',
            ("DCS.4800", "Invalid offset in the request."),
        ),
        (b'{"error_code":111404022,"error_msg":"legacy"}', ("111404022", "legacy")),
        (
            b'{"error":{"code":401,"title":"Unauthorized","message":"The username or password is wrong."}}',
            ("401", "The username or password is wrong."),
        ),
        (
            b'{"error_code":"APIG.0308","error_msg":"throttled","error":{"code":429}}',
            ("APIG.0308", "throttled"),
        ),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>",
            ("", "502 Bad Gateway"),
        ),
        (b"<h1>upstream   timed\nout</h1>", ("", "upstream timed out")),
        (b"", ("", "")),
        (b'["odd"]', ("", '["odd"]')),
        (b'{"error_code":{},"error_msg":{}}', ("", "")),
    ],
)
def test_error_bodies_are_read_tolerantly(body: bytes, expected: tuple[str, str]) -> None:
    """DCS, IAM, legacy numeric and gateway HTML error bodies all yield a code and a one-line message."""
    assert parse_error_body(body) == expected


def test_error_message_is_one_bounded_line() -> None:
    """A huge error page cannot flood a log line."""
    code, msg = parse_error_body(b"x" * 10_000)
    assert code == ""
    assert len(msg) <= 200
    assert "\n" not in msg


def test_api_error_carries_status_code_and_retry_after() -> None:
    """A 429 becomes a throttling ApiError with the wait the gateway asked for."""
    exc = api_error(
        429,
        b'{"error_code":"APIG.0308","error_msg":"The request is throttled."}',
        {"Retry-After": "4"},
        what="list instances",
    )
    assert (exc.status, exc.code, exc.retry_after) == (429, "APIG.0308", 4.0)
    assert str(exc) == "list instances: HTTP 429 APIG.0308: The request is throttled."
    assert classify(exc).action is Action.THROTTLED


def test_malformed_json_is_a_retryable_bad_gateway() -> None:
    """A 200 with a broken body is reported as 502 so the engine retries it."""
    with pytest.raises(ApiError) as info:
        parse_json(200, b'{"instances": [', what="list instances")
    assert info.value.status == 502
    assert "malformed JSON" in str(info.value)
    assert classify(info.value).action is Action.RETRY
    assert parse_json(204, b"", what="x") is None
    assert parse_json(200, b"  ", what="x") is None


def test_query_is_encoded_like_the_signer_expects() -> None:
    """Query values are RFC 3986 encoded and appended with the right separator."""
    assert (
        encode_query({"tags": "env=prod,team=a b", "name": "x~y"})
        == "tags=env%3Dprod%2Cteam%3Da%20b&name=x~y"
    )
    assert with_query("https://h/p", {"a": "1"}) == "https://h/p?a=1"
    assert with_query("https://h/p?x=0", {"a": "1"}) == "https://h/p?x=0&a=1"
    assert with_query("https://h/p", None) == "https://h/p"


class _FakeConnKey:
    host = "dcs-runlog.obs.eu-de.otc.t-systems.com"
    port = 443
    ssl = True


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (aiohttp.ServerDisconnectedError(), "server disconnected"),
        (
            aiohttp.ClientPayloadError(f"Response payload is not completed {SIGNED}"),
            "response body incomplete",
        ),
        (aiohttp.ClientOSError(104, f"Connection reset by peer {SIGNED}"), "connection reset by peer"),
        (ConnectionResetError(104, "reset"), "connection reset by peer"),
        (aiohttp.ServerTimeoutError(f"Timeout on reading data from socket {SIGNED}"), "timed out"),
        (TimeoutError(), "timed out"),
        (
            aiohttp.ClientConnectorError(_FakeConnKey(), ConnectionRefusedError(111, "refused")),  # type: ignore[arg-type]
            "cannot connect (connection refused)",
        ),
        (aiohttp.InvalidURL(SIGNED), "invalid URL"),
        (aiohttp.TooManyRedirects(None, (), message=SIGNED), "TooManyRedirects"),  # type: ignore[arg-type]
    ],
)
def test_network_failures_become_one_safe_line(exc: BaseException, reason: str) -> None:
    """Every aiohttp failure turns into a TransportError that names no query string and chains nothing."""
    with pytest.raises(TransportError) as info, map_errors("download: GET https://obs.example/a/b.log"):
        raise exc
    text = str(info.value)
    assert text == f"download: GET https://obs.example/a/b.log: {reason}"
    for bit in SECRET_BITS:
        assert bit not in text
        assert bit not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True
    assert classify(info.value).action is Action.RETRY


def test_other_exceptions_pass_through_the_mapper() -> None:
    """Only network failures are translated; programming errors stay what they are."""
    with pytest.raises(KeyError), map_errors("x: GET https://h/p"):
        raise KeyError("k")


def test_obs_403_means_relink_with_code_and_message() -> None:
    """An expired link is reported with OBS's code and message, and no query string."""
    body = (
        b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
        b"<StringToSign>GET\n\n\n1735732800\n/b/a</StringToSign><SignatureProvided>c2VjcmV0LXNpZw==</SignatureProvided></Error>"
    )
    assert parse_obs_error(body) == ("AccessDenied", "Request has expired")
    with pytest.raises(LinkExpiredError) as info:
        raise obs_error(403, body, {}, "https://obs.example/a/b.log")
    assert str(info.value) == "GET https://obs.example/a/b.log: OBS 403 AccessDenied: Request has expired"
    assert "c2VjcmV0" not in str(info.value)
    assert classify(info.value).action is Action.RELINK


def test_obs_5xx_is_retryable_and_404_is_not() -> None:
    """OBS 5xx/503 SlowDown are transport failures to retry; a 404 fails the file."""
    slow = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    with pytest.raises(TransportError) as retry:
        raise obs_error(503, slow, {"Retry-After": "2"}, "https://obs.example/k")
    assert "OBS 503 SlowDown" in str(retry.value)
    with pytest.raises(DownloadError) as gone:
        raise obs_error(404, b"<Error><Code>NoSuchKey</Code></Error>", {}, "https://obs.example/k")
    assert not isinstance(gone.value, LinkExpiredError)
    assert classify(gone.value).action is Action.SKIP


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (
            aiohttp.ClientConnectorError(_FakeConnKey(), ConnectionRefusedError(111, "refused")),  # type: ignore[arg-type]
            "connection refused",
        ),
        (
            aiohttp.ClientConnectorDNSError(_FakeConnKey(), OSError(-2, "Name or service not known")),  # type: ignore[arg-type]
            "cannot resolve the host name",
        ),
        (
            aiohttp.ClientConnectorSSLError(_FakeConnKey(), OSError(1, "wrong version number")),
            "TLS handshake failed",
        ),
        (aiohttp.ConnectionTimeoutError(f"Connection timeout to host {SIGNED}"), "connect timed out"),
        (aiohttp.SocketTimeoutError(f"Timeout on reading data from socket {SIGNED}"), None),
        (aiohttp.ServerDisconnectedError(), None),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), None),
        (aiohttp.ClientPayloadError("incomplete"), None),
    ],
)
def test_only_failures_to_connect_count_against_an_endpoint(exc: BaseException, cause: str | None) -> None:
    """Refused, DNS, TLS and connect timeouts mean unreachable; a stall or a reset after connecting do not."""
    assert connection_failure(exc) == cause


def test_an_open_breaker_fails_dependent_work_instead_of_retrying() -> None:
    """A call refused by the circuit breaker is not retried: the outage was already waited out."""
    exc = EndpointUnavailableError("x", endpoint="https://dcs.example:443", cause="connection refused")
    assert isinstance(exc, TransportError)
    assert classify(exc).action is Action.SKIP
    assert classify(TransportError("reset")).action is Action.RETRY
