"""Settings aimed at a running emulator, from the ready info it publishes once bound.

The emulator is started by its own package (:mod:`harvester.emulator.embedded`), which alone
knows what the config's ``emulator:`` block means; all the client needs is where it listens
and its throw-away credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from harvester.config.regions import host_allowed
from harvester.config.schema import Credentials, DiscoverSettings, Endpoints, ProjectSettings, Settings
from harvester.errors import ConfigError
from harvester.models import Secret


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
    projects = tuple(
        ProjectSettings(
            name="emulated" if i == 0 else f"emulated-{i + 1}",
            region="eu-de",
            project_id=str(project_id),
            endpoints=Endpoints(dcs=dcs, iam=iam),
            discover=DiscoverSettings(),
        )
        for i, project_id in enumerate(ids_raw)
    )
    password = info.get("password")
    credentials = Credentials(
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
    return settings.model_copy(
        update={
            "credentials": credentials,
            "projects": projects,
            "download": settings.download.model_copy(update={"allowed_hosts": hosts}),
        }
    )
