"""DCS v2 handlers: instances, shards, run logs, links and the slow log (contract §2-§3).

Handlers assume the middleware already authenticated the caller for ``project_id``; they
validate parameters in the contract's order and raise :class:`ApiError` for every refusal.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import ApiError, int_param, invalid, json_response
from .fleet import Instance
from .obs import presign
from .runlogs import RunlogItem
from .slowlog import query as slowlog_query
from .state import STATE, EmulatorState

MAX_LIMIT = 1000
WEEK_MS = 7 * 86_400_000


def _instance(state: EmulatorState, request: web.Request) -> Instance:
    found = state.fleet.instance(request.match_info["project_id"], request.match_info["instance_id"])
    if found is None:
        raise ApiError(404, "DCS.3022", "The instance does not exist.")
    return found


def instance_json(inst: Instance, *, detail: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "instance_id": inst.instance_id,
        "name": inst.name,
        "engine": "Redis",
        "engine_version": inst.engine_version,
        "status": inst.status,
        "spec_code": inst.spec_code,
        "ip": inst.ip,
        "port": inst.port,
        "domain_name": f"redis-{inst.instance_id}.dcs.emulated.invalid",
        "capacity": inst.capacity_gb,
        "max_memory": inst.capacity_gb * 1024,
        "used_memory": inst.capacity_gb * 97,
        "cache_mode": inst.cache_mode,
        "tags": [{"key": k, "value": v} for k, v in inst.tags],
        "created_at": inst.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "charging_mode": 0,
        "enterprise_project_id": "0",
        "description": "",
        "az_codes": sorted({r.az_code for r in inst.replicas}),
    }
    if detail:
        data["sharding_count"] = inst.sharding_count
        data["replica_count"] = inst.replica_count
    return data


def _matches(inst: Instance, query: Any) -> bool:
    name = query.get("name")
    if name is not None:
        exact = query.get("name_equal", "false").lower() == "true"
        if (inst.name != name) if exact else (name.lower() not in inst.name.lower()):
            return False
    if query.get("status") not in (None, inst.status):
        return False
    if query.get("instance_id") not in (None, inst.instance_id):
        return False
    if query.get("ip") not in (None, inst.ip):
        return False
    tags = query.get("tags")
    if tags:
        have = dict(inst.tags)
        for pair in tags.split(","):
            key, sep, value = pair.partition("=")
            if key.strip() not in have or (sep and have[key.strip()] != value.strip()):
                return False
    return True


async def list_instances(request: web.Request) -> web.Response:
    state = request.app[STATE]
    offset = int_param(request.query, "offset", 0, 0)
    limit = int_param(request.query, "limit", 10, 1, MAX_LIMIT)
    found = [
        i for i in state.fleet.in_project(request.match_info["project_id"]) if _matches(i, request.query)
    ]
    page = [instance_json(i, detail=False) for i in found[offset : offset + limit]]
    return json_response({"instance_num": len(found), "instances": page})


async def show_instance(request: web.Request) -> web.Response:
    return json_response(instance_json(_instance(request.app[STATE], request), detail=True))


async def list_groups(request: web.Request) -> web.Response:
    inst = _instance(request.app[STATE], request)
    if inst.cache_mode == "single":
        raise ApiError(400, "DCS.4007", "This operation is not supported for single-node instances.")
    groups = [
        {
            "group_id": g.group_id,
            "group_name": g.group_name,
            "status": "Active",
            "replication_list": [
                {
                    "replication_id": r.replication_id,
                    "replication_role": r.role,
                    "replication_ip": r.ip,
                    "is_replication": r.role == "slave",
                    "node_id": r.node_id,
                    "status": "Active",
                    "az_code": r.az_code,
                    "dimensions": [],
                }
                for r in g.replicas
            ],
        }
        for g in inst.groups
    ]
    return json_response({"group_count": len(groups), "group_list": groups})


def _check_log_type(request: web.Request) -> None:
    if request.query.get("log_type") != "run":
        raise ApiError(400, "DCS.4800", "Invalid logType.")


async def collect_runlogs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = _instance(state, request)
    _check_log_type(request)
    query_time = request.query.get("query_time", "0")
    if query_time not in ("0", "1", "3", "7"):
        raise invalid("query_time")
    if inst.engine_version == "3.0":
        raise ApiError(400, "DCS.4007", "Run logs are not supported for Redis 3.0 instances.")
    if inst.status != "RUNNING":
        raise ApiError(400, "DCS.4049", "The instance is not running.")
    replication_id = request.query.get("replication_id")
    if replication_id is None and inst.cache_mode == "single":
        replica = inst.replicas[0]
    else:
        found = [r for r in inst.replicas if r.replication_id == replication_id]
        if not found:
            raise invalid("replication_id")
        replica = found[0]
    state.runlogs.collect(inst, replica, int(query_time))
    return web.Response(status=204)


def item_json(item: RunlogItem, now: float) -> dict[str, Any]:
    return {
        "id": item.id,
        "file_name": item.file_name,
        "group_name": item.replica.group_name,
        "replication_ip": item.replica.ip,
        "status": item.status(now),
        "time": item.day.isoformat(),
        "backup_id": item.id,
    }


async def list_runlogs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = _instance(state, request)
    _check_log_type(request)
    offset = int_param(request.query, "offset", 0, 0)
    limit = int_param(request.query, "limit", 10, 1, MAX_LIMIT)
    items = state.runlogs.listed(inst)
    if not items:
        return web.Response(status=204)
    now = state.clock.now()
    page = [item_json(i, now) for i in items[offset : offset + limit]]
    return json_response({"total_num": len(items), "file_list": page})


async def create_link(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = _instance(state, request)
    item = state.runlogs.get(request.match_info["log_id"])
    if (
        item is None
        or (item.instance_id, item.project_id) != (inst.instance_id, inst.project_id)
        or state.runlogs.expired(item)
    ):
        raise ApiError(404, "DCS.4001", "The run log does not exist.")
    if item.status(state.clock.now()) != "succeed":
        raise ApiError(400, "DCS.4026", "The run log is not ready for download.")
    hostile = state.faults.hostile
    base = None
    if state.injector.chance(hostile.link_rate):
        state.counters.faults["hostile_link"] += 1
        base = hostile.link_base
    link, _expires = presign(state, item, base=base)
    state.counters.links_issued += 1
    return json_response({"id": item.id, "backup_id": item.id, "link": link})


def _epoch_ms(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None or not raw.isdigit():
        raise invalid(name)
    return int(raw)


async def slowlog(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = _instance(state, request)
    start, end = _epoch_ms(request, "start_time"), _epoch_ms(request, "end_time")
    now_ms = int(state.clock.now() * 1000)
    if end < start:
        raise ApiError(400, "DCS.4025", "The end time must be later than the start time.")
    if start > now_ms:
        raise ApiError(400, "DCS.4031", "The start time cannot be in the future.")
    if start < now_ms - WEEK_MS:
        raise ApiError(400, "DCS.4030", "Only slow logs of the last 7 days can be queried.")
    sort_key = request.query.get("sort_key", "start_time")
    sort_dir = request.query.get("sort_dir", "desc")
    if sort_key not in ("start_time", "duration"):
        raise invalid("sort_key")
    if sort_dir not in ("desc", "asc"):
        raise invalid("sort_dir")
    offset = int_param(request.query, "offset", 0, 0)
    limit = int_param(request.query, "limit", 10, 1, MAX_LIMIT)
    entries = slowlog_query(
        state.config.seed,
        inst,
        per_day=state.config.slowlog_per_day,
        start_ms=start,
        end_ms=end,
        now_ms=now_ms,
    )
    entries.sort(
        key=lambda e: (e.start_ms, e.id) if sort_key == "start_time" else (e.duration_ms, e.id),
        reverse=sort_dir == "desc",
    )
    page = [e.as_json() for e in entries[offset : offset + limit]]
    return json_response({"total_num": len(entries), "count": len(page), "slowlogs": page})


def add_dcs_routes(app: web.Application) -> None:
    base = "/v2/{project_id}/instances"
    app.router.add_get(base, list_instances, allow_head=False)
    app.router.add_get(base + "/{instance_id}", show_instance, allow_head=False)
    app.router.add_get("/v2/{project_id}/instance/{instance_id}/groups", list_groups, allow_head=False)
    app.router.add_post(base + "/{instance_id}/redislog", collect_runlogs)
    app.router.add_get(base + "/{instance_id}/redislog", list_runlogs, allow_head=False)
    app.router.add_post(base + "/{instance_id}/redislog/{log_id}/links", create_link)
    app.router.add_get(base + "/{instance_id}/slowlog", slowlog, allow_head=False)
