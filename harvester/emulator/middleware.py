"""One middleware in front of every route: counting, unknown routes, faults, then auth.

Order matters and mirrors a real gateway: an unknown URL is refused before anything else,
injected faults strike before authentication (a throttled request never reaches IAM
checks), and DCS handlers only run for a caller authenticated for the path's project.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from .auth import ALGORITHM, SignedRequest, verify
from .errors import ApiError, error_body, error_response, json_response, xml_error
from .faults import Decision
from .state import STATE, EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_class(request: web.Request) -> str:
    path = request.path
    if path.startswith("/v3/"):
        return "iam"
    if path.startswith("/obs/"):
        return "obs"
    if path.startswith("/v2/"):
        return "links" if path.rstrip("/").endswith("/links") else "dcs"
    return "unknown"


def reset_connection(request: web.Request) -> None:
    """Close with a TCP RST (SO_LINGER 0), which a client sees as 'connection reset by peer'."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _fault_response(request: web.Request, cls: str, decision: Decision) -> web.StreamResponse:
    headers = {"Retry-After": decision.retry_after} if decision.retry_after else None
    if decision.kind == "reset":
        reset_connection(request)
        raise asyncio.CancelledError
    if decision.kind == "error_500":
        if cls == "obs":
            return xml_error(500, "InternalError", "We encountered an internal error. Please try again.")
        return json_response(error_body("DCS.5000", "Internal error."), status=500)
    if cls == "obs":
        return xml_error(503, "SlowDown", "Please reduce your request rate.", headers)
    return json_response(error_body("APIG.0308", "The request is throttled."), status=429, headers=headers)


def _authenticate(state: EmulatorState, request: web.Request, body: bytes) -> None:
    project_id = request.match_info.get("project_id", "")
    authorization = request.headers.get("Authorization", "")
    token_value = request.headers.get("X-Auth-Token")
    if authorization.startswith(ALGORITHM):
        signed = SignedRequest(
            method=request.method,
            path=request.raw_path.split("?", 1)[0],
            raw_query=request.raw_path.partition("?")[2],
            header=request.headers.get,
            body=body,
        )
        failure = verify(signed, state.aksk_secrets, state.clock.now(), state.config.sdk_date_skew)
        if failure is not None:
            raise ApiError(401, *failure)
        claimed = request.headers.get("X-Project-Id")
        if state.fleet.project(project_id) is None or claimed not in (None, project_id):
            raise ApiError(401, "DCS.1004", "The project does not match the credentials.")
        return
    if not token_value:
        raise ApiError(401, "DCS.1003", "No token or signature in the request.")
    token = state.tokens.lookup(token_value)
    if token is None or token.revoked:
        raise ApiError(401, "DCS.1001", "The token is invalid.")
    if token.expires_at <= state.clock.now():
        raise ApiError(401, "DCS.1002", "The token has expired.")
    if token.project_id != project_id:
        raise ApiError(401, "DCS.1004", "The project does not match the token.")


def _malformed(response: web.Response) -> web.Response:
    body = response.body if isinstance(response.body, bytes) else b""
    response.body = body[: max(1, len(body) // 2)]
    return response


@web.middleware
async def emulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    cls = route_class(request)
    state.counters.requests[cls] += 1
    response = await _handle(state, request, handler, cls)
    state.counters.statuses[f"{cls}:{response.status}"] += 1
    return response


async def _handle(
    state: EmulatorState, request: web.Request, handler: Handler, cls: str
) -> web.StreamResponse:
    if cls == "unknown" or isinstance(request.match_info.http_exception, web.HTTPException):
        if cls == "obs":
            return xml_error(404, "NoSuchKey", "The specified key does not exist.")
        return error_response(ApiError(404, "DCS.4001", "The requested URL does not exist."))
    delay = state.injector.latency_seconds(cls)
    if delay > 0:
        state.counters.faults["latency"] += 1
        await asyncio.sleep(delay)
    decision = state.injector.before(cls, request.match_info.get("project_id", "-"))
    if decision is not None and decision.kind == "stall_headers":
        # A peer that accepted the request and says nothing: then answers normally, if the
        # client is still there (aiohttp cancels this handler when it hangs up).
        await asyncio.sleep(state.faults.of(cls).stall_seconds)
        decision = None
    if decision is not None:
        return _fault_response(request, cls, decision)
    try:
        if cls in ("dcs", "links"):
            _authenticate(state, request, await request.read())
        response = await handler(request)
    except ApiError as error:
        if error.status == 401:
            state.counters.auth_failures[error.code] += 1
        return error_response(error)
    if (
        cls != "obs"
        and isinstance(response, web.Response)
        and response.status < 300
        and response.content_type == "application/json"
        and state.injector.chance(state.faults.of(cls).malformed_json_rate)
    ):
        state.counters.faults["malformed_json"] += 1
        return _malformed(response)
    return response
