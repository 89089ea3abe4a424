"""The emulator as a running server: app assembly, binding, and the async context manager."""

from __future__ import annotations

import functools
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .clock import Clock
from .config import EmulatorConfig
from .counters import Counters
from .faults import Faults
from .fleet import Fleet
from .iam import issue_token
from .middleware import emulator_middleware
from .obs import OBS_PREFIX, get_object
from .routes import add_dcs_routes
from .runlogs import RunlogItem
from .state import STATE, EmulatorState


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[emulator_middleware])
    app[STATE] = state
    cfg = state.config
    iam = functools.partial(
        issue_token,
        fleet=state.fleet,
        tokens=state.tokens,
        counters=state.counters,
        username=cfg.username,
        password=cfg.password,
        domain=cfg.domain,
    )
    app.router.add_post("/v3/auth/tokens", iam)
    add_dcs_routes(app)
    app.router.add_get(OBS_PREFIX + "/{bucket}/{key:.+}", get_object)
    return app


class Emulator:
    """DCS v2 + IAM + OBS on one loopback port.

    ``async with Emulator(EmulatorConfig(...)) as emu:`` binds (port 0 by default), and
    exposes the endpoints, credentials and the live ``clock``, ``faults``, ``counters``
    and ``fleet`` for tests to drive and inspect.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = config if config is not None else EmulatorConfig()
        for name, value in overrides.items():
            if not hasattr(self.config, name):
                raise TypeError(f"unknown emulator setting: {name}")
            setattr(self.config, name, value)
        self.state = EmulatorState.build(self.config)
        self._runner: web.AppRunner | None = None
        self.host = self.config.host
        self.port = 0

    async def start(self) -> Self:
        runner = web.AppRunner(
            build_app(self.state), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.state.obs_base = self.base_url + OBS_PREFIX
        return self

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def dcs_endpoint(self) -> str:
        return self.base_url

    @property
    def iam_endpoint(self) -> str:
        return self.base_url + "/v3"

    @property
    def obs_base(self) -> str:
        return self.base_url + OBS_PREFIX

    @property
    def project_ids(self) -> list[str]:
        return [p.project_id for p in self.state.fleet.projects]

    @property
    def project_id(self) -> str:
        return self.project_ids[0]

    @property
    def project_names(self) -> list[str]:
        return [p.name for p in self.state.fleet.projects]

    @property
    def access_key(self) -> str:
        return self.config.access_key

    @property
    def secret_key(self) -> str:
        return self.config.secret_key

    @property
    def username(self) -> str:
        return self.config.username

    @property
    def password(self) -> str:
        return self.config.password

    @property
    def domain(self) -> str:
        return self.config.domain

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def fleet(self) -> Fleet:
        return self.state.fleet

    def revoke_tokens(self, at: float | None = None) -> None:
        """Revoke every IAM token now, or at emulator time ``at``."""
        self.state.tokens.revoke_all(at)

    def issue_token(self, project_id: str | None = None) -> str:
        """A valid token without the IAM round trip, for tests of other routes."""
        return self.state.tokens.issue(project_id or self.project_id).value

    def runlog_items(self, instance_id: str | None = None) -> list[RunlogItem]:
        """Every item ever collected (including hidden and expired ones)."""
        items = self.state.runlogs.all_items()
        return [i for i in items if instance_id is None or i.instance_id == instance_id]

    def ready_info(self) -> dict[str, Any]:
        return {
            "dcs_endpoint": self.dcs_endpoint,
            "iam_endpoint": self.iam_endpoint,
            "obs_base": self.obs_base,
            "project_id": self.project_id,
            "project_ids": self.project_ids,
            "project_names": self.project_names,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "username": self.username,
            "password": self.password,
            "domain": self.domain,
        }


async def start_emulator(config: EmulatorConfig | None = None, **overrides: Any) -> Emulator:
    """A started emulator; the caller must ``await emu.close()``."""
    return await Emulator(config, **overrides).start()
