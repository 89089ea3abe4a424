"""The IAM token flow (contract section 5.1): log in, learn a project's id, keep a token fresh.

Password authentication is the one method with a lifecycle: log in with user, password and
domain for a token scoped to one project; DCS paths need that project's id, which a config
may leave to IAM (the token's body names it); the token is shared by every request of its
project, renewed :data:`RENEW_MARGIN` before it expires, and fetched again once after a 401
(IAM may revoke it early).

The user's credentials are bound once, in :class:`Iam`; each call names only the project
scope. No secret is formatted into a string here except the JSON body IAM must receive.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio

from harvester.cloud.api import api_error, malformed, parse_json
from harvester.cloud.auth import TOKEN_HEADER
from harvester.cloud.transport import Transport
from harvester.cloud.wire import iso_datetime, text
from harvester.errors import ApiError
from harvester.models import Clock, Secret, utcnow

TOKEN_LIFETIME = timedelta(hours=24)  # documented; assumed when IAM's answer does not say
RENEW_MARGIN = timedelta(minutes=10)

LoginFn = Callable[[], Awaitable[tuple[Secret, datetime]]]


@dataclass(frozen=True, slots=True)
class IamUser:
    """Who logs in: the password-auth credentials, gathered once."""

    username: str
    password: Secret  # prints as Secret('***')
    domain: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What one login returned."""

    token: Secret
    expires_at: datetime
    project_id: str  # as IAM's body names it; "" when it did not


class Iam:
    """One IAM endpoint and the user who logs in there."""

    def __init__(self, transport: Transport, endpoint: str, user: IamUser, *, clock: Clock = utcnow) -> None:
        self._transport = transport
        self._url = tokens_url(endpoint)
        self._user = user
        self._clock = clock

    def __repr__(self) -> str:
        return f"Iam({self._url!r}, user={self._user.username!r})"

    async def issue(self, *, project_id: str | None = None, project_name: str | None = None) -> IssuedToken:
        """A token scoped to one project, by id or (the id unknown) by name."""
        if not project_id and not project_name:
            raise ValueError("an IAM token needs a project scope: give project_id or project_name")
        project = {"id": project_id} if project_id else {"name": project_name}  # the id is unambiguous
        user = self._user
        payload = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": user.username,
                            "password": user.password.reveal(),
                            "domain": {"name": user.domain},
                        }
                    },
                },
                "scope": {"project": project},
            }
        }
        what = f"IAM login of user {user.username!r}"
        before = self._clock()
        resp = await self._transport.send(
            "POST",
            self._url,
            headers={"Content-Type": "application/json;charset=utf8"},
            body=json.dumps(payload).encode(),
            what=what,
        )
        if resp.status not in (200, 201):
            raise api_error(resp.status, resp.body, resp.headers, what=what)
        token = resp.headers.get("X-Subject-Token")
        if not token:
            raise malformed("IAM answered without X-Subject-Token", what=what)
        try:
            body = parse_json(resp.status, resp.body, what=what)
        except ApiError:
            body = None  # the token is in the header; an unreadable body only costs its details
        details = _dict(_dict(body).get("token"))
        expires_at = iso_datetime(details.get("expires_at")) or before + TOKEN_LIFETIME
        return IssuedToken(Secret(token), expires_at, text(_dict(details.get("project")).get("id")))

    async def project_id(self, project_name: str) -> str:
        """The id of a project named in the config: DCS paths need it, IAM's token body has it."""
        issued = await self.issue(project_name=project_name)
        if not issued.project_id:
            raise malformed("IAM token has no project id", what=f"resolve project {project_name!r}")
        return issued.project_id

    def login(self, *, project_id: str | None = None, project_name: str | None = None) -> LoginFn:
        """A zero-argument login for one project's :class:`TokenProvider`."""

        async def login() -> tuple[Secret, datetime]:
            issued = await self.issue(project_id=project_id, project_name=project_name)
            return issued.token, issued.expires_at

        return login


def tokens_url(endpoint: str) -> str:
    """``{iam}/auth/tokens``, tolerating an endpoint given with or without ``/v3``."""
    base = endpoint.rstrip("/")
    if not urlsplit(base).path:
        base += "/v3"
    return f"{base}/auth/tokens"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


class TokenProvider:
    """An IAM token shared by every request of one project: one login, renewed before it expires.

    Single-flight: concurrent callers that find no valid token wait on one lock, and only the
    first performs the login; the others find the fresh token when they get the lock.
    """

    def __init__(
        self, login: LoginFn, *, clock: Clock = utcnow, renew_margin: timedelta = RENEW_MARGIN
    ) -> None:
        self._login = login
        self._clock = clock
        self._margin = renew_margin
        self._token: Secret | None = None
        self._expires_at: datetime | None = None
        self._lock = anyio.Lock()
        self.logins = 0  # how many times IAM was asked; tests and the run summary read it

    def __repr__(self) -> str:
        state = "valid" if self._fresh() else "empty"
        return f"TokenProvider({state}, expires_at={self._expires_at!r})"

    @property
    def expires_at(self) -> datetime | None:
        return self._expires_at

    def _fresh(self) -> bool:
        return (
            self._token is not None
            and self._expires_at is not None
            and self._expires_at - self._clock() > self._margin
        )

    async def token(self) -> Secret:
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():
                token, expires_at = await self._login()
                if expires_at.tzinfo is None:
                    expires_at = expires_at.replace(tzinfo=UTC)
                self._token, self._expires_at = token, expires_at
                self.logins += 1
            assert self._token is not None
            return self._token

    def invalidate(self, rejected: Secret | None = None) -> None:
        """Forget the token, unless ``rejected`` names an older one that was already replaced."""
        if rejected is None or rejected == self._token:
            self._token = None
            self._expires_at = None


class PasswordAuth:
    """IAM password authentication through a :class:`TokenProvider`."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    @classmethod
    def from_login(cls, login: LoginFn, *, clock: Clock = utcnow) -> PasswordAuth:
        return cls(TokenProvider(login, clock=clock))

    def __repr__(self) -> str:
        return f"PasswordAuth({self.provider!r})"

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        token = await self.provider.token()
        return {TOKEN_HEADER: token.reveal()}

    async def refresh_after_401(self, rejected: Mapping[str, str] | None = None) -> bool:
        sent = None
        if rejected is not None:
            value = next((v for k, v in rejected.items() if k.lower() == TOKEN_HEADER.lower()), None)
            sent = Secret(value) if value is not None else None
        self.provider.invalidate(sent)
        return True
