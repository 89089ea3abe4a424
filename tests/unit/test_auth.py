"""The AK/SK signer against the contract's known answers, and the token provider's lifecycle."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from harvester.cloud.auth import (
    AkSkAuth,
    AkSkSigner,
    StaticTokenAuth,
    canonical_path,
    canonical_query,
    host_header,
)
from harvester.cloud.iam import PasswordAuth, TokenProvider
from harvester.models import Secret

AK = "AKEXAMPLE0000000000"
SK = "SKEXAMPLESECRET00000000000000000000000000"
PROJECT = "0524e839a54847039e9b2b46e8aa788a"
PATH = f"/v2/{PROJECT}/instances/5560df16-cebf-4473-95c4-d1b573c16e79/redislog"
BASE = f"https://dcs.eu-de.otc.t-systems.com{PATH}"
WHEN = datetime(2025, 1, 1, tzinfo=UTC)
HEADERS = {"Content-Type": "application/json", "X-Project-Id": PROJECT}


def _signer() -> AkSkSigner:
    return AkSkSigner(AK, Secret(SK))


def _signature(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def test_get_vector_matches_the_official_sdk() -> None:
    """A signed GET reproduces the contract's canonical-request hash and signature exactly."""
    url = f"{BASE}?log_type=run&offset=0&limit=10"
    signed = _signer().sign("GET", url, HEADERS, b"", WHEN)
    unsigned = {k: v for k, v in signed.items() if k != "Authorization"}
    creq = AkSkSigner.canonical_request("GET", url, unsigned, b"")
    assert creq.split("\n")[2] == "limit=10&log_type=run&offset=0"
    assert hashlib.sha256(creq.encode()).hexdigest() == (
        "d9148a37d140a5c9a4ec12c76b1d0b554cdc4aec6bae769088403696323f645f"
    )
    assert _signature(signed) == "15996bbe11c03f4879c32ac939f9da0fef523a1d0a46c6b3bd73317c0fcbe1d4"
    assert signed["X-Sdk-Date"] == "20250101T000000Z"
    assert signed["Host"] == "dcs.eu-de.otc.t-systems.com"
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in signed["Authorization"]
    assert signed["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")


def test_post_vector_matches_the_official_sdk() -> None:
    """A signed collect POST (query only, empty body) reproduces the contract's signature."""
    url = f"{BASE}?query_time=7&log_type=run&replication_id=dfbd3f84-08bc-42f0-b538-01d03e6dc178"
    signed = _signer().sign("POST", url, HEADERS, b"", WHEN)
    creq = AkSkSigner.canonical_request("POST", url, signed, b"")
    assert creq.split("\n")[2] == (
        "log_type=run&query_time=7&replication_id=dfbd3f84-08bc-42f0-b538-01d03e6dc178"
    )
    assert _signature(signed) == "69231a832fc6e4cd5f4986eeea1c9a14eceb9e7fe998941baddf45c1677886d5"


def test_host_includes_a_non_default_port() -> None:
    """Against a local endpoint the signed Host carries the port, as HTTP clients send it."""
    signed = _signer().sign("GET", "http://127.0.0.1:8555/v2/p/instances", {}, b"", WHEN)
    assert signed["Host"] == "127.0.0.1:8555"
    assert host_header("https://dcs.example:443/x") == "dcs.example"
    assert host_header("http://dcs.example:80/x") == "dcs.example"
    assert host_header("https://dcs.example:8443/x") == "dcs.example:8443"
    assert host_header("http://[::1]:9000/x") == "[::1]:9000"


def test_special_characters_are_rfc3986_encoded() -> None:
    """Path segments and query pairs are encoded like the SDK, and the path always ends in '/'."""
    assert canonical_path("/v2/a b/c%2Fd~e") == "/v2/a%20b/c/d~e/"
    assert canonical_path("") == "/"
    assert canonical_path("/v2/x/") == "/v2/x/"
    assert canonical_query("name=a%20b&tags=k%3Dv,k2%3Dv2&a=%7E*") == "a=~%2A&name=a%20b&tags=k%3Dv%2Ck2%3Dv2"
    assert canonical_query("") == ""


def test_signed_headers_skip_underscores_and_authorization() -> None:
    """Headers with '_' are sent but not signed, and an old Authorization never signs itself."""
    headers = {"X_Custom": "1", "User-Agent": " ua ", "Authorization": "stale"}
    signed = _signer().sign("GET", "https://h/p", headers, b"", WHEN)
    assert "SignedHeaders=host;user-agent;x-sdk-date," in signed["Authorization"]
    creq = AkSkSigner.canonical_request("GET", "https://h/p", signed, b"")
    assert "user-agent:ua\n" in creq
    assert "x_custom" not in creq


def test_signer_demands_an_aware_clock() -> None:
    """A naive timestamp would sign the wrong X-Sdk-Date, so it is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        _signer().sign("GET", "https://h/p", {}, b"", datetime(2025, 1, 1))


def test_no_authenticator_shows_its_secret() -> None:
    """repr/str of signers, authenticators and providers never contain a secret."""

    async def login() -> tuple[Secret, datetime]:
        return Secret("tok"), WHEN

    objects = [
        _signer(),
        AkSkAuth(AK, Secret(SK)),
        StaticTokenAuth(Secret("MIIEstatic-token")),
        PasswordAuth.from_login(login),
    ]
    for obj in objects:
        assert SK not in repr(obj)
        assert SK not in str(obj)
        assert "MIIEstatic-token" not in repr(obj)


async def test_aksk_auth_signs_with_project_id_and_does_not_retry_401() -> None:
    """AK/SK requests carry X-Project-Id and a signature; a 401 cannot be fixed by resending."""
    auth = AkSkAuth(AK, Secret(SK), project_id=PROJECT, clock=lambda: WHEN)
    url = f"{BASE}?log_type=run&offset=0&limit=10"
    headers = await auth.headers("GET", url, b"")
    assert _signature(headers) == "15996bbe11c03f4879c32ac939f9da0fef523a1d0a46c6b3bd73317c0fcbe1d4"
    assert await auth.refresh_after_401(headers) is False


async def test_static_token_is_sent_and_401_is_final() -> None:
    """A static token goes in X-Auth-Token and is never 'refreshed'."""
    auth = StaticTokenAuth(Secret("MIIEabc"))
    assert await auth.headers("GET", "https://h/p", b"") == {"X-Auth-Token": "MIIEabc"}
    assert await auth.refresh_after_401() is False


class FakeClock:
    def __init__(self) -> None:
        self.now = WHEN

    def __call__(self) -> datetime:
        return self.now


class FakeIam:
    def __init__(self, clock: FakeClock, lifetime: timedelta = timedelta(hours=24)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0

    async def __call__(self) -> tuple[Secret, datetime]:
        self.calls += 1
        for _ in range(3):  # in flight for a few turns of the loop: concurrent callers arrive meanwhile
            await anyio.lowlevel.checkpoint()
        return Secret(f"token-{self.calls}"), self.clock.now + self.lifetime


async def test_token_is_cached_and_renewed_ten_minutes_before_expiry() -> None:
    """One login serves many requests until fewer than 10 minutes are left, then a new one is made."""
    clock = FakeClock()
    iam = FakeIam(clock, lifetime=timedelta(hours=1))
    provider = TokenProvider(iam, clock=clock)
    assert (await provider.token()).reveal() == "token-1"
    clock.now += timedelta(minutes=49)
    assert (await provider.token()).reveal() == "token-1"
    clock.now += timedelta(minutes=2)
    assert (await provider.token()).reveal() == "token-2"
    assert iam.calls == provider.logins == 2


async def test_concurrent_callers_share_one_login() -> None:
    """Twenty requests starting at once cause a single IAM login (single flight)."""
    clock = FakeClock()
    iam = FakeIam(clock)
    auth = PasswordAuth(TokenProvider(iam, clock=clock))
    results: list[dict[str, str]] = []

    async def one() -> None:
        results.append(await auth.headers("GET", "https://h/p", b""))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert iam.calls == 1
    assert {r["X-Auth-Token"] for r in results} == {"token-1"}


async def test_401_forces_one_relogin_shared_by_all_rejected_requests() -> None:
    """After a revocation, requests refused with the old token share one re-login."""
    clock = FakeClock()
    iam = FakeIam(clock)
    auth = PasswordAuth(TokenProvider(iam, clock=clock))
    old = await auth.headers("GET", "https://h/p", b"")
    assert await auth.refresh_after_401(old) is True
    fresh = await auth.headers("GET", "https://h/p", b"")
    assert fresh["X-Auth-Token"] == "token-2"
    # a second request that was refused with the *old* token must not throw the new one away
    assert await auth.refresh_after_401(old) is True
    assert (await auth.headers("GET", "https://h/p", b""))["X-Auth-Token"] == "token-2"
    assert iam.calls == 2


async def test_failed_login_propagates_and_the_next_call_tries_again() -> None:
    """A failing IAM login surfaces its error and leaves no half-set token behind."""
    calls = 0

    async def flaky() -> tuple[Secret, datetime]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("iam down")
        return Secret("ok"), WHEN + timedelta(hours=1)

    provider = TokenProvider(flaky, clock=lambda: WHEN)
    with pytest.raises(RuntimeError):
        await provider.token()
    assert (await provider.token()).reveal() == "ok"
