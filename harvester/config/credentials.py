"""Credentials: from the environment or a clouds.yaml entry, never from the config file.

The file's ``auth`` section only says where to look (:class:`AuthSettings`); this module looks
there and returns :class:`Credentials`, whose secrets are :class:`~harvester.models.Secret`.
A secret written literally in the file is refused before anything else is read, pointing at
the variable to use instead. Messages name variables and clouds.yaml entries, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from harvester.config.regions import check_url
from harvester.config.safetext import plausible_env_name
from harvester.config.schema import AuthMethod, AuthSettings, Credentials
from harvester.config.yamlfile import Problem, parse_yaml, read_text
from harvester.models import Secret

AUTH_METHODS: tuple[AuthMethod, ...] = get_args(AuthMethod)

#: The credentials each method needs, in the order they are reported.
NEEDED: dict[AuthMethod, tuple[str, ...]] = {
    "aksk": ("access_key", "secret_key"),
    "password": ("username", "password", "domain"),
    "token": ("token",),
}
SECRET_FIELDS = frozenset({"access_key", "secret_key", "password", "token"})
#: Every credential a variable can be named for: ``access_key`` for ``auth.access_key_env``...
_ALL = tuple(f.removesuffix("_env") for f in AuthSettings.model_fields if f.endswith("_env"))
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


def refuse_literal_secrets(auth: object) -> None:
    """A secret written under ``auth`` in the file: refuse it, naming where it belongs instead."""
    if not isinstance(auth, dict):
        return
    for key in auth:
        if key in _LITERAL_SECRET_KEYS:
            cred = _LITERAL_SECRET_KEYS[key]
            named = auth.get(f"{cred}_env")
            var = named if isinstance(named, str) and plausible_env_name(named) else _default_var(cred)
            raise Problem(
                f"auth.{key}",
                "secrets must not be written in the config file; put it in the environment variable "
                f"{var} (or set auth.{cred}_env) or in clouds.yaml",
            )


def _default_var(credential: str) -> str:
    default: str = AuthSettings.model_fields[f"{credential}_env"].default
    return default


def resolve(auth: AuthSettings, env: Mapping[str, str], require: bool) -> tuple[Credentials, str | None]:
    """Credentials from clouds.yaml (``auth.cloud``) or from environment variables.

    Returns them with the IAM endpoint a clouds.yaml entry names (its ``auth_url``), if any.
    With ``require`` false a missing credential is left ``None`` instead of being an error.
    """
    given = [name for name in _ALL if f"{name}_env" in auth.model_fields_set]
    if auth.cloud is not None:
        for name in given:
            raise Problem(
                f"auth.{name}_env", "is not used with auth.cloud (credentials come from clouds.yaml)"
            )
        return _from_clouds(auth.cloud, auth.method, env, require)

    method: AuthMethod = auth.method or "aksk"
    for name in given:
        if name not in NEEDED[method]:
            raise Problem(f"auth.{name}_env", f"is not used with auth.method {method}")
    values: dict[str, Any] = {}
    origins: list[tuple[str, str]] = []
    for name in NEEDED[method]:
        var = auth.env_name(name)
        origins.append((name, f"${var}"))
        text = env.get(var)
        if not text:
            if require:
                state = "is empty" if text == "" else "is not set"
                raise Problem("auth", f"environment variable {var} {state} (auth.method is {method})")
            continue
        values[name] = Secret(text) if name in SECRET_FIELDS else text
    return Credentials(method=method, source="env", origins=tuple(origins), **values), None


def missing_credentials(credentials: Credentials) -> list[str]:
    """The credentials ``auth.method`` needs that are not set, each with where it was looked for.

    ``validate`` loads a config without requiring credentials; ``validate --check`` uses this to
    say which ones a run would miss, naming the variable or clouds.yaml entry, never a value.
    """
    origins = dict(credentials.origins)
    return [
        f"{name.replace('_', ' ')} ({origins.get(name, credentials.source)})"
        for name in NEEDED[credentials.method]
        if getattr(credentials, name) is None
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
) -> tuple[Credentials, str | None]:
    explicit = env.get("OS_CLIENT_CONFIG_FILE")
    if explicit and not Path(explicit).is_file():
        raise Problem("auth.cloud", f"OS_CLIENT_CONFIG_FILE names {explicit}, which is not a readable file")
    found = next((p for p in _clouds_candidates(env) if p.is_file()), None)
    if found is None:
        if not require:
            return Credentials(method=method or "aksk", source=f"clouds.yaml:{cloud}"), None
        searched = ", ".join(str(p) for p in _clouds_candidates(env))
        raise Problem("auth.cloud", f"no clouds.yaml found (searched {searched})")
    try:
        doc = parse_yaml(read_text(found))
    except Problem as problem:
        raise Problem("auth.cloud", f"{found}: {problem}") from None
    clouds = doc.get("clouds") if isinstance(doc, dict) else None
    entry = clouds.get(cloud) if isinstance(clouds, dict) else None
    if not isinstance(entry, dict):
        known = ", ".join(sorted(str(k) for k in clouds)) if isinstance(clouds, dict) else "none"
        raise Problem("auth.cloud", f"cloud {cloud!r} not found in {found} (clouds there: {known})")
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
    for name in NEEDED[method]:
        origins.append((name, f"clouds.yaml:{cloud} ({found})"))
        text = lookup(name)
        if text is None:
            if require:
                raise Problem(
                    "auth.cloud",
                    f"clouds.yaml entry {cloud!r} in {found} has no auth.{_CLOUDS_KEYS[name][0]} "
                    f"(auth.method is {method})",
                )
            continue
        values[name] = Secret(text) if name in SECRET_FIELDS else text
    credentials = Credentials(method=method, source=f"clouds.yaml:{cloud}", origins=tuple(origins), **values)
    return credentials, _iam_from(auth.get("auth_url"), cloud)


def _iam_from(auth_url: object, cloud: str) -> str | None:
    """A clouds.yaml ``auth_url`` as our IAM endpoint (``/v3`` added to a bare host); never echoed."""
    if not isinstance(auth_url, str) or not auth_url.strip():
        return None
    try:
        iam = check_url(auth_url)
    except ValueError:
        raise Problem(
            "auth.cloud",
            f"clouds.yaml entry {cloud!r}: auth_url must be an https URL without user info or query "
            "(plain http only for a local emulator)",
        ) from None
    if iam is not None and urlsplit(iam).path in ("", "/"):
        iam += "/v3"
    return iam
