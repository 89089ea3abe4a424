"""The DCS client, transport and authenticators against the emulator over loopback HTTP.

The first section checks the tolerant JSON parsers without a network; the rest runs real
requests: both auth methods, token renewal, pagination, the run-log journey down to the
bytes, and every failure the engine must be able to tell apart, with safe messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import anyio
import pytest

from harvester import models
from harvester.cloud.auth import AkSkAuth, Authenticator, StaticTokenAuth
from harvester.cloud.dcs import DcsClient, parse_instance, parse_runlog
from harvester.cloud.iam import Iam, IamUser, PasswordAuth
from harvester.cloud.obs import open_download
from harvester.cloud.transport import Transport
from harvester.emulator import Emulator, Instance
from harvester.errors import (
    Action,
    ApiError,
    AuthError,
    IncompleteBodyError,
    LinkExpiredError,
    TransportError,
    classify,
)
from harvester.models import LogFile, Replica, Secret, SignedLink, Target
from harvester.plan import link_expires_at
from tests.emulator_sigv import EmulatorFactory
from tests.polling import DEADLINE, eventually

T = TypeVar("T")
STALL = 0.3
TARGET = Target("p", "0" * 32, "eu-de", "i-1", "cache")

# --------------------------------------------------------------------------------------------
# Parsing quirks (no network)


def test_instance_parser_tolerates_type_quirks() -> None:
    """Numbers for strings, {} for null, dict tags and unknown fields do not break an instance."""
    info = parse_instance(
        {
            "instance_id": "i-1",
            "name": 42,
            "engine": "Redis",
            "engine_version": 5.0,
            "status": "FROZEN",
            "ip": {},
            "port": "6379",
            "tags": {"env": "prod"},
            "created_at": 1700000000000,
            "brand_new_field": [1, 2],
        }
    )
    assert (info.name, info.engine_version, info.ip, info.port, info.cache_mode) == ("42", "5", "", 6379, "")
    assert info.tags == (("env", "prod"),)
    assert info.created_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert info.raw["brand_new_field"] == [1, 2]
    assert "raw" not in repr(info)


def test_runlog_parser_keeps_unknown_status_and_falls_back_to_the_file_name() -> None:
    """An unknown status is kept verbatim; a missing 'time' is read from the file name; junk is dropped."""
    item = parse_runlog(
        {"id": 7, "file_name": "redis_10.0.0.1_2024-03-05.log", "status": "queued", "time": {}}, TARGET, ()
    )
    assert item == LogFile(
        replica=Replica(TARGET, group_name="", replication_ip="", replication_id=None, role=""),
        log_id="7",
        file_name="redis_10.0.0.1_2024-03-05.log",
        day=date(2024, 3, 5),
        status="queued",
    )
    assert parse_runlog({"file_name": "x.log", "time": "2024-03-05"}, TARGET, ()) is None
    assert parse_runlog({"id": "1", "file_name": "x.log", "time": "yesterday"}, TARGET, ()) is None


def test_runlog_items_are_attached_to_the_replica_that_owns_them() -> None:
    """A listed file takes its owner's replication id and role; a file of no known replica gets neither."""
    master = Replica(TARGET, "group-0", "10.0.0.1", "rid-1", "master")
    data = {"id": "9", "file_name": "redis.log", "time": "2024-03-05", "group_name": "group-0"}
    owned = parse_runlog({**data, "replication_ip": "10.0.0.1"}, TARGET, [master])
    assert owned is not None
    assert owned.replica == master
    stray = parse_runlog({**data, "replication_ip": "10.0.0.9"}, TARGET, [master])
    assert stray is not None
    assert (stray.replica.replication_ip, stray.replica.replication_id, stray.replica.role) == (
        "10.0.0.9",
        None,
        "",
    )


def test_link_expiry_reads_expires_or_assumes_24h() -> None:
    """A link expires at its Expires parameter, or 24 hours after it was obtained."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert link_expires_at(
        "https://b.obs/k?AWSAccessKeyId=a&Expires=1735779600&Signature=s", now
    ) == datetime(2025, 1, 2, 1, tzinfo=UTC)
    assert link_expires_at(
        "https://b.obs/k?X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600", now
    ) == now + timedelta(hours=1)
    assert link_expires_at("https://b.obs/k", now) == now + timedelta(hours=24)


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """Generous timeouts: a loaded machine must not turn a healthy exchange into a timeout."""
    async with Transport(
        api_connections=8, download_connections=4, connect_timeout=10.0, read_timeout=30.0, stall_timeout=10.0
    ) as t:
        yield t


def aksk(emu: Emulator, *, secret: str | None = None) -> AkSkAuth:
    return AkSkAuth(emu.access_key, Secret(secret or emu.secret_key), project_id=emu.project_id)


def iam(emu: Emulator, transport: Transport, *, endpoint: str | None = None, pw: str | None = None) -> Iam:
    user = IamUser(emu.username, Secret(pw or emu.password), emu.domain)
    return Iam(transport, endpoint or emu.iam_endpoint, user)


def password(emu: Emulator, transport: Transport, *, pw: str | None = None) -> PasswordAuth:
    return PasswordAuth.from_login(iam(emu, transport, pw=pw).login(project_id=emu.project_id))


def target_of(emu: Emulator, inst: Instance) -> Target:
    return Target("emulated", emu.project_id, "eu-de", inst.instance_id, inst.name)


def client(
    emu: Emulator,
    transport: Transport,
    auth: Authenticator | None = None,
    *,
    page_size: int = 1000,
    runner: Any = None,
) -> DcsClient:
    return DcsClient(
        transport,
        endpoint=emu.dcs_endpoint,
        project_id=emu.project_id,
        auth=auth or aksk(emu),
        page_size=page_size,
        runner=runner,
    )


class RecordingRunner:
    """The engine's runner seam: records every request's 'what' and runs it once."""

    def __init__(self) -> None:
        self.whats: list[str] = []

    async def __call__(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        self.whats.append(what)
        return await fn()


def collectable(emu: Emulator, cache_mode: str = "ha") -> Instance:
    return next(i for i in emu.fleet.find(cache_mode=cache_mode) if i.collectable)


async def ready_runlogs(
    dcs: DcsClient, target: Target, count: int, replicas: tuple[Replica, ...] = ()
) -> list[LogFile]:
    async def ready() -> list[LogFile] | None:
        items = [i for i in await dcs.list_runlogs(target, replicas) if i.status == "succeed"]
        return items if len(items) >= count else None

    return await eventually(ready, what=f"{count} collected file(s) of {target.instance_id}", every=0.02)


async def one_link(emu: Emulator, dcs: DcsClient) -> tuple[SignedLink, bytes]:
    """A fresh link to a collected file, and the exact bytes the emulator will serve for it."""
    inst = collectable(emu)
    replica = inst.replicas[0]
    await dcs.collect_runlogs(inst.instance_id, query_time=1, replication_id=replica.replication_id)
    item = (await ready_runlogs(dcs, target_of(emu, inst), 1))[0]
    link = await dcs.create_link(inst.instance_id, item.log_id)
    spec = next(i for i in emu.runlog_items(inst.instance_id) if i.id == item.log_id).spec
    return link, b"".join(spec.iter_range())


async def download(transport: Transport, link: SignedLink) -> tuple[bytes, int | None]:
    async with open_download(transport, link.url, chunk_size=4096) as body:
        data = b"".join([c async for c in body.chunks()])
        return data, body.content_length


def assert_safe(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc)):
        for secret in secrets:
            assert secret not in text


def query_of(link: SignedLink) -> str:
    return link.url.reveal().split("?", 1)[1]


# --------------------------------------------------------------------------------------------
# Authentication


async def test_aksk_signed_requests_are_accepted(emulator: Emulator, transport: Transport) -> None:
    """AK/SK-signed calls (Host with port, X-Project-Id) list the whole fleet."""
    instances = await client(emulator, transport).list_instances()
    assert len(instances) == 12
    assert emulator.counters.auth_failures.total() == 0
    assert all(isinstance(i, models.Instance) and i.instance_id for i in instances)


async def test_password_auth_logs_in_once_for_many_calls(emulator: Emulator, transport: Transport) -> None:
    """With IAM password auth, one token serves every call, even concurrent ones."""
    dcs = client(emulator, transport, password(emulator, transport))
    results: list[list[models.Instance]] = []

    async def one() -> None:
        results.append(await dcs.list_instances())

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert [len(r) for r in results] == [12] * 8
    assert emulator.counters.tokens_issued == 1


async def test_revoked_token_triggers_exactly_one_relogin(emulator: Emulator, transport: Transport) -> None:
    """After IAM revokes the token, the next call gets a 401, logs in again once, and succeeds."""
    auth = password(emulator, transport)
    dcs = client(emulator, transport, auth)
    await dcs.list_instances()
    emulator.revoke_tokens()
    assert len(await dcs.list_instances()) == 12
    assert emulator.counters.tokens_issued == 2
    assert emulator.counters.auth_failures["DCS.1001"] == 1
    assert auth.provider.logins == 2


async def test_bad_secret_key_is_a_fatal_auth_error(emulator: Emulator, transport: Transport) -> None:
    """A wrong SK is refused with AuthError, tried once, and the key never appears in the message."""
    wrong = "WRONGSK0000000000000000000000000000000000"
    with pytest.raises(AuthError) as info:
        await client(emulator, transport, aksk(emulator, secret=wrong)).list_instances()
    assert info.value.status == 401
    assert classify(info.value).action is Action.FATAL
    assert emulator.counters.requests["dcs"] == 1
    assert_safe(info.value, wrong, emulator.secret_key)


async def test_wrong_password_fails_at_iam(emulator: Emulator, transport: Transport) -> None:
    """A wrong password is an AuthError from IAM that does not repeat the password."""
    dcs = client(emulator, transport, password(emulator, transport, pw="not-the-password"))
    with pytest.raises(AuthError) as info:
        await dcs.list_instances()
    assert "IAM login" in str(info.value)
    assert_safe(info.value, "not-the-password")
    assert emulator.counters.requests["dcs"] == 0


async def test_login_by_project_name(emulator: Emulator, transport: Transport) -> None:
    """IAM accepts a project scoped by name, returning a token and its expiry."""
    before = datetime.now(UTC)
    issued = await iam(emulator, transport).issue(project_name=emulator.project_names[0])
    token, expires_at = issued.token, issued.expires_at
    assert token.reveal().startswith("MIIE")
    day = timedelta(hours=24)  # the emulator's token lifetime, from the moment it answered
    assert before - timedelta(seconds=1) + day <= expires_at <= datetime.now(UTC) + day


async def test_login_prefers_project_id_and_tolerates_endpoint_without_v3(
    emulator: Emulator, transport: Transport
) -> None:
    """Given both scopes the unambiguous id wins, and an IAM endpoint without /v3 still works."""
    issued = await iam(emulator, transport, endpoint=emulator.base_url).issue(
        project_id=emulator.project_id, project_name="no-such-project"
    )
    assert issued.token
    with pytest.raises(ValueError, match="project scope"):
        await iam(emulator, transport, pw="x").issue()


async def test_static_token_works_until_revoked(emulator: Emulator, transport: Transport) -> None:
    """A token from the environment is used as is; once revoked, the 401 is final."""
    token = emulator.issue_token()
    dcs = client(emulator, transport, StaticTokenAuth(Secret(token)))
    assert len(await dcs.list_instances()) == 12
    emulator.revoke_tokens()
    with pytest.raises(AuthError) as info:
        await dcs.list_instances()
    assert info.value.code == "DCS.1001"
    assert_safe(info.value, token)


# --------------------------------------------------------------------------------------------
# Instances and pagination


async def test_instances_are_paged_per_request_through_the_runner(
    emulator: Emulator, transport: Transport
) -> None:
    """A small page size walks every page, each as its own runner call with a safe description."""
    runner = RecordingRunner()
    instances = await client(emulator, transport, page_size=5, runner=runner).list_instances()
    assert sorted(i.instance_id for i in instances) == sorted(i.instance_id for i in emulator.fleet.instances)
    assert len(runner.whats) == 3
    assert runner.whats[0] == f"list instances of project {emulator.project_id}"
    assert runner.whats[2].endswith("(offset 10)")


async def test_instance_filters_and_details(emulator: Emulator, transport: Transport) -> None:
    """Exact-name and tag filters narrow the list; show adds cache_mode; groups use the singular path."""
    dcs = client(emulator, transport)
    inst = collectable(emulator, "cluster")
    found = await dcs.list_instances(name=inst.name, name_equal=True)
    assert [i.instance_id for i in found] == [inst.instance_id]
    tagged = await dcs.list_instances(tags=dict(inst.tags))
    assert inst.instance_id in {i.instance_id for i in tagged}
    shown = await dcs.show_instance(inst.instance_id)
    assert (shown.cache_mode, shown.engine, shown.port) == ("cluster", "Redis", inst.port)
    assert shown.tags == tuple(sorted(inst.tags))
    assert shown.created_at is not None
    assert shown.raw["sharding_count"] == len(inst.groups)
    groups = await dcs.list_groups(target_of(emulator, inst))
    assert [g.group_name for g in groups] == [g.group_name for g in inst.groups]
    assert groups[0].replicas[0].role == "master"
    assert groups[0].replicas[1].replication_ip == inst.groups[0].replicas[1].ip


async def test_unknown_instance_is_a_skippable_404(emulator: Emulator, transport: Transport) -> None:
    """An unknown instance id surfaces DCS.3022 and affects only that instance."""
    with pytest.raises(ApiError) as info:
        await client(emulator, transport).show_instance("00000000-0000-4000-8000-000000000000")
    assert (info.value.status, info.value.code) == (404, "DCS.3022")
    assert "show instance 00000000-0000-4000-8000-000000000000" in str(info.value)
    assert classify(info.value).action is Action.SKIP


# --------------------------------------------------------------------------------------------
# Run logs, links and downloads


async def test_runlog_journey_streams_the_exact_bytes(emulator: Emulator, transport: Transport) -> None:
    """collect -> list (paged) -> link -> download yields the file's exact bytes and length."""
    runner = RecordingRunner()
    dcs = client(emulator, transport, page_size=2, runner=runner)
    inst = collectable(emulator)
    target = target_of(emulator, inst)
    assert await dcs.list_runlogs(target, ()) == []  # 204: nothing collected yet
    replica = inst.replicas[0]
    replicas = tuple(r for g in await dcs.list_groups(target) for r in g.replicas)
    await dcs.collect_runlogs(inst.instance_id, query_time=3, replication_id=replica.replication_id)
    items = await ready_runlogs(dcs, target, 3, replicas)
    assert len({i.log_id for i in items}) == 3
    assert {i.replica.replication_ip for i in items} == {replica.ip}
    assert {i.replica.replication_id for i in items} == {replica.replication_id}
    assert sorted(i.day for i in items) == [emulator.clock.today() - timedelta(days=d) for d in (3, 2, 1)]
    assert any(w.endswith("(offset 2)") for w in runner.whats)

    before = datetime.now(UTC)
    link = await dcs.create_link(inst.instance_id, items[0].log_id)
    after = datetime.now(UTC)
    assert before <= link.obtained_at <= after
    # The link's own Expires (whole seconds): 24 hours from when the emulator issued it.
    day = timedelta(hours=24)
    assert before.replace(microsecond=0) + day <= link.expires_at <= after + day
    assert query_of(link) not in repr(link)

    expected = b"".join(next(i for i in emulator.runlog_items() if i.id == items[0].log_id).spec.iter_range())
    data, length = await download(transport, link)
    assert length == len(expected) > 0
    assert data == expected
    assert not any("?" in w or "Signature" in w for w in runner.whats)


async def test_single_node_collects_without_replica(emulator: Emulator, transport: Transport) -> None:
    """A single-node instance is collected without replication_id (query_time 0: today)."""
    dcs = client(emulator, transport)
    inst = collectable(emulator, "single")
    await dcs.collect_runlogs(inst.instance_id, query_time=0, replication_id=None)
    items = await ready_runlogs(dcs, target_of(emulator, inst), 1)
    assert items[0].day == emulator.clock.today()


async def test_collect_rejects_unsupported_query_time(emulator: Emulator, transport: Transport) -> None:
    """query_time outside 0/1/3/7 is a programming error caught before any request."""
    with pytest.raises(ValueError, match="query_time"):
        await client(emulator, transport).collect_runlogs("x", query_time=2, replication_id=None)
    assert emulator.counters.requests["dcs"] == 0


async def test_expired_link_asks_for_a_relink(emulator: Emulator, transport: Transport) -> None:
    """A link past its Expires gets OBS 403, reported as LinkExpiredError without the query string."""
    link, _ = await one_link(emulator, client(emulator, transport))
    emulator.clock.advance(86_400 + 60)
    with pytest.raises(LinkExpiredError) as info:
        await download(transport, link)
    assert "OBS 403 AccessDenied: Request has expired" in str(info.value)
    assert classify(info.value).action is Action.RELINK
    assert_safe(info.value, query_of(link), "Signature", emulator.config.obs_secret_key)


async def test_truncated_body_is_incomplete(emulator: Emulator, transport: Transport) -> None:
    """A body cut before Content-Length raises IncompleteBodyError, never a short success."""
    link, _ = await one_link(emulator, client(emulator, transport))
    emulator.faults.obs.truncate_rate = 1.0
    with pytest.raises(IncompleteBodyError) as info:
        await download(transport, link)
    assert classify(info.value).action is Action.RETRY
    assert_safe(info.value, query_of(link))


async def test_stalled_body_fails_within_the_stall_timeout(emulator: Emulator, transport: Transport) -> None:
    """A body that stops flowing raises IncompleteBodyError after about stall_timeout, not stall_seconds."""
    link, _ = await one_link(emulator, client(emulator, transport))
    emulator.faults.obs.stall_rate = 1.0
    emulator.faults.obs.stall_seconds = 3600.0  # far beyond the deadline below: waiting it out fails
    async with Transport(stall_timeout=STALL) as impatient:
        with pytest.raises(IncompleteBodyError) as info, anyio.fail_after(DEADLINE):
            await download(impatient, link)
    assert emulator.counters.faults["stall"] == 1
    assert "no data for 0.3 s" in str(info.value)
    assert_safe(info.value, query_of(link))


async def test_reset_download_is_a_transport_error(emulator: Emulator, transport: Transport) -> None:
    """OBS resetting the connection is a retryable TransportError with a redacted URL."""
    link, _ = await one_link(emulator, client(emulator, transport))
    emulator.faults.obs.reset_rate = 1.0
    with pytest.raises(TransportError) as info:
        await download(transport, link)
    assert link.url.redacted in str(info.value)
    assert_safe(info.value, query_of(link))


async def test_obs_5xx_is_retryable(emulator: Emulator, transport: Transport) -> None:
    """OBS 500 InternalError is retried, not treated as a dead link."""
    link, _ = await one_link(emulator, client(emulator, transport))
    emulator.faults.obs.error_500_rate = 1.0
    with pytest.raises(TransportError) as info:
        await download(transport, link)
    assert "OBS 500 InternalError" in str(info.value)
    assert_safe(info.value, query_of(link))


async def test_tampered_link_is_refused_as_expired(emulator: Emulator, transport: Transport) -> None:
    """A link whose signature does not match gets 403, handled like an expired link."""
    link, _ = await one_link(emulator, client(emulator, transport))
    bad = SignedLink(
        url=type(link.url)(link.url.reveal().replace("Signature=", "Signature=AAAA")),
        expires_at=link.expires_at,
        obtained_at=link.obtained_at,
    )
    with pytest.raises(LinkExpiredError) as info:
        await download(transport, bad)
    assert "SignatureDoesNotMatch" in str(info.value)


# --------------------------------------------------------------------------------------------
# API failures


async def test_api_reset_is_a_transport_error(emulator: Emulator, transport: Transport) -> None:
    """A reset DCS connection raises TransportError naming the call and the path, nothing more."""
    emulator.faults.dcs.reset_rate = 1.0
    with pytest.raises(TransportError) as info:
        await client(emulator, transport).list_instances()
    assert str(info.value).startswith(f"list instances of project {emulator.project_id}: GET http://")
    assert "?" not in str(info.value)
    assert classify(info.value).action is Action.RETRY


async def test_500_is_a_retryable_api_error(emulator: Emulator, transport: Transport) -> None:
    """A 500 from the link call carries its DCS code and classifies as retry."""
    dcs = client(emulator, transport)
    inst = collectable(emulator)
    emulator.faults.links.error_500_rate = 1.0
    with pytest.raises(ApiError) as info:
        await dcs.create_link(inst.instance_id, "00000000-0000-4000-8000-000000000001")
    assert (info.value.status, info.value.code) == (500, "DCS.5000")
    assert classify(info.value).action is Action.RETRY


@pytest.mark.parametrize("http_date", [False, True])
async def test_429_carries_retry_after(
    emulator_factory: EmulatorFactory, transport: Transport, http_date: bool
) -> None:
    """Gateway throttling surfaces APIG.0308 and the Retry-After wait, as seconds or an HTTP-date."""
    emu = await emulator_factory()
    emu.faults.dcs.throttle_rate = 1.0
    emu.faults.dcs.retry_after = 3.0
    emu.faults.dcs.retry_after_http_date = http_date
    with pytest.raises(ApiError) as info:
        await client(emu, transport).list_instances()
    assert (info.value.status, info.value.code) == (429, "APIG.0308")
    assert info.value.retry_after is not None
    assert 1.0 <= info.value.retry_after <= 3.0
    assert classify(info.value).action is Action.THROTTLED


async def test_malformed_json_is_retried_as_bad_gateway(emulator: Emulator, transport: Transport) -> None:
    """A cut JSON body becomes a 502-classed ApiError, so the engine retries instead of crashing."""
    emulator.faults.dcs.malformed_json_rate = 1.0
    with pytest.raises(ApiError) as info:
        await client(emulator, transport).list_instances()
    assert info.value.status == 502
    assert "malformed JSON" in str(info.value)
    assert classify(info.value).action is Action.RETRY


async def test_link_for_unknown_log_is_not_found(emulator: Emulator, transport: Transport) -> None:
    """An unknown run-log id is a 404 for that file only."""
    inst = collectable(emulator)
    with pytest.raises(ApiError) as info:
        await client(emulator, transport).create_link(
            inst.instance_id, "00000000-0000-4000-8000-000000000001"
        )
    assert (info.value.status, info.value.code) == (404, "DCS.4001")
    assert classify(info.value).action is Action.SKIP


async def test_slowlogs_are_paged(emulator: Emulator, transport: Transport) -> None:
    """The slow log of the last day comes back complete across several pages."""
    runner = RecordingRunner()
    dcs = client(emulator, transport, runner=runner)
    inst = collectable(emulator)
    end = emulator.clock.now_dt()
    entries = await dcs.slowlogs(inst.instance_id, start=end - timedelta(days=1), end=end, page_size=7)
    assert len(entries) > 7
    assert len({e["id"] for e in entries}) == len(entries)
    assert len(runner.whats) == -(-len(entries) // 7)  # ceil: no extra request after the last page
    assert {"command", "start_time", "duration"} <= set(entries[0])
