"""Instances, shards, auth and error shapes of the emulator's DCS API over loopback HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

from harvester.emulator import Emulator
from tests.emulator_sigv import EmulatorApi, EmulatorFactory, token_request


def _error(body: Any, code: str) -> None:
    assert body["error_code"] == code
    assert isinstance(body["error_msg"], str)
    assert "error_ext_msg" in body
    assert body["error_ext_msg"] is None


async def test_list_instances_default_page(emulator_api: EmulatorApi) -> None:
    """Listing returns the total and a first page of 10 by default."""
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 200
    assert res.json["instance_num"] == 12
    assert len(res.json["instances"]) == 10
    first = res.json["instances"][0]
    assert first["engine"] == "Redis"
    assert {"instance_id", "name", "engine_version", "status", "spec_code", "ip", "port", "tags"} <= set(
        first
    )


async def test_list_instances_paginates(emulator_api: EmulatorApi) -> None:
    """offset/limit walk the whole fleet without overlap."""
    seen: list[str] = []
    for offset in range(0, 12, 5):
        res = await emulator_api.call("GET", "/instances", {"offset": offset, "limit": 5})
        seen += [i["instance_id"] for i in res.json["instances"]]
    assert len(seen) == len(set(seen)) == 12


async def test_list_instances_bad_limit(emulator_api: EmulatorApi) -> None:
    """limit outside 1..1000 (or not a number) is 400 DCS.4800."""
    for bad in (0, 1001, "x", -1):
        res = await emulator_api.call("GET", "/instances", {"limit": bad})
        assert res.status == 400
        _error(res.json, "DCS.4800")


async def test_list_instances_filters(emulator_api: EmulatorApi) -> None:
    """name (fuzzy or exact), status, tags, ip and instance_id filter the list."""
    emu = emulator_api.emu
    inst = emu.fleet.instances[3]

    async def names(**params: object) -> list[str]:
        res = await emulator_api.call("GET", "/instances", {"limit": 1000, **params})
        return [i["name"] for i in res.json["instances"]]

    assert inst.name in await names(name=inst.name[6:12])
    assert await names(name=inst.name, name_equal="true") == [inst.name]
    assert await names(name=inst.name[6:12], name_equal="true") == []
    assert await names(instance_id=inst.instance_id) == [inst.name]
    assert await names(ip=inst.ip) == [inst.name]
    env, app = dict(inst.tags)["env"], dict(inst.tags)["app"]
    tagged = await names(tags=f"env={env},app={app}")
    assert inst.name in tagged
    assert all(dict(i.tags)["env"] == env for i in emu.fleet.instances if i.name in tagged)
    sick = [i.name for i in emu.fleet.instances if i.status != "RUNNING"]
    assert await names(status="RUNNING") == [i.name for i in emu.fleet.instances if i.status == "RUNNING"]
    assert sick
    assert set(sick) <= {
        n for s in ("CREATING", "ERROR", "RESTARTING", "EXTENDING", "FROZEN") for n in await names(status=s)
    }


async def test_show_instance(emulator_api: EmulatorApi) -> None:
    """Show adds cache_mode, sharding_count and replica_count."""
    inst = emulator_api.emu.fleet.find(cache_mode="cluster")[0]
    res = await emulator_api.call("GET", f"/instances/{inst.instance_id}")
    assert res.status == 200
    assert res.json["cache_mode"] == "cluster"
    assert res.json["sharding_count"] == len(inst.groups)
    assert res.json["replica_count"] == len(inst.groups[0].replicas)


async def test_show_unknown_instance(emulator_api: EmulatorApi) -> None:
    """An unknown instance id is 404 DCS.3022."""
    res = await emulator_api.call("GET", "/instances/00000000-0000-4000-8000-000000000000")
    assert res.status == 404
    _error(res.json, "DCS.3022")


async def test_groups_of_cluster(emulator_api: EmulatorApi) -> None:
    """The singular-instance groups path lists shards with master and slave replicas."""
    inst = emulator_api.emu.fleet.find(cache_mode="cluster")[0]
    res = await emulator_api.call("GET", f"/instance/{inst.instance_id}/groups")
    assert res.status == 200
    assert res.json["group_count"] == len(inst.groups)
    group = res.json["group_list"][0]
    assert group["group_name"] == "group-0"
    roles = [r["replication_role"] for r in group["replication_list"]]
    assert roles[0] == "master"
    assert set(roles[1:]) == {"slave"}
    replica = group["replication_list"][1]
    assert replica["is_replication"] is True
    assert replica["replication_ip"] == inst.groups[0].replicas[1].ip


async def test_groups_of_single_is_refused(emulator_api: EmulatorApi) -> None:
    """Single-node instances have no groups: 400 DCS.4007."""
    inst = emulator_api.emu.fleet.find(cache_mode="single")[0]
    res = await emulator_api.call("GET", f"/instance/{inst.instance_id}/groups")
    assert res.status == 400
    _error(res.json, "DCS.4007")


async def test_unknown_route(emulator_api: EmulatorApi) -> None:
    """An unknown URL is 404 DCS.4001, even without credentials."""
    res = await emulator_api.call("GET", "/no-such-thing")
    assert res.status == 404
    _error(res.json, "DCS.4001")
    emulator_api.auth = "none"
    res = await emulator_api.call("GET", "/v9/whatever")
    assert res.status == 404
    _error(res.json, "DCS.4001")


async def test_missing_credentials(emulator_api: EmulatorApi) -> None:
    """No token and no signature is 401 DCS.1003."""
    emulator_api.auth = "none"
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 401
    _error(res.json, "DCS.1003")


async def test_bad_signature(emulator_api: EmulatorApi) -> None:
    """A signature made with the wrong SK is 401 DCS.1001."""
    emulator_api.secret_key = "WRONG" + emulator_api.emu.secret_key[5:]
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 401
    _error(res.json, "DCS.1001")
    assert emulator_api.emu.counters.auth_failures["DCS.1001"] == 1


async def test_aksk_skew_beyond_15_minutes(emulator_api: EmulatorApi) -> None:
    """An X-Sdk-Date 16 minutes off the emulator clock is refused, 14 minutes is fine."""
    emu = emulator_api.emu
    emulator_api.sdk_date = emu.clock.now_dt()
    emu.clock.advance(16 * 60)
    assert (await emulator_api.call("GET", "/instances")).status == 401
    emu.clock.advance(-2 * 60)
    assert (await emulator_api.call("GET", "/instances")).status == 200


async def test_aksk_with_project_header_for_other_project(emulator_api: EmulatorApi) -> None:
    """X-Project-Id naming another project than the path is 401 DCS.1004."""
    res = await emulator_api.call("GET", "/instances", headers={"X-Project-Id": "f" * 32})
    assert res.status == 401
    _error(res.json, "DCS.1004")
    ok = await emulator_api.call("GET", "/instances", headers={"X-Project-Id": emulator_api.emu.project_id})
    assert ok.status == 200


async def test_unknown_project_in_path(emulator_api: EmulatorApi) -> None:
    """A path project that is not one of the emulator's is 401 DCS.1004."""
    res = await emulator_api.call("GET", "/instances", project_id="0" * 32)
    assert res.status == 401
    _error(res.json, "DCS.1004")


async def test_iam_token_by_id_and_name(emulator: Emulator) -> None:
    """IAM issues a 201 with X-Subject-Token and expires_at, scoped by project id or name."""
    async with aiohttp.ClientSession() as session:
        for body in (
            token_request(emulator, project_id=emulator.project_id),
            token_request(emulator, project_name="eu-de_emulated"),
        ):
            async with session.post(emulator.iam_endpoint + "/auth/tokens", json=body) as resp:
                assert resp.status == 201
                assert resp.headers["X-Subject-Token"]
                data = await resp.json()
                assert data["token"]["expires_at"].endswith("Z")
                assert data["token"]["project"]["id"] == emulator.project_id
    assert emulator.counters.tokens_issued == 2


async def test_iam_wrong_password(emulator: Emulator) -> None:
    """A wrong password is 401 with an error body and no token."""
    async with aiohttp.ClientSession() as session:
        body = token_request(emulator, project_id=emulator.project_id, password="nope")
        async with session.post(emulator.iam_endpoint + "/auth/tokens", json=body) as resp:
            assert resp.status == 401
            assert "X-Subject-Token" not in resp.headers
            assert (await resp.json())["error_code"]


async def test_token_auth_and_project_scope(emulator_factory: EmulatorFactory) -> None:
    """A token works for its own project and is 401 DCS.1004 for another one."""
    emu = await emulator_factory(projects=2)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        api.auth = "token"
        assert (await api.call("GET", "/instances")).status == 200
        res = await api.call("GET", "/instances", project_id=emu.project_ids[1])
        assert res.status == 401
        _error(res.json, "DCS.1004")


async def test_token_expiry_follows_emulator_clock(emulator_factory: EmulatorFactory) -> None:
    """A token past its configured lifetime is 401 DCS.1002."""
    emu = await emulator_factory(token_lifetime=60)
    async with aiohttp.ClientSession() as session:
        api = EmulatorApi(session, emu)
        api.auth = "token"
        assert (await api.call("GET", "/instances")).status == 200
        emu.clock.advance(61)
        res = await api.call("GET", "/instances")
        assert res.status == 401
        _error(res.json, "DCS.1002")


async def test_token_revocation(emulator_api: EmulatorApi) -> None:
    """revoke_tokens() makes existing tokens 401 DCS.1001; a fresh token works."""
    emulator_api.auth = "token"
    assert (await emulator_api.call("GET", "/instances")).status == 200
    emulator_api.emu.revoke_tokens()
    res = await emulator_api.call("GET", "/instances")
    assert res.status == 401
    _error(res.json, "DCS.1001")
    emulator_api.token = None
    assert (await emulator_api.call("GET", "/instances")).status == 200


async def test_scheduled_token_revocation(emulator_api: EmulatorApi) -> None:
    """revoke_tokens(at=t) leaves tokens valid until the emulator clock reaches t."""
    emu = emulator_api.emu
    emulator_api.auth = "token"
    emu.revoke_tokens(at=emu.clock.now() + 300)
    assert (await emulator_api.call("GET", "/instances")).status == 200
    emu.clock.advance(301)
    assert (await emulator_api.call("GET", "/instances")).status == 401
