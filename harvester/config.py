"""YAML configuration -> validated, frozen settings, before any network call is made.

Validation happens in private pydantic models so that every rule lives next to its field; what
leaves this module are plain frozen dataclasses, so no other module depends on pydantic.

Every problem becomes one :class:`~harvester.errors.ConfigError` line that starts with the file
name and the key path (``config.yaml: projects[1].instances[3]: unknown key 'nmae'``), because
the user's next step is always "open the file at that key". Messages never echo a value found
under ``auth`` (only ``auth.method``), and secrets written literally in the file are refused
outright: credentials come from the environment or from ``clouds.yaml`` only.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Self, cast, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from harvester.errors import ConfigError
from harvester.models import Secret

AuthMethod = Literal["aksk", "password", "token"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("aksk", "password", "token")

#: Regions whose endpoints we can derive; anything else needs explicit ``endpoints``.
OTC_REGIONS = ("eu-ch2", "eu-de", "eu-nl")

#: OpenStack's conventional variable for each credential (contract section 5.3).
DEFAULT_ENV = {
    "access_key": "OS_ACCESS_KEY",
    "secret_key": "OS_SECRET_KEY",
    "username": "OS_USERNAME",
    "password": "OS_PASSWORD",
    "domain": "OS_USER_DOMAIN_NAME",
    "token": "OS_AUTH_TOKEN",
}
_NEEDED: dict[str, tuple[str, ...]] = {
    "aksk": ("access_key", "secret_key"),
    "password": ("username", "password", "domain"),
    "token": ("token",),
}
_SECRET_FIELDS = frozenset({"access_key", "secret_key", "password", "token"})
# Keys a user might write under ``auth`` to put a secret in the file -> the credential it means.
_LITERAL_SECRET_KEYS = {
    "password": "password",
    "secret_key": "secret_key",
    "sk": "secret_key",
    "access_key": "access_key",
    "ak": "access_key",
    "token": "token",
    "auth_token": "token",
}
# clouds.yaml ``auth`` keys for each credential, first match wins.
_CLOUDS_KEYS = {
    "access_key": ("ak", "access_key"),
    "secret_key": ("sk", "secret_key"),
    "username": ("username",),
    "password": ("password",),
    "domain": ("user_domain_name", "domain_name"),
    "token": ("token",),
}

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_REGION_RE = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+")
_PROJECT_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOUD_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_SEGMENT_RE = re.compile(r"[_.-]+")
MAX_NAME_LENGTH = 64  # longer than any variable or clouds.yaml entry name a person types

#: Hostile-input bounds, checked before (size) and while (depth, nodes) the YAML is parsed.
MAX_CONFIG_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64  # the schema is 5 levels deep; anything near this is not a config
MAX_NODES = 1_000_000  # after alias expansion: a billion-laughs file stops here
_HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    root: Path  # absolute: a relative value in the file is taken from the file's folder


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Resolved credentials; a field is ``None`` when not needed or (``validate``) not available."""

    method: AuthMethod
    access_key: Secret | None = None
    secret_key: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    domain: str | None = None
    token: Secret | None = None
    source: str = "env"  # "env", "clouds.yaml:<cloud>", "emulator"
    # (credential field, where it comes from) e.g. ("secret_key", "$OS_SECRET_KEY"), so that
    # `validate` can say where each credential was looked for without ever showing it.
    origins: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """One instance the config names explicitly: by id or by name, never both."""

    id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.id is None) == (self.name is None):
            raise ValueError("InstanceRef needs exactly one of id or name")

    def __str__(self) -> str:
        return f"id {self.id}" if self.id is not None else f"name {self.name!r}"


@dataclass(frozen=True, slots=True)
class DiscoverSettings:
    """Take every instance matching these filters; no filter at all means every instance."""

    tags: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs: hashable and frozen
    name: str | None = None

    @property
    def tags_query(self) -> str:
        """The DCS list filter syntax ``k=v,k2=v2`` (empty when no tag filter)."""
        return ",".join(f"{k}={v}" for k, v in self.tags)


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """One project to harvest; exactly one of ``instances`` and ``discover`` is set."""

    name: str  # the label used in archive paths
    region: str
    project_id: str | None
    project_name: str | None
    dcs_endpoint: str
    iam_endpoint: str
    instances: tuple[InstanceRef, ...] | None = None
    discover: DiscoverSettings | None = None


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    api_concurrency: int = 16
    per_instance_concurrency: int = 4
    download_concurrency: int = 8
    requests_per_second: float = 20.0
    retry_attempts: int = 6
    retry_timeout: float = 120.0
    throttle_attempts: int = 20
    relink_attempts: int = 3
    download_attempts: int = 4


@dataclass(frozen=True, slots=True)
class CollectSettings:
    enabled: bool = True
    days: int | None = None  # None: catch up automatically; else a DCS query_time (0, 1, 3, 7)
    wait_timeout: float = 600.0
    poll_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    allowed_hosts: tuple[str, ...] = ()  # see host_allowed() for the matching rule
    chunk_size: int = 1048576
    expiry_margin: float = 30.0  # clock skew allowance; see plan.link_still_usable
    stall_timeout: float = 60.0
    connect_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    instances: int = 6
    projects: int = 1
    seed: int = 42
    log_size: int = 65536
    collect_delay: float = 0.2
    fault_rate: float = 0.0
    latency_ms: float = 0.0
    link_ttl: float = 86400.0


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: Path
    archive: ArchiveSettings
    auth: AuthSettings
    projects: tuple[ProjectSettings, ...]
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    emulator: EmulatorSettings | None = None


# --------------------------------------------------------------------------- helpers


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether a download link's host is trusted.

    An entry allows itself and its subdomains (OBS serves buckets as ``bucket.obs.<region>...``),
    compared case-insensitively on whole labels: ``evilobs.eu-de.otc.t-systems.com`` does not
    match ``obs.eu-de.otc.t-systems.com``. IP address entries match only exactly.
    """
    h = host.strip().lower().rstrip(".")
    if not h:
        return False
    for entry in allowed:
        e = entry.strip().lower().rstrip(".").removeprefix("*.").lstrip(".")
        if not e:
            continue
        if h == e:
            return True
        if not _is_ip(e) and h.endswith("." + e):
            return True
    return False


def default_endpoints(region: str) -> tuple[str, str]:
    """The (DCS, IAM) endpoints of an OTC region; eu-ch2 lives under ``sc.`` (contract section 1)."""
    if region == "eu-ch2":
        return "https://dcs.eu-ch2.sc.otc.t-systems.com", "https://iam-pub.eu-ch2.sc.otc.t-systems.com/v3"
    return f"https://dcs.{region}.otc.t-systems.com", f"https://iam.{region}.otc.t-systems.com/v3"


def default_obs_host(region: str, dcs_endpoint: str) -> str:
    """OBS sits next to DCS (``dcs.X`` -> ``obs.X``), which also covers Huawei Cloud endpoints."""
    host = (urlsplit(dcs_endpoint).hostname or "").lower()
    if host.startswith("dcs."):
        return "obs." + host.removeprefix("dcs.")
    if region == "eu-ch2":
        return "obs.eu-ch2.sc.otc.t-systems.com"
    return f"obs.{region}.otc.t-systems.com"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Plain http is acceptable only to this machine (the emulator)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def looks_like_secret(text: str) -> bool:
    """Whether a value meant to be a *name* looks like a credential pasted in its place.

    Names people give variables and clouds.yaml entries are short words joined by ``_``, ``.``
    or ``-`` (``OS_SECRET_KEY``, ``otc-prod``). Keys and passwords are long runs without a
    separator that mix digits into letters (an OTC AK is 20 upper-case letters and digits, an
    SK 40 mixed-case ones) or mix cases and digits in one short word (``Summer2024``).
    """
    if len(text) > MAX_NAME_LENGTH:
        return True
    for segment in _SEGMENT_RE.split(text):
        digits = any(c.isdigit() for c in segment)
        if len(segment) >= 24 or (len(segment) >= 16 and digits):
            return True
        if (
            len(segment) >= 8
            and digits
            and any(c.islower() for c in segment)
            and any(c.isupper() for c in segment)
        ):
            return True
    return False


def plausible_env_name(text: str) -> bool:
    return bool(_ENV_NAME_RE.fullmatch(text)) and not looks_like_secret(text)


def plausible_cloud_name(text: str) -> bool:
    return bool(_CLOUD_NAME_RE.fullmatch(text)) and not looks_like_secret(text)


class _Problem(Exception):
    """One validation failure at a key path; load_config prefixes the file name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


def _show(value: object) -> str:
    """A short, safe rendering of an offending scalar for "(got ...)"; containers are elided."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return "null" if value is None else repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --------------------------------------------------------------------------- raw (pydantic) models
#
# Fields defaulting to _UNSET are read back with ``model_dump(exclude_unset=True)`` only: the
# dataclasses above are the single place where defaults are written down.

_UNSET: Any = None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class _Archive(_Model):
    root: str | None = None

    @field_validator("root")
    @classmethod
    def _root(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\0" in v):
            raise ValueError("must be a non-empty path")
        return v


class _Auth(_Model):
    # No message below ever includes the value: whatever sits under ``auth`` may be a secret
    # that the user put in the wrong key.
    method: str | None = None
    cloud: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    domain_env: str | None = None
    token_env: str | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str | None) -> str | None:
        if v is not None and v not in AUTH_METHODS:
            raise ValueError(f"must be one of {', '.join(AUTH_METHODS)}")
        return v

    @field_validator("cloud")
    @classmethod
    def _cloud(cls, v: str | None) -> str | None:
        if v is not None and not plausible_cloud_name(v):
            raise ValueError(
                "must be the NAME of a clouds.yaml entry (letters, digits, '_', '.', '-'; at most "
                f"{MAX_NAME_LENGTH} characters, not a key or password); the value is not shown"
            )
        return v

    @field_validator(
        "access_key_env", "secret_key_env", "username_env", "password_env", "domain_env", "token_env"
    )
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not plausible_env_name(v):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, underscore; at most "
                f"{MAX_NAME_LENGTH} characters), not its value; the value is not shown"
            )
        return v


def _check_url(v: str | None) -> str | None:
    if v is None:
        return None
    parts = urlsplit(v.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"must be an http(s) URL (got {_show(v)})")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"must use https (plain http only for a local emulator) (got {_show(v)})")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not contain a query string, fragment or user info")
    return v.strip().rstrip("/")


class _Endpoints(_Model):
    dcs: str | None = None
    iam: str | None = None

    check_urls = field_validator("dcs", "iam")(_check_url)


class _InstanceItem(_Model):
    id: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: object) -> object:
        if isinstance(data, str):
            return {"id": data} if _UUID_RE.fullmatch(data.strip()) else {"name": data}
        if not isinstance(data, dict):
            raise ValueError(
                f"must be an instance id or name, or a mapping with 'id' or 'name' (got {_show(data)})"
            )
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _UUID_RE.fullmatch(v.strip()):
            raise ValueError(f"must be an instance id (a UUID) (got {_show(v)})")
        return None if v is None else v.strip().lower()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.id is None) == (self.name is None):
            raise ValueError("give exactly one of 'id' or 'name'")
        return self


class _Discover(_Model):
    tags: dict[str, str] = Field(default_factory=dict)
    name: str | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: object) -> object:
        return {} if v is None else v


class _Project(_Model):
    name: str
    region: str
    project_id: str | None = None
    project_name: str | None = None
    endpoints: _Endpoints | None = None
    instances: list[_InstanceItem] | None = None
    discover: _Discover | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_discover(cls, data: object) -> object:
        # `discover:` with nothing under it reads as null in YAML: it means "discover everything".
        if isinstance(data, dict) and "discover" in data and data["discover"] is None:
            return {**data, "discover": {}}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v) or v in (".", ".."):
            raise ValueError(
                f"must be a safe folder name of letters, digits, '.', '_' and '-' (got {_show(v)})"
            )
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not _REGION_RE.fullmatch(v):
            raise ValueError(f"must be a region name like eu-de (got {_show(v)})")
        return v

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, v: str | None) -> str | None:
        if v is not None and not _PROJECT_ID_RE.fullmatch(v):
            raise ValueError(f"must be 32 hexadecimal characters (got {_show(v)})")
        return None if v is None else v.lower()

    @field_validator("instances")
    @classmethod
    def _instances(cls, v: list[_InstanceItem] | None) -> list[_InstanceItem] | None:
        if v is not None and not v:
            raise ValueError("must not be empty (omit it to harvest every instance of the project)")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Self:
        if (self.project_id is None) == (self.project_name is None):
            raise ValueError("give exactly one of project_id or project_name")
        if self.instances is not None and self.discover is not None:
            raise ValueError("give either instances or discover, not both")
        return self


class _Limits(_Model):
    api_concurrency: int = Field(default=_UNSET, ge=1)
    per_instance_concurrency: int = Field(default=_UNSET, ge=1)
    download_concurrency: int = Field(default=_UNSET, ge=1)
    requests_per_second: float = Field(default=_UNSET, gt=0)
    retry_attempts: int = Field(default=_UNSET, ge=1)
    retry_timeout: float = Field(default=_UNSET, gt=0)
    throttle_attempts: int = Field(default=_UNSET, ge=1)
    relink_attempts: int = Field(default=_UNSET, ge=1)
    download_attempts: int = Field(default=_UNSET, ge=1)


class _Collect(_Model):
    enabled: bool = Field(default=_UNSET)
    days: int | None = None
    wait_timeout: float = Field(default=_UNSET, gt=0)
    poll_interval: float = Field(default=_UNSET, gt=0)

    @field_validator("days")
    @classmethod
    def _days(cls, v: int | None) -> int | None:
        if v is not None and v not in (0, 1, 3, 7):
            raise ValueError(f"must be one of 0, 1, 3, 7, or null for automatic catch-up (got {v})")
        return v


class _Download(_Model):
    allowed_hosts: list[str] | None = None
    chunk_size: int = Field(default=_UNSET, ge=64 * 1024, le=64 * 1024 * 1024)
    expiry_margin: float = Field(
        default=_UNSET, ge=0, lt=86400
    )  # links live 24 h: a bigger margin never fits
    stall_timeout: float = Field(default=_UNSET, gt=0)
    connect_timeout: float = Field(default=_UNSET, gt=0)


class _Emulator(_Model):
    instances: int = Field(default=_UNSET, ge=1)
    projects: int = Field(default=_UNSET, ge=1)
    seed: int = Field(default=_UNSET)
    log_size: int = Field(default=_UNSET, ge=0)
    collect_delay: float = Field(default=_UNSET, ge=0)
    fault_rate: float = Field(default=_UNSET, ge=0, le=1)
    latency_ms: float = Field(default=_UNSET, ge=0)
    link_ttl: float = Field(default=_UNSET, gt=0)


class _Root(_Model):
    archive: _Archive | None = None
    auth: _Auth | None = None
    projects: list[_Project] | None = None
    limits: _Limits = _Limits()
    collect: _Collect = _Collect()
    download: _Download = _Download()
    emulator: _Emulator | None = None


_SECTIONS = ("archive", "auth", "limits", "collect", "download", "emulator")


# --------------------------------------------------------------------------- pydantic error -> one line

_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (a key)"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``loc`` (list indexes are skipped)."""
    model: type[BaseModel] = _Root
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        found = _model_in(info.annotation)
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _unknown_key(loc: Sequence[int | str]) -> str:
    """``unknown key 'nmae' (did you mean 'name'?)``; a key that looks like a secret is not shown."""
    parent = loc[:-1]
    key = str(loc[-1])
    where = f"{_key_path(parent)}: unknown key" if parent else "unknown top-level key"
    if not plausible_cloud_name(key):
        return f"{where} (not shown: it looks like a secret, not a setting)"
    model = _model_at(parent)
    allowed = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"{where} {key!r} (did you mean {close[0]!r}?)"
    if allowed:
        return f"{where} {key!r} (expected one of: {', '.join(allowed)})"
    return f"{where} {key!r}"


def _one_line(err: ErrorDetails) -> str:
    loc = list(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    # A value under auth might be a secret the user put in the wrong key: never echo it.
    safe_to_show = not (loc and loc[0] == "auth")
    got = f" (got {_show(err.get('input'))})" if safe_to_show else ""
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    path = _key_path(loc) or "(top level)"
    if kind == "missing":
        return f"{path}: field required"
    if kind in ("value_error", "assertion_error"):
        return f"{path}: {ctx.get('error', err['msg'])}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        limit = f"{limit:g}" if isinstance(limit, float) else limit
        return f"{path}: must be {_BOUNDS[kind]} {limit}{got}"
    if kind in _TYPE_WORDS:
        return f"{path}: {_TYPE_WORDS[kind]}{got}"
    return f"{path}: {err['msg'][:1].lower()}{err['msg'][1:]}"


# --------------------------------------------------------------------------- YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys and nesting deeper than :data:`MAX_DEPTH`.

    PyYAML composes nodes recursively, so a file of ten thousand ``[`` would otherwise end in
    a RecursionError; counting the depth here turns it into one config error line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Problem("", f"nested more than {MAX_DEPTH} levels deep at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            shown = repr(str(key)) if plausible_cloud_name(str(key)) else "(not shown)"
            mark = key_node.start_mark
            raise _Problem(
                "", f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: duplicate key {shown}"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand beyond :data:`MAX_NODES` or :data:`MAX_DEPTH`.

    Aliases make the node graph a DAG: ten anchors that each repeat the previous one ten times
    are a few lines of YAML and ten billion values once anything walks them (validation does).
    Sizes and depths are computed once per node, bottom-up and without recursion, so this costs
    time linear in the file, and a self-referencing anchor is refused as well.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            visiting.discard(key)
            if size[key] > MAX_NODES:
                raise _Problem("", f"aliases expand to more than {MAX_NODES} values (an alias bomb?)")
            if depth[key] > MAX_DEPTH:
                raise _Problem("", f"aliases nest values more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in visiting:
            raise _Problem("", f"an anchor refers to itself at line {node.start_mark.line + 1}")
        visiting.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in visiting:
                raise _Problem("", f"an anchor refers to itself at line {child.start_mark.line + 1}")
            if id(child) not in size:
                stack.append((child, False))


def _parse_yaml(text: str) -> object:
    """Parse YAML, reporting errors by position only: the offending line may hold a secret."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _unquote(exc.problem or exc.context or "syntax error")
        raise _Problem("", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError:
        raise _Problem("", "invalid YAML") from None
    except RecursionError:  # a last line of defence; the depth checks above should come first
        raise _Problem("", "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


_QUOTED = re.compile(r"'([^']*)'")


def _unquote(problem: str) -> str:
    """PyYAML quotes what it choked on: a password starting with ``*`` or ``!`` is an "undefined
    alias" or an unknown "tag" and would be echoed. Keep single characters and ``<token>``
    names (``found character '\\t'``, ``got '<stream end>'``), hide anything longer."""

    def keep(m: re.Match[str]) -> str:
        text = m.group(1)
        return m.group(0) if len(text) <= 2 or (text.startswith("<") and text.endswith(">")) else "'...'"

    return _QUOTED.sub(keep, problem)


def _read_text(path: Path) -> str:
    """The file's text, refusing anything over :data:`MAX_CONFIG_BYTES` before parsing it.

    The size is checked on the open file and the read is bounded too, so a FIFO or a device
    named as the config cannot make us read forever.
    """
    limit = MAX_CONFIG_BYTES
    too_big = f"the file is larger than {limit // (1024 * 1024)} MiB; that is not a config"
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                raise _Problem("", too_big)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _Problem("", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _Problem("", too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Problem("", "cannot read: not UTF-8 text") from None


# --------------------------------------------------------------------------- load_config


def load_config(
    path: Path, env: Mapping[str, str] | None = None, *, require_credentials: bool = True
) -> Settings:
    """Read, validate and resolve a config file; the only failure is one ConfigError line.

    ``env`` stands in for ``os.environ`` (tests pass a plain dict). With
    ``require_credentials=False`` missing credentials are left as ``None`` so that
    ``harvester validate`` can check a file on a machine that has no keys.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    raw: object = None
    try:
        raw = _parse_yaml(_read_text(path))
        return _build(raw, path, environ, require_credentials)
    except _Problem as problem:
        message = f"{path.name}: {problem}"
    except RecursionError:  # pydantic or our own walk, should a structure slip past the bounds
        message = f"{path.name}: the configuration is nested too deeply"
    raise ConfigError(_mask_auth_values(message, raw)) from None


def _mask_auth_values(message: str, raw: object) -> str:
    """Defence in depth: no string found under ``auth`` that could be a secret leaves in a message.

    The validators already never quote such values; this catches a message that would (a
    future rule, a library's wording). Plausible names (``OS_SECRET_KEY``) and the method stay
    readable, because they are what the user has to fix.
    """
    auth = raw.get("auth") if isinstance(raw, dict) else None
    if not isinstance(auth, dict):
        return message
    found: list[str] = []
    pending: list[object] = [auth]
    budget = 100_000  # aliases can make the tree big; the parse bounds it, this bounds us
    while pending and budget > 0:
        budget -= 1
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif item is not None and not isinstance(item, bool):
            text = str(item)
            if len(text) >= 4 and text not in AUTH_METHODS and not plausible_cloud_name(text):
                found.append(text)
    for text in sorted(found, key=len, reverse=True):
        message = message.replace(text, "***")
    return message


def _build(raw: object, path: Path, env: Mapping[str, str], require_credentials: bool) -> Settings:
    if raw is None:
        raise _Problem("", "the file is empty")
    if not isinstance(raw, dict):
        raise _Problem("", f"the top level must be a mapping of sections (got {_show(raw)})")
    # An empty section (`emulator:` with nothing under it) reads as null: it means "all defaults".
    data = {k: ({} if k in _SECTIONS and v is None else v) for k, v in raw.items()}
    _refuse_literal_secrets(data.get("auth"))
    emulated = data.get("emulator") is not None
    try:
        root = _Root.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise _Problem("", _one_line(errors[0]) + more) from None

    base = path.absolute().parent
    archive = _archive(root.archive, base, env, emulated)
    if root.projects is None and not emulated:
        raise _Problem("projects", "field required")
    if root.projects is not None and not root.projects:
        raise _Problem("projects", "must list at least one project")

    if emulated and root.auth is None:
        auth, auth_url = AuthSettings(method="aksk", source="emulator"), None
    else:
        auth, auth_url = _resolve_auth(root.auth or _Auth(), env, require_credentials and not emulated)
    projects = _projects(root.projects or [], auth_url)
    if auth.method != "password" and not emulated:
        for i, project in enumerate(projects):
            if project.project_id is None:
                raise _Problem(
                    f"projects[{i}].project_name",
                    "only auth.method password can resolve a project name (IAM's token names the id); "
                    "set project_id",
                )
    download = _download(root.download, projects, emulated)
    return Settings(
        config_path=path.absolute(),
        archive=archive,
        auth=auth,
        projects=projects,
        limits=LimitsSettings(**root.limits.model_dump(exclude_unset=True)),
        collect=CollectSettings(**root.collect.model_dump(exclude_unset=True)),
        download=download,
        emulator=EmulatorSettings(**root.emulator.model_dump(exclude_unset=True)) if root.emulator else None,
    )


def _refuse_literal_secrets(auth: object) -> None:
    if not isinstance(auth, dict):
        return
    for key in auth:
        if key in _LITERAL_SECRET_KEYS:
            cred = _LITERAL_SECRET_KEYS[key]
            named = auth.get(f"{cred}_env")
            var = named if isinstance(named, str) and plausible_env_name(named) else DEFAULT_ENV[cred]
            raise _Problem(
                f"auth.{key}",
                "secrets must not be written in the config file; put it in the environment variable "
                f"{var} (or set auth.{cred}_env) or in clouds.yaml",
            )


def _expand_home(text: str, env: Mapping[str, str]) -> Path:
    if text == "~" or text.startswith("~/"):
        home = env.get("HOME")
        return (Path(home) if home else Path.home()) / text[2:]
    return Path(text)


def _archive(raw: _Archive | None, base: Path, env: Mapping[str, str], emulated: bool) -> ArchiveSettings:
    text = raw.root if raw is not None else None
    if text is None:
        if not emulated:
            raise _Problem("archive.root", "field required")
        text = "./demo-archive"
    root = _expand_home(text.strip(), env)
    if not root.is_absolute():
        root = base / root
    return ArchiveSettings(root=Path(os.path.normpath(root)))


def _projects(raw: Sequence[_Project], auth_url: str | None) -> tuple[ProjectSettings, ...]:
    seen: dict[str, int] = {}
    out: list[ProjectSettings] = []
    for i, p in enumerate(raw):
        where = f"projects[{i}]"
        if p.name in seen:
            raise _Problem(
                f"{where}.name", f"duplicate project name {p.name!r} (also projects[{seen[p.name]}])"
            )
        seen[p.name] = i
        explicit = p.endpoints or _Endpoints()
        if p.region not in OTC_REGIONS and (
            explicit.dcs is None or (explicit.iam is None and auth_url is None)
        ):
            raise _Problem(
                f"{where}.region",
                f"{p.region!r} is not an OTC region I know ({', '.join(OTC_REGIONS)}); "
                f"for another cloud set {where}.endpoints.dcs and .iam",
            )
        dcs_default, iam_default = default_endpoints(p.region)
        instances: tuple[InstanceRef, ...] | None = None
        discover: DiscoverSettings | None = None
        if p.instances is not None:
            instances = _instance_refs(p.instances, where)
        else:
            d = p.discover or _Discover()
            discover = DiscoverSettings(tags=tuple(sorted(d.tags.items())), name=d.name)
        out.append(
            ProjectSettings(
                name=p.name,
                region=p.region,
                project_id=p.project_id,
                project_name=p.project_name,
                dcs_endpoint=explicit.dcs or dcs_default,
                iam_endpoint=explicit.iam or auth_url or iam_default,
                instances=instances,
                discover=discover,
            )
        )
    return tuple(out)


def _instance_refs(items: Sequence[_InstanceItem], where: str) -> tuple[InstanceRef, ...]:
    first: dict[InstanceRef, int] = {}  # a dict, not a list scan: 10,000 ids must stay linear
    for j, item in enumerate(items):
        ref = InstanceRef(id=item.id, name=item.name)
        if ref in first:
            raise _Problem(f"{where}.instances[{j}]", f"duplicate of {where}.instances[{first[ref]}]")
        first[ref] = j
    return tuple(first)


def _download(raw: _Download, projects: Sequence[ProjectSettings], emulated: bool) -> DownloadSettings:
    if raw.allowed_hosts is None:
        hosts = tuple(dict.fromkeys(default_obs_host(p.region, p.dcs_endpoint) for p in projects))
    else:
        if not raw.allowed_hosts and not emulated:
            raise _Problem(
                "download.allowed_hosts", "must not be empty (omit it to allow the OBS hosts of your regions)"
            )
        hosts = tuple(_host_entry(h, i) for i, h in enumerate(raw.allowed_hosts))
    values = raw.model_dump(exclude_unset=True)
    values["allowed_hosts"] = hosts
    return DownloadSettings(**values)


def _host_entry(text: str, i: int) -> str:
    entry = text.strip().lower().rstrip(".").removeprefix("*.").lstrip(".")
    if not (_HOST_RE.fullmatch(entry) or _is_ip(entry)):
        raise _Problem(
            f"download.allowed_hosts[{i}]",
            "must be a host name like obs.eu-de.otc.t-systems.com, without scheme, port or path "
            f"(got {_show(text)})",
        )
    return entry


# --------------------------------------------------------------------------- credentials


def _resolve_auth(raw: _Auth, env: Mapping[str, str], require: bool) -> tuple[AuthSettings, str | None]:
    """Resolve credentials from clouds.yaml (``auth.cloud``) or from environment variables."""
    env_keys = {name: getattr(raw, f"{name}_env") for name in DEFAULT_ENV}
    if raw.cloud is not None:
        for name, value in env_keys.items():
            if value is not None:
                raise _Problem(
                    f"auth.{name}_env", "is not used with auth.cloud (credentials come from clouds.yaml)"
                )
        return _from_clouds(raw.cloud, cast(AuthMethod | None, raw.method), env, require)

    method = cast(AuthMethod, raw.method or "aksk")
    for name, value in env_keys.items():
        if value is not None and name not in _NEEDED[method]:
            raise _Problem(f"auth.{name}_env", f"is not used with auth.method {method}")
    values: dict[str, Any] = {}
    origins: list[tuple[str, str]] = []
    for name in _NEEDED[method]:
        var = env_keys[name] or DEFAULT_ENV[name]
        origins.append((name, f"${var}"))
        text = env.get(var)
        if not text:
            if require:
                state = "is empty" if text == "" else "is not set"
                raise _Problem("auth", f"environment variable {var} {state} (auth.method is {method})")
            continue
        values[name] = Secret(text) if name in _SECRET_FIELDS else text
    return AuthSettings(method=method, source="env", origins=tuple(origins), **values), None


def missing_credentials(auth: AuthSettings) -> list[str]:
    """The credentials ``auth.method`` needs that are not set, each with where it was looked for.

    ``validate`` loads a config without requiring credentials; ``validate --check`` uses this to
    say which ones a run would miss, naming the variable or clouds.yaml entry, never a value.
    """
    origins = dict(auth.origins)
    return [
        f"{name.replace('_', ' ')} ({origins.get(name, auth.source)})"
        for name in _NEEDED[auth.method]
        if getattr(auth, name) is None
    ]


def _clouds_candidates(env: Mapping[str, str]) -> list[Path]:
    """openstacksdk's search order; the first file that exists is the only one read."""
    home = env.get("HOME")
    candidates = [
        Path.cwd() / "clouds.yaml",
        (Path(home) if home else Path.home()) / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]
    explicit = env.get("OS_CLIENT_CONFIG_FILE")
    return [Path(explicit), *candidates] if explicit else candidates


def _from_clouds(
    cloud: str, method: AuthMethod | None, env: Mapping[str, str], require: bool
) -> tuple[AuthSettings, str | None]:
    explicit = env.get("OS_CLIENT_CONFIG_FILE")
    if explicit and not Path(explicit).is_file():
        raise _Problem("auth.cloud", f"OS_CLIENT_CONFIG_FILE names {explicit}, which is not a readable file")
    found = next((p for p in _clouds_candidates(env) if p.is_file()), None)
    if found is None:
        if not require:
            return AuthSettings(method=method or "aksk", source=f"clouds.yaml:{cloud}"), None
        searched = ", ".join(str(p) for p in _clouds_candidates(env))
        raise _Problem("auth.cloud", f"no clouds.yaml found (searched {searched})")
    try:
        doc = _parse_yaml(_read_text(found))
    except _Problem as problem:
        raise _Problem("auth.cloud", f"{found}: {problem}") from None
    clouds = doc.get("clouds") if isinstance(doc, dict) else None
    entry = clouds.get(cloud) if isinstance(clouds, dict) else None
    if not isinstance(entry, dict):
        known = ", ".join(sorted(str(k) for k in clouds)) if isinstance(clouds, dict) else "none"
        raise _Problem("auth.cloud", f"cloud {cloud!r} not found in {found} (clouds there: {known})")
    auth = entry.get("auth")
    auth = auth if isinstance(auth, dict) else {}

    def lookup(name: str) -> str | None:
        for key in _CLOUDS_KEYS[name]:
            value = auth.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    if method is None:
        if lookup("access_key") and lookup("secret_key"):
            method = "aksk"
        elif lookup("token"):
            method = "token"
        else:
            method = "password"
    values: dict[str, Any] = {}
    origins: list[tuple[str, str]] = []
    for name in _NEEDED[method]:
        origins.append((name, f"clouds.yaml:{cloud} ({found})"))
        text = lookup(name)
        if text is None:
            if require:
                raise _Problem(
                    "auth.cloud",
                    f"clouds.yaml entry {cloud!r} in {found} has no auth.{_CLOUDS_KEYS[name][0]} "
                    f"(auth.method is {method})",
                )
            continue
        values[name] = Secret(text) if name in _SECRET_FIELDS else text
    auth_url = auth.get("auth_url")
    iam: str | None = None
    if isinstance(auth_url, str) and auth_url.strip():
        try:
            iam = _check_url(auth_url)
        except ValueError:
            raise _Problem(
                "auth.cloud",
                f"clouds.yaml entry {cloud!r}: auth_url must be an https URL without user info or query "
                "(plain http only for a local emulator)",
            ) from None
        if iam is not None and urlsplit(iam).path in ("", "/"):
            iam += "/v3"
    settings = AuthSettings(method=method, source=f"clouds.yaml:{cloud}", origins=tuple(origins), **values)
    return settings, iam


# --------------------------------------------------------------------------- emulator


def apply_emulator(settings: Settings, info: Mapping[str, Any]) -> Settings:
    """Point the settings at a running emulator, using what it published once bound.

    One project per emulated project id (``emulated``, ``emulated-2``...), discovering every
    instance: they replace any configured projects, whose ids and names do not exist there.
    The emulator's host is added to ``download.allowed_hosts`` because its OBS links point there.
    """

    def need(key: str) -> str:
        value = info.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"emulator: its ready info lacks {key!r}")
        return value

    dcs, iam = need("dcs_endpoint").rstrip("/"), need("iam_endpoint").rstrip("/")
    ids_raw = info.get("project_ids") or [need("project_id")]
    ids = [str(i) for i in ids_raw]
    projects = tuple(
        ProjectSettings(
            name="emulated" if i == 0 else f"emulated-{i + 1}",
            region="eu-de",
            project_id=project_id,
            project_name=None,
            dcs_endpoint=dcs,
            iam_endpoint=iam,
            discover=DiscoverSettings(),
        )
        for i, project_id in enumerate(ids)
    )
    password = info.get("password")
    auth = AuthSettings(
        method="aksk",
        access_key=Secret(need("access_key")),
        secret_key=Secret(need("secret_key")),
        username=info.get("username"),
        password=Secret(password) if isinstance(password, str) and password else None,
        domain=info.get("domain"),
        source="emulator",
        origins=(("access_key", "emulator"), ("secret_key", "emulator")),
    )
    host = (urlsplit(dcs).hostname or "").lower()
    hosts = settings.download.allowed_hosts
    if host and not host_allowed(host, hosts):
        hosts = (*hosts, host)
    return replace(
        settings,
        auth=auth,
        projects=projects,
        download=replace(settings.download, allowed_hosts=hosts),
    )


# --------------------------------------------------------------------------- describe


def _seconds(value: float) -> str:
    return f"{value:g} s" if not math.isinf(value) else "unlimited"


def describe(settings: Settings) -> str:
    """What the config resolved to, for ``harvester validate``; names where secrets are, never them."""
    a = settings.auth
    lines = [f"config: {settings.config_path}", f"archive: {settings.archive.root}"]
    source = "the environment" if a.source == "env" else a.source
    lines.append(f"auth: {a.method} (credentials from {source})")
    for name, origin in a.origins:
        label = name.replace("_", " ")
        value = getattr(a, name)
        if name in _SECRET_FIELDS or value is None:
            lines.append(f"  {label}: from {origin} ({'set' if value else 'not set'})")
        else:
            lines.append(f"  {label}: {value} (from {origin})")
    if not settings.projects and settings.emulator is not None:
        lines.append("projects: the emulator's, once it runs")
    else:
        lines.append(f"projects: {len(settings.projects)}")
    for p in settings.projects:
        scope = (
            f"project id {p.project_id}"
            if p.project_id
            else f"project name {p.project_name or '(from emulator)'}"
        )
        lines.append(f"  {p.name}: region {p.region}, {scope}")
        lines.append(f"    dcs {p.dcs_endpoint}, iam {p.iam_endpoint}")
        if p.instances is not None:
            lines.append(f"    instances ({len(p.instances)}): {', '.join(str(r) for r in p.instances)}")
        else:
            d = p.discover or DiscoverSettings()
            filters = [f"tags {d.tags_query}"] if d.tags else []
            filters += [f"name {d.name!r}"] if d.name else []
            lines.append(
                f"    instances: every instance{' matching ' + ' and '.join(filters) if filters else ''}"
            )
    lim = settings.limits
    lines.append(
        f"limits: {lim.api_concurrency} API calls at once ({lim.per_instance_concurrency} per instance), "
        f"{lim.download_concurrency} downloads at once, {lim.requests_per_second:g} requests/s; "
        f"{lim.retry_attempts} attempts within {_seconds(lim.retry_timeout)}, "
        f"{lim.throttle_attempts} throttled attempts, {lim.relink_attempts} relinks, "
        f"{lim.download_attempts} download attempts"
    )
    c = settings.collect
    if not c.enabled:
        lines.append("collect: off (only files already collected are downloaded)")
    else:
        days = "automatic catch-up" if c.days is None else f"query_time {c.days}"
        lines.append(
            f"collect: {days}, wait up to {_seconds(c.wait_timeout)}, poll every {_seconds(c.poll_interval)}"
        )
    dl = settings.download
    lines.append(
        f"download: hosts {', '.join(dl.allowed_hosts) or '(none yet)'} and their subdomains; "
        f"chunks {dl.chunk_size} bytes, renew links {_seconds(dl.expiry_margin)} before expiry, "
        f"stall {_seconds(dl.stall_timeout)}, connect {_seconds(dl.connect_timeout)}"
    )
    if settings.emulator is not None:
        e = settings.emulator
        lines.append(
            f"emulator: {e.projects} project(s) x {e.instances} instances, seed {e.seed}, "
            f"logs {e.log_size} bytes, collect delay {_seconds(e.collect_delay)}, "
            f"fault rate {e.fault_rate:g}, "
            f"latency {e.latency_ms:g} ms, links live {_seconds(e.link_ttl)}"
        )
    return "\n".join(lines)
