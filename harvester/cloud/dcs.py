"""The DCS v2 API: one typed method per call, wire JSON in, :mod:`harvester.models` records out.

This is where the API's JSON becomes our records, once: :class:`~harvester.models.Instance`,
:class:`~harvester.models.Group` (of :class:`~harvester.models.Replica`), and
:class:`~harvester.models.LogFile` attached to the replica that owns it. Nothing past this
module reads a field of the API's JSON.

Every HTTP request, including every page of a listing, goes through the engine's
:class:`RequestRunner`, so rate limiting and retries apply per request and a failure on
page 7 repeats page 7, not the whole listing. No retry policy lives here.

The parsers are deliberately forgiving (contract section 1 and 3.1, :mod:`.wire`): unknown
fields are ignored, numbers are accepted where strings are documented and vice versa, ``{}``
stands for null, and an unknown run-log ``status`` is kept as it is for the planner to judge.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import structlog

from harvester import plan
from harvester.cloud.api import JsonApi, malformed
from harvester.cloud.auth import Authenticator
from harvester.cloud.transport import Transport
from harvester.cloud.wire import integer, text, timestamp
from harvester.models import (
    QUERY_TIMES,
    ArchiveKey,
    Clock,
    Group,
    Instance,
    LogFile,
    Replica,
    SignedLink,
    SignedUrl,
    Target,
    utcnow,
)

T = TypeVar("T")

MAX_LIMIT = 1000  # the API's ceiling for ``limit``
_MAX_PAGES_WITHOUT_TOTAL = 10_000

_log = structlog.get_logger("harvester.dcs")


class RequestRunner(Protocol):
    """Runs one HTTP request with the engine's rate limit, retry and concurrency around it."""

    async def __call__(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T: ...


async def run_directly(fn: Callable[[], Awaitable[T]], *, what: str) -> T:
    """The runner when none is given: one attempt, no limits (tests, one-off calls)."""
    return await fn()


# --------------------------------------------------------------------------------------------
# Wire JSON -> our records (contract sections 3 and 4), once


_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def _day(value: Any, file_name: str) -> date | None:
    """The day a file covers: ``time`` (``yyyy-MM-dd``, maybe with a time part), else the file name."""
    for candidate in (text(value), file_name):
        match = _DAY_IN_NAME.search(candidate)
        if match:
            try:
                return date.fromisoformat(match.group(1))
            except ValueError:
                continue
    return None


def _tags(value: Any) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if isinstance(value, list):
        for tag in value:
            if isinstance(tag, dict) and text(tag.get("key")):
                pairs.append((text(tag.get("key")), text(tag.get("value"))))
    elif isinstance(value, dict):
        pairs.extend((text(k), text(v)) for k, v in value.items())
    return tuple(sorted(pairs))


def _freeze(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(data))


def parse_instance(data: Mapping[str, Any]) -> Instance:
    return Instance(
        instance_id=text(data.get("instance_id")),
        name=text(data.get("name")),
        status=text(data.get("status")),
        engine_version=text(data.get("engine_version")),
        engine=text(data.get("engine")),
        cache_mode=text(data.get("cache_mode")),
        ip=text(data.get("ip")),
        port=integer(data.get("port")),
        tags=_tags(data.get("tags")),
        created_at=timestamp(data.get("created_at")),
        raw=_freeze(data),
    )


def parse_group(data: Mapping[str, Any], target: Target) -> Group:
    """A shard and its replicas, each a :class:`Replica` of ``target``."""
    group_name = text(data.get("group_name"))
    replicas = tuple(
        Replica(
            target,
            group_name,
            text(r.get("replication_ip")),
            text(r.get("replication_id")),
            text(r.get("replication_role")) or text(r.get("role")),
        )
        for r in _dicts(data.get("replication_list"))
    )
    return Group(
        group_id=text(data.get("group_id")), group_name=group_name, replicas=replicas, raw=_freeze(data)
    )


def parse_runlog(data: Mapping[str, Any], target: Target, replicas: Sequence[Replica]) -> LogFile | None:
    """A listed run-log file of ``target``, attached to the replica that owns it.

    The item's own group and IP name the file (and its archive key); the owner among
    ``replicas`` adds its replication id and role. None for an item that cannot be used at
    all (no id or no recognisable day). An unknown ``status`` is kept for the planner to judge.
    """
    log_id = text(data.get("id")) or text(data.get("backup_id"))
    file_name = text(data.get("file_name"))
    day = _day(data.get("time"), file_name)
    if not log_id or day is None:
        return None
    group_name, ip = text(data.get("group_name")), text(data.get("replication_ip"))
    key = ArchiveKey(target.project_id, target.instance_id, group_name, ip, day)
    owner = next((r for r in replicas if r.owns(key)), None)
    replica = Replica(
        target,
        group_name,
        ip,
        owner.replication_id if owner is not None else None,
        owner.role if owner is not None else "",
    )
    return LogFile(replica, log_id, file_name, day, text(data.get("status")))


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _unique(items: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """Drop repeats a misbehaving pager may produce, keeping the first occurrence."""
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------
# The client


class DcsClient:
    """DCS calls of one project; stateless apart from its configuration."""

    def __init__(
        self,
        transport: Transport,
        *,
        endpoint: str,
        project_id: str,
        auth: Authenticator,
        runner: RequestRunner | None = None,
        page_size: int = MAX_LIMIT,
        now: Clock = utcnow,
    ) -> None:
        self._api = JsonApi(transport, auth)
        self._base = f"{endpoint.rstrip('/')}/v2/{quote(project_id, safe='')}"
        self._project_id = project_id
        self._runner: RequestRunner = runner if runner is not None else run_directly
        self._page_size = max(1, min(MAX_LIMIT, page_size))
        self._now = now

    def __repr__(self) -> str:
        return f"DcsClient({self._base!r})"

    @property
    def project_id(self) -> str:
        return self._project_id

    def _instance_url(self, instance_id: str, suffix: str = "", *, singular: bool = False) -> str:
        collection = "instance" if singular else "instances"
        return f"{self._base}/{collection}/{quote(instance_id, safe='')}{suffix}"

    async def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        what: str,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        fn = functools.partial(self._api.call, method, url, params=params, what=what, ok=ok)
        return await self._runner(fn, what=what)

    async def _object(self, method: str, url: str, *, what: str) -> Mapping[str, Any]:
        _, body = await self._call(method, url, what=what)
        if not isinstance(body, dict):
            raise malformed("expected a JSON object", what=what)
        return body

    async def _pages(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        what: str,
        list_key: str,
        total_key: str,
        limit: int,
        ok: tuple[int, ...] = (200,),
    ) -> list[Mapping[str, Any]]:
        """Every item of an offset/limit listing.

        Stops at ``total``, at a short or empty page, or after as many pages as ``total``
        allows, so a server that repeats a page cannot keep us looping.
        """
        items: list[Mapping[str, Any]] = []
        offset = 0
        pages = 0
        while True:
            page_params = {**params, "offset": str(offset), "limit": str(limit)}
            page_what = what if offset == 0 else f"{what} (offset {offset})"
            _, body = await self._call("GET", url, params=page_params, what=page_what, ok=ok)
            if body is None:  # 204: nothing (more) to list
                break
            if not isinstance(body, dict):
                raise malformed("expected a JSON object", what=page_what)
            page = list(_dicts(body.get(list_key)))
            total = integer(body.get(total_key))
            items.extend(page)
            pages += 1
            if len(page) < limit:
                break
            if total is not None and len(items) >= total:  # full pages only, so also "pages >= total pages"
                break
            if total is None and pages >= _MAX_PAGES_WITHOUT_TOTAL:
                break
            offset += len(page)
        return items

    # ---------------------------------------------------------------- instances

    async def list_instances(
        self,
        *,
        name: str | None = None,
        name_equal: bool = False,
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        instance_id: str | None = None,
    ) -> list[Instance]:
        params: dict[str, str] = {}
        if name:
            params["name"] = name
            if name_equal:
                params["name_equal"] = "true"
        if tags:
            params["tags"] = ",".join(f"{k}={v}" for k, v in tags.items())
        if status:
            params["status"] = status
        if instance_id:
            params["instance_id"] = instance_id
        raw = await self._pages(
            f"{self._base}/instances",
            params,
            what=self._list_instances_what,
            list_key="instances",
            total_key="instance_num",
            limit=self._page_size,
        )
        parsed = [parse_instance(r) for r in raw]
        return _unique([i for i in parsed if i.instance_id], key=lambda i: i.instance_id)

    async def count_instances(self) -> int | None:
        """How many instances the project has, from one single-item page (the cheapest call)."""
        _, body = await self._call(
            "GET",
            f"{self._base}/instances",
            params={"offset": "0", "limit": "1"},
            what=self._list_instances_what,
        )
        return integer(body.get("instance_num")) if isinstance(body, dict) else None

    @property
    def _list_instances_what(self) -> str:
        return f"list instances of project {self._project_id}"

    async def show_instance(self, instance_id: str) -> Instance:
        what = f"show instance {instance_id}"
        body = await self._object("GET", self._instance_url(instance_id), what=what)
        return parse_instance(body)

    async def list_groups(self, target: Target) -> list[Group]:
        """The shards of ``target`` and their replicas (not for single-node instances)."""
        instance_id = target.instance_id
        what = f"list shards of instance {instance_id}"
        body = await self._object("GET", self._instance_url(instance_id, "/groups", singular=True), what=what)
        return [parse_group(g, target) for g in _dicts(body.get("group_list"))]

    # ---------------------------------------------------------------- run logs

    async def collect_runlogs(self, instance_id: str, *, query_time: int, replication_id: str | None) -> None:
        """Ask DCS to produce run-log files; they appear in the listing later (no job id exists)."""
        if query_time not in QUERY_TIMES:
            raise ValueError(f"query_time must be one of {QUERY_TIMES}, not {query_time!r}")
        params = {"log_type": "run", "query_time": str(query_time)}
        if replication_id:
            params["replication_id"] = replication_id
        target = f"replica {replication_id}" if replication_id else "the node"
        what = f"collect run logs of instance {instance_id} from {target} ({query_time} days)"
        await self._call(
            "POST", self._instance_url(instance_id, "/redislog"), params=params, what=what, ok=(200, 202, 204)
        )

    async def list_runlogs(self, target: Target, replicas: Sequence[Replica]) -> list[LogFile]:
        """The run-log files DCS lists for ``target``, each attached to its owner among ``replicas``."""
        instance_id = target.instance_id
        what = f"list run logs of instance {instance_id}"
        raw = await self._pages(
            self._instance_url(instance_id, "/redislog"),
            {"log_type": "run"},
            what=what,
            list_key="file_list",
            total_key="total_num",
            limit=self._page_size,
            ok=(200, 204),
        )
        files: list[LogFile] = []
        for data in raw:
            lf = parse_runlog(data, target, replicas)
            if lf is None:
                _log.warning("dcs.runlog_item_ignored", instance_id=instance_id, fields=sorted(data))
                continue
            files.append(lf)
        return _unique(files, key=lambda lf: lf.log_id)

    async def create_link(self, instance_id: str, log_id: str) -> SignedLink:
        what = f"get download link for run log {log_id} of instance {instance_id}"
        url = self._instance_url(instance_id, f"/redislog/{quote(log_id, safe='')}/links")
        body = await self._object("POST", url, what=what)
        link = text(body.get("link"))
        if not link.lower().startswith(("https://", "http://")):
            raise malformed("answer carries no usable link", what=what)
        obtained = self._now()
        return SignedLink(
            url=SignedUrl(link), expires_at=plan.link_expires_at(link, obtained), obtained_at=obtained
        )

    # ---------------------------------------------------------------- slow log

    async def slowlogs(
        self, instance_id: str, *, start: datetime, end: datetime, page_size: int = 100
    ) -> list[dict[str, Any]]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        params = {
            "start_time": str(int(start.timestamp() * 1000)),
            "end_time": str(int(end.timestamp() * 1000)),
        }
        raw = await self._pages(
            self._instance_url(instance_id, "/slowlog"),
            params,
            what=f"list slow log of instance {instance_id}",
            list_key="slowlogs",
            total_key="total_num",
            limit=max(1, min(MAX_LIMIT, page_size)),
            ok=(200, 204),
        )
        return [dict(r) for r in raw]
