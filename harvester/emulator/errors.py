"""Error bodies in the DCS shape, and small helpers to parse query parameters strictly.

Handlers raise :class:`ApiError`; the middleware turns it into
``{"error_code", "error_msg", "error_ext_msg": null}`` so every route answers alike.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid(name: str) -> ApiError:
    return ApiError(400, "DCS.4800", f"Invalid {name} in the request.")


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_msg": message, "error_ext_msg": None}


def error_response(error: ApiError) -> web.Response:
    return json_response(error_body(error.code, error.message), status=error.status, headers=error.headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json"
    )


def int_param(query: Any, name: str, default: int, low: int, high: int | None = None) -> int:
    """A strictly decimal integer within bounds, else 400 DCS.4800 naming the parameter."""
    raw = query.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.strip().isdigit():
        raise invalid(name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise invalid(name)
    return value


def xml_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """OBS speaks S3-style XML errors, not DCS JSON."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>0000018EMULATOR0000</RequestId><HostId>emulator</HostId></Error>"
    )
    return web.Response(text=body, status=status, headers=headers, content_type="application/xml")
