"""A YAML config file -> :class:`~harvester.config.schema.Settings`, before any network call.

Every problem becomes one :class:`~harvester.errors.ConfigError` line that starts with the file
name and the key path (``config.yaml: projects[1].instances[3]: unknown key 'nmae'``), because
the user's next step is always "open the file at that key". Messages never echo a value found
under ``auth`` (only ``auth.method``), and secrets written literally in the file are refused
outright: credentials come from the environment or from ``clouds.yaml`` only.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from harvester.config import credentials
from harvester.config.regions import OTC_REGIONS, default_obs_host
from harvester.config.safetext import plausible_cloud_name, show
from harvester.config.schema import ConfigFile, Credentials, Endpoints, InstanceRef, ProjectSettings, Settings
from harvester.config.yamlfile import Problem, parse_yaml, read_text
from harvester.errors import ConfigError

#: Sections whose ``key:`` with nothing under it (null in YAML) means "all defaults".
_SECTIONS = tuple(name for name in ConfigFile.model_fields if name != "projects")


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
        raw = parse_yaml(read_text(path))
        return _build(raw, path, environ, require_credentials)
    except Problem as problem:
        message = f"{path.name}: {problem}"
    except RecursionError:  # pydantic or our own walk, should a structure slip past the bounds
        message = f"{path.name}: the configuration is nested too deeply"
    raise ConfigError(_mask_auth_values(message, raw)) from None


def _build(raw: object, path: Path, env: Mapping[str, str], require_credentials: bool) -> Settings:
    if raw is None:
        raise Problem("", "the file is empty")
    if not isinstance(raw, dict):
        raise Problem("", f"the top level must be a mapping of sections (got {show(raw)})")
    data = {k: ({} if k in _SECTIONS and v is None else v) for k, v in raw.items()}
    if "projects" in data and data["projects"] is None:  # `projects:` with nothing under it
        del data["projects"]
    credentials.refuse_literal_secrets(data.get("auth"))
    try:
        file = ConfigFile.model_validate(data, context={"base": path.absolute().parent, "env": env})
    except ValidationError as exc:
        # A misspelt key usually explains a missing one (`archve:`): unknown keys first, then
        # wrong values, then what is absent.
        rank = {"extra_forbidden": 0, "missing": 2}
        errors = sorted(exc.errors(include_url=False), key=lambda e: rank.get(e["type"], 1))
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise Problem("", _one_line(errors[0]) + more) from None
    if not file.projects and "projects" in data:
        raise Problem("projects", "must list at least one project")

    emulated = file.emulator is not None
    if emulated and "auth" not in data:
        found, auth_url = Credentials(method="aksk", source="emulator"), None
    else:
        found, auth_url = credentials.resolve(file.auth, env, require_credentials and not emulated)
    projects = _projects(file.projects, auth_url)
    if found.method != "password" and not emulated:
        for i, project in enumerate(projects):
            if project.project_id is None:
                raise Problem(
                    f"projects[{i}].project_name",
                    "only auth.method password can resolve a project name (IAM's token names the id); "
                    "set project_id",
                )
    download = file.download
    if "allowed_hosts" not in download.model_fields_set:
        hosts = dict.fromkeys(default_obs_host(p.region, p.dcs_endpoint) for p in projects)
        download = download.model_copy(update={"allowed_hosts": tuple(hosts)})
    elif not download.allowed_hosts and not emulated:
        raise Problem(
            "download.allowed_hosts", "must not be empty (omit it to allow the OBS hosts of your regions)"
        )
    sections: dict[str, Any] = {name: getattr(file, name) for name in ConfigFile.model_fields}
    return Settings(
        **{**sections, "projects": projects, "download": download},
        config_path=path.absolute(),
        credentials=found,
    )


def _projects(projects: Sequence[ProjectSettings], auth_url: str | None) -> tuple[ProjectSettings, ...]:
    """Checks that name a position in the list, and the IAM endpoint a clouds.yaml entry gives."""
    seen: dict[str, int] = {}
    out: list[ProjectSettings] = []
    for i, p in enumerate(projects):
        where = f"projects[{i}]"
        if p.name in seen:
            raise Problem(
                f"{where}.name", f"duplicate project name {p.name!r} (also projects[{seen[p.name]}])"
            )
        seen[p.name] = i
        if p.region not in OTC_REGIONS and (
            p.endpoints.dcs is None or (p.endpoints.iam is None and auth_url is None)
        ):
            raise Problem(
                f"{where}.region",
                f"{p.region!r} is not an OTC region I know ({', '.join(OTC_REGIONS)}); "
                f"for another cloud set {where}.endpoints.dcs and .iam",
            )
        if p.instances is not None:
            _no_duplicates(p.instances, where)
        if p.endpoints.iam is None and auth_url is not None:  # clouds.yaml names the IAM endpoint
            out.append(p.model_copy(update={"endpoints": Endpoints(dcs=p.endpoints.dcs, iam=auth_url)}))
        else:
            out.append(p)
    return tuple(out)


def _no_duplicates(refs: Sequence[InstanceRef], where: str) -> None:
    first: dict[InstanceRef, int] = {}  # a dict, not a list scan: 10,000 ids must stay linear
    for j, ref in enumerate(refs):
        if ref in first:
            raise Problem(f"{where}.instances[{j}]", f"duplicate of {where}.instances[{first[ref]}]")
        first[ref] = j


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
    "tuple_type": "must be a list",
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
    model: type[BaseModel] = ConfigFile
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
    """The pydantic model inside ``X``, ``X | None`` or ``tuple[X, ...]``."""
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
    got = f" (got {show(err.get('input'))})" if safe_to_show else ""
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    path = _key_path(loc) or "(top level)"
    if kind == "missing":
        return f"{path}: field required"
    if kind in ("value_error", "assertion_error"):
        return f"{path}: {ctx.get('error', err['msg'])}"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{path}: must be one of {choices}{got}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        limit = f"{limit:g}" if isinstance(limit, float) else limit
        return f"{path}: must be {_BOUNDS[kind]} {limit}{got}"
    if kind in _TYPE_WORDS:
        return f"{path}: {_TYPE_WORDS[kind]}{got}"
    return f"{path}: {err['msg'][:1].lower()}{err['msg'][1:]}"


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
            if len(text) >= 4 and text not in credentials.AUTH_METHODS and not plausible_cloud_name(text):
                found.append(text)
    for text in sorted(found, key=len, reverse=True):
        message = message.replace(text, "***")
    return message
