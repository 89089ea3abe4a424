"""The config schema, written once: these frozen pydantic models ARE the settings.

:class:`ConfigFile` is what a YAML file may say (its JSON Schema is ``harvester config-schema``);
:class:`Settings` is that plus what loading found out: the file's path and the credentials.
Every rule lives next to its field, and every field says what it does in ``description``, which
``harvester validate`` and editors (through the JSON Schema) show. Messages never echo a value
found under ``auth``: it may be a secret put in the wrong key.

Cross-field checks that must name a list position (duplicate project names, duplicate
instances) and anything that needs the environment (credentials) live in
:mod:`harvester.config.load`, which builds a :class:`Settings`.

Longer than our usual 400 lines on purpose: this is the file format, every key with its type,
bounds, default, description and rules, and splitting it would scatter the one place where the
format is written down.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from harvester.config.regions import check_url, default_endpoints, host_entry
from harvester.config.safetext import MAX_NAME_LENGTH, plausible_cloud_name, plausible_env_name, show
from harvester.models import Secret

AuthMethod = Literal["aksk", "password", "token"]

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_REGION_RE = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+")
_PROJECT_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EMULATED_ARCHIVE = "./demo-archive"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


_T = TypeVar("_T")
#: A YAML list, held as a tuple (hashable, frozen); only the list itself is lax, its items are strict.
YamlList = Annotated[tuple[_T, ...], Strict(False)]


# --------------------------------------------------------------------------- archive


class ArchiveSettings(_Model):
    root: Path = Field(
        description="Folder of the archive: <root>/<YYYY-MM-DD>/<project>/<instance "
        "name>-<id[:8]>/<group>/<file>. A relative path is taken from the folder of the config "
        "file; '~' is your home folder. Required unless `emulator` is set (then ./demo-archive)."
    )

    @field_validator("root", mode="before", json_schema_input_type=str)
    @classmethod
    def _root(cls, v: object, info: ValidationInfo) -> object:
        """Absolute from here on: relative to the config file's folder (``base`` in the context)."""
        if isinstance(v, Path):  # built in Python rather than read from a file
            v = str(v)
        if not isinstance(v, str):
            raise PydanticCustomError("string_type", "Input should be a valid string")
        if not v.strip() or "\0" in v:
            raise ValueError("must be a non-empty path")
        context = info.context if isinstance(info.context, Mapping) else {}
        env: Mapping[str, str] = context.get("env", os.environ)
        text = v.strip()
        if text == "~" or text.startswith("~/"):
            home = env.get("HOME")
            path = (Path(home) if home else Path.home()) / text[2:]
        else:
            path = Path(text)
        if not path.is_absolute():
            path = Path(context.get("base", Path.cwd())) / path
        return Path(os.path.normpath(path))


# --------------------------------------------------------------------------- auth


def _env_name(v: str) -> str:
    if not plausible_env_name(v):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, underscore; at most "
            f"{MAX_NAME_LENGTH} characters), not its value; the value is not shown"
        )
    return v


EnvName = Annotated[str, AfterValidator(_env_name)]


class AuthSettings(_Model):
    """Where credentials come from; never the credentials themselves (they are refused here)."""

    method: AuthMethod | None = Field(
        default=None,
        description="aksk (AK/SK request signing), password (IAM token, renewed) or token (a fixed IAM "
        "token). Default aksk; with `cloud`, whatever the clouds.yaml entry holds.",
    )
    cloud: str | None = Field(
        default=None,
        description="Take the credentials from this clouds.yaml entry instead of the environment "
        "($OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, "
        "/etc/openstack/clouds.yaml); its auth_url becomes the IAM endpoint.",
    )
    access_key_env: EnvName = Field(default="OS_ACCESS_KEY", description="Variable holding the access key.")
    secret_key_env: EnvName = Field(default="OS_SECRET_KEY", description="Variable holding the secret key.")
    username_env: EnvName = Field(
        default="OS_USERNAME", description="Variable holding the IAM user name (method password)."
    )
    password_env: EnvName = Field(
        default="OS_PASSWORD", description="Variable holding the IAM password (method password)."
    )
    domain_env: EnvName = Field(
        default="OS_USER_DOMAIN_NAME",
        description="Variable holding the account (domain) name (method password).",
    )
    token_env: EnvName = Field(
        default="OS_AUTH_TOKEN", description="Variable holding the token (method token)."
    )

    @field_validator("cloud")
    @classmethod
    def _cloud(cls, v: str | None) -> str | None:
        if v is not None and not plausible_cloud_name(v):
            raise ValueError(
                "must be the NAME of a clouds.yaml entry (letters, digits, '_', '.', '-'; at most "
                f"{MAX_NAME_LENGTH} characters, not a key or password); the value is not shown"
            )
        return v

    def env_name(self, credential: str) -> str:
        """The variable ``credential`` (``secret_key``...) is read from."""
        name: str = getattr(self, f"{credential}_env")
        return name


class Credentials(BaseModel):
    """Resolved credentials (not part of the file); a field is ``None`` when not needed or not found."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True)

    method: AuthMethod
    access_key: Secret | None = None
    secret_key: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    domain: str | None = None
    token: Secret | None = None
    source: str = "env"  # "env", "clouds.yaml:<cloud>", "emulator"
    # (credential, where it comes from) e.g. ("secret_key", "$OS_SECRET_KEY"), so that `validate`
    # can say where each credential was looked for without ever showing it.
    origins: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- projects


class Endpoints(_Model):
    dcs: Annotated[str | None, AfterValidator(check_url)] = Field(
        default=None, description="DCS endpoint; default from the region."
    )
    iam: Annotated[str | None, AfterValidator(check_url)] = Field(
        default=None, description="IAM endpoint (.../v3); default from clouds.yaml's auth_url or the region."
    )


class InstanceRef(_Model):
    """One instance the config names explicitly: by id or by name, never both."""

    id: str | None = Field(default=None, description="The instance id (a UUID).")
    name: str | None = Field(default=None, description="The instance name (unique in the project).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: object) -> object:
        if isinstance(data, str):
            return {"id": data} if _UUID_RE.fullmatch(data.strip()) else {"name": data}
        if not isinstance(data, dict):
            raise ValueError(
                f"must be an instance id or name, or a mapping with 'id' or 'name' (got {show(data)})"
            )
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _UUID_RE.fullmatch(v.strip()):
            raise ValueError(f"must be an instance id (a UUID) (got {show(v)})")
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

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """The file may also give a bare string: a UUID is an id, anything else a name."""
        mapping = handler.resolve_ref_schema(handler(schema))
        bare = {"type": "string", "description": "An instance id (a UUID) or name."}
        return {"anyOf": [bare, mapping], "description": "An instance, by id or by name."}

    def __str__(self) -> str:
        return f"id {self.id}" if self.id is not None else f"name {self.name!r}"


def _no_default_shown(schema: dict[str, Any]) -> None:
    """The JSON default of a field whose default is derived or held in another form."""
    schema.pop("default", None)


def _sorted_pairs(value: object, handler: core_schema.ValidatorFunctionWrapHandler) -> object:
    """A mapping (the file) or pairs (Python, the stored form) -> sorted pairs, validated as a mapping."""
    tags = handler(dict(value) if isinstance(value, tuple) else value)
    return tuple(sorted((tags or {}).items()))


#: ``tags`` is a mapping in the file and sorted (key, value) pairs in the settings: hashable, frozen.
Tags = Annotated[
    tuple[tuple[str, str], ...],
    GetPydanticSchema(
        lambda _type, handler: core_schema.no_info_wrap_validator_function(
            _sorted_pairs, handler(dict[str, str] | None)
        )
    ),
]


class DiscoverSettings(_Model):
    """Take every instance matching these filters; no filter at all means every instance."""

    tags: Tags = Field(
        default=(),
        json_schema_extra=_no_default_shown,
        description="Only instances carrying all these tags (key: value).",
    )
    name: str | None = Field(
        default=None, description="Only instances whose name matches this, as the DCS console filters."
    )

    @property
    def tags_query(self) -> str:
        """The DCS list filter syntax ``k=v,k2=v2`` (empty when no tag filter)."""
        return ",".join(f"{k}={v}" for k, v in self.tags)


class ProjectSettings(_Model):
    """One project to harvest; after loading, exactly one of ``instances`` and ``discover`` is set."""

    name: str = Field(description="Label used in archive paths (letters, digits, '.', '_', '-').")
    region: str = Field(description="OTC region: eu-de, eu-nl or eu-ch2; any other needs `endpoints`.")
    project_id: str | None = Field(default=None, description="The project id: 32 hexadecimal characters.")
    project_name: str | None = Field(
        default=None, description="The project name instead of its id (auth.method password only)."
    )
    endpoints: Endpoints = Field(
        default=Endpoints(), description="Set only for a private or non-OTC endpoint."
    )
    instances: YamlList[InstanceRef] | None = Field(
        default=None, description="These instances: ids (UUIDs), names, {id: ...} or {name: ...}."
    )
    discover: DiscoverSettings | None = Field(
        default=None,
        description="Every instance matching these filters; the default when `instances` is not given.",
    )

    @model_validator(mode="before")
    @classmethod
    def _discover_by_default(cls, data: object) -> object:
        """No ``instances``: discover every instance. ``discover:`` with nothing under it reads as
        null in YAML, and means the same."""
        if isinstance(data, dict) and (
            ("discover" in data and data["discover"] is None)
            or ("discover" not in data and data.get("instances") is None)
        ):
            return {**data, "discover": {}}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v) or v in (".", ".."):
            raise ValueError(
                f"must be a safe folder name of letters, digits, '.', '_' and '-' (got {show(v)})"
            )
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not _REGION_RE.fullmatch(v):
            raise ValueError(f"must be a region name like eu-de (got {show(v)})")
        return v

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, v: str | None) -> str | None:
        if v is not None and not _PROJECT_ID_RE.fullmatch(v):
            raise ValueError(f"must be 32 hexadecimal characters (got {show(v)})")
        return None if v is None else v.lower()

    @field_validator("instances")
    @classmethod
    def _instances(cls, v: tuple[InstanceRef, ...] | None) -> tuple[InstanceRef, ...] | None:
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

    @property
    def dcs_endpoint(self) -> str:
        return self.endpoints.dcs or default_endpoints(self.region)[0]

    @property
    def iam_endpoint(self) -> str:
        return self.endpoints.iam or default_endpoints(self.region)[1]


# --------------------------------------------------------------------------- limits, collect, download


class LimitsSettings(_Model):
    """How hard the harvester pushes the API and OBS; each says what it counts and over what."""

    api_concurrency: int = Field(
        default=32,
        ge=1,
        description="DCS API calls in flight at once, all projects and instances together (also the size of "
        "the connection pool DCS and IAM calls share).",
    )
    per_instance_concurrency: int = Field(
        default=4,
        ge=1,
        description="Download-link requests in flight at once for one instance (its other calls count "
        "against api_concurrency only).",
    )
    download_concurrency: int = Field(
        default=16,
        ge=1,
        description="Files downloading at once, all projects and instances together (a file's link is "
        "requested inside its slot).",
    )
    requests_per_second: float = Field(
        default=200.0,
        gt=0,
        description="Highest DCS request rate for EACH project, not overall (one token bucket per project; "
        "retries are paced too). It adapts: a 429 pauses that project for its Retry-After and halves its "
        "rate, which then recovers slowly (by 1/40 of this value a second) back up to it.",
    )
    retry_attempts: int = Field(
        default=6, ge=1, description="Tries of one API call on 5xx answers and connection errors ..."
    )
    retry_timeout: float = Field(
        default=120.0, gt=0, description="... and no retry once this many seconds passed since its first try."
    )
    throttle_attempts: int = Field(
        default=20,
        ge=1,
        description="Tries of one API call answered 429 (each waits its Retry-After; counted apart from "
        "retry_attempts).",
    )
    relink_attempts: int = Field(
        default=3, ge=1, description="Fresh download links for one file after OBS refuses its link (403)."
    )
    download_attempts: int = Field(
        default=4,
        ge=1,
        description="Transfers of one file (refused ones included) before a truncated, stalled or reset one "
        "is given up.",
    )


class CollectSettings(_Model):
    """Asking DCS to produce run-log files (one per replica and day; DCS keeps them 7 days)."""

    enabled: bool = Field(
        default=True, description="false: only download files DCS already lists, never ask for more."
    )
    days: int | None = Field(
        default=None,
        json_schema_extra={"enum": [0, 1, 3, 7, None]},
        description="null: catch up on every day missing from the archive; or pin the DCS query_time: 0 "
        "(today), 1, 3 or 7 days back.",
    )
    wait_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Longest wait, per instance, for its collected files to be listed (seconds); days still "
        "missing then stay pending for the next run.",
    )
    poll_interval: float = Field(
        default=5.0,
        gt=0,
        description="Longest gap in seconds between listings of an instance's run logs while waiting: "
        "the first listing comes 0.5 s after the request, each later gap is 1.5 times the one before, "
        "up to this.",
    )

    @field_validator("days")
    @classmethod
    def _days(cls, v: int | None) -> int | None:
        if v is not None and v not in (0, 1, 3, 7):
            raise ValueError(f"must be one of 0, 1, 3, 7, or null for automatic catch-up (got {v})")
        return v


class DownloadSettings(_Model):
    """Fetching files from the signed OBS links."""

    allowed_hosts: YamlList[Annotated[str, AfterValidator(host_entry)]] = Field(
        default=(),
        json_schema_extra=_no_default_shown,
        description="Hosts download links may point to; each entry also allows its subdomains (bucket "
        "hosts). Omitted: the OBS host of every configured region.",
    )
    chunk_size: int = Field(
        default=1048576,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Read buffer per download connection (64 KiB .. 64 MiB): up to twice this is buffered "
        "before the socket pauses; also the largest decoded piece.",
    )
    expiry_margin: float = Field(
        default=30.0,
        ge=0,
        lt=86400,  # links live 24 h: a bigger margin never fits
        description="Clock-skew allowance (seconds): a link held from an earlier attempt is renewed before "
        "its download when it has less than this plus the transfer time at 1 MiB/s left; a fresh "
        "link is always used at once.",
    )
    stall_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Abort a download that receives nothing for this many seconds, headers included.",
    )
    connect_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to open a connection (TCP and TLS) to any endpoint."
    )


# --------------------------------------------------------------------------- the file, the settings


def _frozen(value: object) -> object:
    """A hashable stand-in for a value read from YAML (the opaque ``emulator`` mapping)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _file_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema says what the loader accepts: an empty section is all defaults, and
    `archive` and `projects` may be left out when `emulator` is given."""
    for name, prop in schema.get("properties", {}).items():
        if name != "projects" and "$ref" in prop:
            prop["anyOf"] = [{"$ref": prop.pop("$ref")}, {"type": "null"}]
            prop.pop("default", None)  # each of its keys shows its own
    needed = [n for n in schema.pop("required", []) if n not in ("archive", "projects")]
    if needed:
        schema["required"] = needed
    schema["if"] = {"required": ["emulator"]}
    schema["else"] = {"required": ["archive", "projects"]}


class ConfigFile(_Model):
    """A harvester config file (YAML). Unknown keys are errors, so a typo never falls back to a default."""

    model_config = ConfigDict(title="dcs-log-harvester configuration", json_schema_extra=_file_schema)

    archive: ArchiveSettings = Field(description="Where the archive lives.")
    auth: AuthSettings = Field(
        default=AuthSettings(), description="Where credentials come from: the environment or clouds.yaml."
    )
    projects: YamlList[ProjectSettings] = Field(description="The projects to harvest.")
    limits: LimitsSettings = Field(
        default=LimitsSettings(), description="How hard the harvester pushes the API and OBS."
    )
    collect: CollectSettings = Field(
        default=CollectSettings(), description="Asking DCS to produce run-log files."
    )
    download: DownloadSettings = Field(
        default=DownloadSettings(), description="How files are fetched from the signed OBS links."
    )
    emulator: dict[str, Any] | None = Field(
        default=None,
        description="Harvest from the built-in emulator instead of a cloud: it replaces `projects` and "
        "`auth`. Its keys belong to the emulator, which checks them when it starts "
        "(harvester/emulator/embedded.py).",
    )

    @model_validator(mode="before")
    @classmethod
    def _emulated(cls, data: object) -> object:
        """With ``emulator:`` the archive defaults to ./demo-archive and projects come from it."""
        if not isinstance(data, dict):
            return data
        if data.get("emulator") is None:
            return {"archive": {}, **data}  # a missing archive is reported as archive.root
        archive = data.get("archive", {})
        if isinstance(archive, dict) and "root" not in archive:
            archive = {**archive, "root": _EMULATED_ARCHIVE}
        return {"projects": (), **data, "archive": archive}

    def __hash__(self) -> int:
        return hash(tuple(_frozen(v) for v in self.__dict__.values()))


class Settings(ConfigFile):
    """A loaded config: the file's sections, resolved, plus where it came from and the credentials."""

    config_path: Path
    credentials: Credentials


def json_schema_text() -> str:
    """The JSON Schema of the config file, as ``harvester config-schema`` prints it."""
    return json.dumps(ConfigFile.model_json_schema(), indent=2) + "\n"
