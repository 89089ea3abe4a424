"""Nothing that leaves the process through the logs carries a secret or a link's query string."""

from __future__ import annotations

import io
import json

import structlog

from harvester import log as logsetup
from harvester.models import SignedUrl

SECRET = "SKLOGTEST0123456789abcdef"
LINK = (
    "https://bucket.obs.eu-de.otc.t-systems.com/a/b.log?AWSAccessKeyId=AK1&Expires=17&Signature=c2lnbg%3D%3D"
)


def emit(fmt: str) -> str:
    out = io.StringIO()
    logsetup.configure(fmt, "debug", stream=out)
    logsetup.register_secret(SECRET)
    logger = structlog.get_logger("test")
    logger.info("harvest.link_requested", url=LINK, note=f"key {SECRET} used", nested={"k": [LINK]})
    logger.warning("harvest.file_failed", reason=f"GET {LINK} failed", link=SignedUrl(LINK))
    return out.getvalue()


def test_json_logs_scrub_secrets_and_query_strings() -> None:
    """JSON log lines keep the host and path of a link but never its signature or a secret."""
    text = emit("json")
    assert SECRET not in text
    for marker in ("Signature", "AWSAccessKeyId", "Expires="):
        assert marker not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert events[0]["url"].startswith("https://bucket.obs.eu-de.otc.t-systems.com/a/b.log")
    assert events[0]["event"] == "harvest.link_requested"


def test_console_logs_scrub_too() -> None:
    """The human console format goes through the same redaction."""
    text = emit("console")
    assert SECRET not in text
    assert "Signature" not in text


def test_scrub_leaves_ordinary_text_alone() -> None:
    """Redaction must not mangle paths and messages that hold nothing secret."""
    assert (
        logsetup.scrub("2026-11-26/prod/orders-5560df16/group-0") == "2026-11-26/prod/orders-5560df16/group-0"
    )
