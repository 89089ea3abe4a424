"""What ``harvester validate`` prints: the settings a config resolved to, never a secret.

Derived from the schema: every section is walked field by field and each value is shown with
the field's ``description``, so a new setting appears here without touching this module. Two
parts are resolved rather than read, and say so in their own words: the credentials (where
each was looked for, and whether it is set) and the projects (endpoints and what is harvested).
"""

from __future__ import annotations

from pydantic import BaseModel

from harvester.config.credentials import SECRET_FIELDS
from harvester.config.schema import ConfigFile, Credentials, DiscoverSettings, ProjectSettings, Settings

_COMMENT_COLUMN = 40  # where descriptions start, as in config/example.yaml


def describe(settings: Settings, *, emulator: str | None = None) -> str:
    """The resolved config, section by section; ``emulator`` is the emulator's own account of
    its block (the client keeps that block opaque)."""
    lines = [f"config: {settings.config_path}"]
    for name in ConfigFile.model_fields:
        if name == "auth":
            lines += _credentials(settings.credentials)
        elif name == "projects":
            lines += _projects(settings)
        elif name == "emulator":
            if settings.emulator is not None:
                given = ", ".join(f"{k} {v}" for k, v in settings.emulator.items()) or "its defaults"
                lines.append(f"emulator: {emulator or given}")
        else:
            lines += _section(name, getattr(settings, name))
    return "\n".join(lines)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


def _section(name: str, section: BaseModel) -> list[str]:
    lines = [f"{name}:"]
    for field, info in type(section).model_fields.items():
        text = f"  {field}: {_value(getattr(section, field))}"
        if info.description:
            text = f"{text.ljust(_COMMENT_COLUMN - 1)} # {info.description}"
        lines.append(text)
    return lines


def _credentials(c: Credentials) -> list[str]:
    source = "the environment" if c.source == "env" else c.source
    lines = [f"auth: {c.method} (credentials from {source})"]
    for name, origin in c.origins:
        label = name.replace("_", " ")
        value = getattr(c, name)
        if name in SECRET_FIELDS or value is None:
            lines.append(f"  {label}: from {origin} ({'set' if value else 'not set'})")
        else:
            lines.append(f"  {label}: {value} (from {origin})")
    return lines


def _projects(settings: Settings) -> list[str]:
    if not settings.projects and settings.emulator is not None:
        return ["projects: the emulator's, once it runs"]
    lines = [f"projects: {len(settings.projects)}"]
    for p in settings.projects:
        lines += _project(p)
    return lines


def _project(p: ProjectSettings) -> list[str]:
    scope = f"project id {p.project_id}" if p.project_id else f"project name {p.project_name}"
    lines = [f"  {p.name}: region {p.region}, {scope}", f"    dcs {p.dcs_endpoint}, iam {p.iam_endpoint}"]
    if p.instances is not None:
        lines.append(f"    instances ({len(p.instances)}): {', '.join(str(r) for r in p.instances)}")
    else:
        d = p.discover or DiscoverSettings()
        filters = [f"tags {d.tags_query}"] if d.tags else []
        filters += [f"name {d.name!r}"] if d.name else []
        lines.append(
            f"    instances: every instance{' matching ' + ' and '.join(filters) if filters else ''}"
        )
    return lines
