"""Reading what arrives over the wire, tolerantly: field values, error bodies, Retry-After.

The contract (sections 1 and 3.1) warns that documented strings arrive as numbers, ``{}``
stands for null, and error answers come in three shapes (DCS/APIG JSON, IAM JSON, a gateway's
HTML page; OBS speaks S3 XML). Every reader here takes what came and returns a plain value or
``""``/``None``; none raises on odd input, so one quirky field never costs a whole answer.
Message text is cut to one bounded line, so a huge error page cannot flood a log.

Pure: no I/O; unit-tested.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

MAX_ERROR_TEXT = 200

_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


def one_line(text: str) -> str:
    """Whitespace folded, cut to :data:`MAX_ERROR_TEXT` characters."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def text(value: Any) -> str:
    """A documented string that may arrive as a number, a bool, null or ``{}``."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def integer(value: Any) -> int | None:
    """An integer given as a number or a numeric string; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def iso_datetime(value: Any) -> datetime | None:
    """ISO 8601 (``...Z`` or an offset); a time without a zone is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def timestamp(value: Any) -> datetime | None:
    """ISO 8601 or epoch seconds/milliseconds; always timezone-aware."""
    number = integer(value)
    if number is not None:
        seconds = number / 1000 if number > 10**11 else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return iso_datetime(value)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _code_text(value: Any) -> str:
    return one_line(text(value))


def parse_error_body(body: bytes) -> tuple[str, str]:
    """``(error_code, error_msg)`` from whatever an error answer carried.

    DCS/APIG send ``{"error_code", "error_msg"}`` (codes like ``DCS.4800`` or legacy numbers),
    IAM sends ``{"error": {"code", "message"}}``, and a gateway may send HTML or nothing.
    """
    raw = body.decode("utf-8", errors="replace").strip()
    if not raw:
        return "", ""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = _code_text(data.get("error_code") or data.get("errorCode") or data.get("code"))
        msg = _code_text(data.get("error_msg") or data.get("errorMsg") or data.get("message"))
        nested = data.get("error")
        if isinstance(nested, dict):
            code = code or _code_text(nested.get("code") or nested.get("error_code"))
            msg = msg or _code_text(nested.get("message") or nested.get("error_msg") or nested.get("title"))
        elif isinstance(nested, str):
            msg = msg or one_line(nested)
        return code, msg
    if data is not None:
        return "", one_line(raw)
    title = _TITLE.search(raw)
    if title:
        return "", one_line(html.unescape(_TAG.sub(" ", title.group(1))))
    return "", one_line(html.unescape(_TAG.sub(" ", raw)))


def parse_obs_error(body: bytes) -> tuple[str, str]:
    """``(Code, Message)`` of an OBS/S3 XML error; other elements may echo the signature, so skip them."""
    raw = body.decode("utf-8", errors="replace")
    code = _XML_CODE.search(raw)
    message = _XML_MESSAGE.search(raw)
    return (
        one_line(html.unescape(code.group(1))) if code else "",
        one_line(html.unescape(message.group(1))) if message else "",
    )
