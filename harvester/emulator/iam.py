"""IAM token issue (``POST /v3/auth/tokens``) and the token store DCS calls check against."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .clock import Clock
from .counters import Counters
from .errors import json_response
from .fleet import Fleet, Project


@dataclass(slots=True)
class Token:
    value: str
    project_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class TokenStore:
    """Tokens by value. Revocation can be immediate or scheduled on the emulator clock."""

    clock: Clock
    lifetime: float
    tokens: dict[str, Token] = field(default_factory=dict)
    _scheduled: list[float] = field(default_factory=list)

    def issue(self, project_id: str) -> Token:
        now = self.clock.now()
        token = Token("MIIE" + secrets.token_urlsafe(96), project_id, now, now + self.lifetime)
        self.tokens[token.value] = token
        return token

    def revoke_all(self, at: float | None = None) -> None:
        """Now, or at emulator time ``at``: every token issued before that moment stops working."""
        if at is None:
            for token in self.tokens.values():
                token.revoked = True
        else:
            self._scheduled.append(at)

    def lookup(self, value: str) -> Token | None:
        token = self.tokens.get(value)
        if token is None:
            return None
        now = self.clock.now()
        if any(token.issued_at < at <= now for at in self._scheduled):
            token.revoked = True
        return token


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iam_error(status: int, code: str, message: str) -> web.Response:
    title = {400: "Bad Request", 401: "Unauthorized"}.get(status, "Error")
    body = {
        "error_code": code,
        "error_msg": message,
        "error_ext_msg": None,
        "error": {"code": status, "title": title, "message": message},
    }
    return json_response(body, status=status)


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _scope(fleet: Fleet, body: Any) -> Project | None:
    project = _dig(body, "auth", "scope", "project")
    if not isinstance(project, dict):
        return None
    if isinstance(project.get("id"), str):
        return fleet.project(project["id"])
    if isinstance(project.get("name"), str):
        return fleet.project_by_name(project["name"])
    return None


async def issue_token(
    request: web.Request,
    *,
    fleet: Fleet,
    tokens: TokenStore,
    counters: Counters,
    username: str,
    password: str,
    domain: str,
) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _iam_error(400, "IAM.0003", "The request body is not valid JSON.")
    identity = _dig(body, "auth", "identity")
    methods = _dig(identity, "methods")
    user = _dig(identity, "password", "user")
    if not isinstance(methods, list) or "password" not in methods or not isinstance(user, dict):
        return _iam_error(400, "IAM.0003", "Only the password method is supported.")
    if (user.get("name"), user.get("password"), _dig(user, "domain", "name")) != (username, password, domain):
        return _iam_error(401, "IAM.0011", "The username or password is wrong.")
    project = _scope(fleet, body)
    if project is None:
        return _iam_error(401, "IAM.0011", "The project in the scope does not exist or is not accessible.")
    token = tokens.issue(project.project_id)
    counters.tokens_issued += 1
    domain_ref = {"id": "0" * 24 + "d0a1n", "name": domain}
    payload = {
        "token": {
            "expires_at": iso_z(token.expires_at),
            "issued_at": iso_z(token.issued_at),
            "methods": ["password"],
            "project": {"id": project.project_id, "name": project.name, "domain": domain_ref},
            "user": {"id": "0" * 28 + "u5er", "name": username, "domain": domain_ref},
            "roles": [{"id": "0" * 32, "name": "te_admin"}],
            "catalog": [],
        }
    }
    response = json_response(payload, status=201)
    response.headers["X-Subject-Token"] = token.value
    return response
