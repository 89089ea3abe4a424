"""The DCS v2 API: one typed method per call, JSON in, frozen records out.

Every HTTP request, including every page of a listing, goes through the engine's
:class:`RequestRunner`, so rate limiting and retries apply per request and a failure on
page 7 repeats page 7, not the whole listing. No retry policy lives here.

The parsers are deliberately forgiving (contract section 1 and 3.1): unknown fields are
ignored, numbers are accepted where strings are documented and vice versa, ``{}`` stands for
null, and an unknown run-log ``status`` is kept as it is for the planner to judge.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import structlog

from harvester import plan
from harvester.auth import Authenticator
from harvester.errors import ApiError
from harvester.models import SignedLink, SignedUrl, Target
from harvester.transport import MALFORMED_STATUS, Transport

T = TypeVar("T")

MAX_LIMIT = 1000  # the API's ceiling for ``limit``
QUERY_TIMES = (0, 1, 3, 7)
_MAX_PAGES_WITHOUT_TOTAL = 10_000

_log = structlog.get_logger("harvester.dcs")


class RequestRunner(Protocol):
    """Runs one HTTP request with the engine's rate limit, retry and concurrency around it."""

    async def __call__(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T: ...


async def run_directly(fn: Callable[[], Awaitable[T]], *, what: str) -> T:
    """The runner when none is given: one attempt, no limits (tests, one-off calls)."""
    return await fn()


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    instance_id: str
    name: str
    engine: str
    engine_version: str
    status: str
    cache_mode: str  # "" when the listing does not say (only show_instance is sure to)
    ip: str
    port: int | None
    tags: tuple[tuple[str, str], ...]
    created_at: datetime | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)  # as returned, for incident bundles

    def target(self, *, project: str, project_id: str, region: str) -> Target:
        return Target(
            project=project,
            project_id=project_id,
            region=region,
            instance_id=self.instance_id,
            instance_name=self.name,
            cache_mode=self.cache_mode,
            engine_version=self.engine_version,
            status=self.status,
        )


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    replication_id: str
    role: str  # "master" or "slave"
    ip: str
    node_id: str
    status: str


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    group_name: str
    replicas: tuple[ReplicaInfo, ...]
    raw: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RunlogItem:
    id: str
    file_name: str
    group_name: str
    replication_ip: str
    status: str  # "succeed", "failed", or anything else meaning "not ready yet"
    day: date
    backup_id: str


# --------------------------------------------------------------------------------------------
# Tolerant field readers


def _text(value: Any) -> str:
    """A documented string that may arrive as a number, a bool, null or ``{}``."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _datetime(value: Any) -> datetime | None:
    """ISO 8601 (``...Z`` or offset) or epoch seconds/milliseconds; always timezone-aware."""
    number = _int(value)
    if number is not None:
        seconds = number / 1000 if number > 10**11 else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def _day(value: Any, file_name: str) -> date | None:
    """The day a file covers: ``time`` (``yyyy-MM-dd``, maybe with a time part), else the file name."""
    for candidate in (_text(value), file_name):
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
            if isinstance(tag, dict) and _text(tag.get("key")):
                pairs.append((_text(tag.get("key")), _text(tag.get("value"))))
    elif isinstance(value, dict):
        pairs.extend((_text(k), _text(v)) for k, v in value.items())
    return tuple(sorted(pairs))


def _freeze(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(data))


def parse_instance(data: Mapping[str, Any]) -> InstanceInfo:
    return InstanceInfo(
        instance_id=_text(data.get("instance_id")),
        name=_text(data.get("name")),
        engine=_text(data.get("engine")),
        engine_version=_text(data.get("engine_version")),
        status=_text(data.get("status")),
        cache_mode=_text(data.get("cache_mode")),
        ip=_text(data.get("ip")),
        port=_int(data.get("port")),
        tags=_tags(data.get("tags")),
        created_at=_datetime(data.get("created_at")),
        raw=_freeze(data),
    )


def parse_group(data: Mapping[str, Any]) -> GroupInfo:
    replicas = tuple(
        ReplicaInfo(
            replication_id=_text(r.get("replication_id")),
            role=_text(r.get("replication_role")) or _text(r.get("role")),
            ip=_text(r.get("replication_ip")),
            node_id=_text(r.get("node_id")),
            status=_text(r.get("status")),
        )
        for r in _dicts(data.get("replication_list"))
    )
    return GroupInfo(
        group_id=_text(data.get("group_id")),
        group_name=_text(data.get("group_name")),
        replicas=replicas,
        raw=_freeze(data),
    )


def parse_runlog(data: Mapping[str, Any]) -> RunlogItem | None:
    """None for an item that cannot be used at all (no id or no recognisable day)."""
    item_id = _text(data.get("id")) or _text(data.get("backup_id"))
    file_name = _text(data.get("file_name"))
    day = _day(data.get("time"), file_name)
    if not item_id or day is None:
        return None
    return RunlogItem(
        id=item_id,
        file_name=file_name,
        group_name=_text(data.get("group_name")),
        replication_ip=_text(data.get("replication_ip")),
        status=_text(data.get("status")),
        day=day,
        backup_id=_text(data.get("backup_id")) or item_id,
    )


def link_expiry(link: str, obtained_at: datetime) -> datetime:
    """When a link stops working: its ``Expires``, checked for sanity, else obtained + 24 h."""
    return plan.link_expires_at(link, obtained_at)


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._transport = transport
        self._base = f"{endpoint.rstrip('/')}/v2/{quote(project_id, safe='')}"
        self._project_id = project_id
        self._auth = auth
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
        fn = functools.partial(
            self._transport.request_json, method, url, params=params, auth=self._auth, what=what, ok=ok
        )
        return await self._runner(fn, what=what)

    async def _object(self, method: str, url: str, *, what: str) -> Mapping[str, Any]:
        _, body = await self._call(method, url, what=what)
        if not isinstance(body, dict):
            raise ApiError(MALFORMED_STATUS, "", "expected a JSON object", what=what)
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
                raise ApiError(MALFORMED_STATUS, "", "expected a JSON object", what=page_what)
            page = list(_dicts(body.get(list_key)))
            total = _int(body.get(total_key))
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
    ) -> list[InstanceInfo]:
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
            what=f"list instances of project {self._project_id}",
            list_key="instances",
            total_key="instance_num",
            limit=self._page_size,
        )
        parsed = [parse_instance(r) for r in raw]
        return _unique([i for i in parsed if i.instance_id], key=lambda i: i.instance_id)

    async def show_instance(self, instance_id: str) -> InstanceInfo:
        what = f"show instance {instance_id}"
        body = await self._object("GET", self._instance_url(instance_id), what=what)
        return parse_instance(body)

    async def list_groups(self, instance_id: str) -> list[GroupInfo]:
        what = f"list shards of instance {instance_id}"
        body = await self._object("GET", self._instance_url(instance_id, "/groups", singular=True), what=what)
        return [parse_group(g) for g in _dicts(body.get("group_list"))]

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

    async def list_runlogs(self, instance_id: str) -> list[RunlogItem]:
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
        items: list[RunlogItem] = []
        for data in raw:
            item = parse_runlog(data)
            if item is None:
                _log.warning("dcs.runlog_item_ignored", instance_id=instance_id, fields=sorted(data))
                continue
            items.append(item)
        return _unique(items, key=lambda i: i.id)

    async def create_link(self, instance_id: str, log_id: str) -> SignedLink:
        what = f"get download link for run log {log_id} of instance {instance_id}"
        url = self._instance_url(instance_id, f"/redislog/{quote(log_id, safe='')}/links")
        body = await self._object("POST", url, what=what)
        link = _text(body.get("link"))
        if not link.lower().startswith(("https://", "http://")):
            raise ApiError(MALFORMED_STATUS, "", "answer carries no usable link", what=what)
        obtained = self._now()
        return SignedLink(url=SignedUrl(link), expires_at=link_expiry(link, obtained), obtained_at=obtained)

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
