"""Log levels: a filtered call does no logging work, and a later configure reaches every logger."""

from __future__ import annotations

import io
import json
from collections.abc import MutableMapping
from typing import Any

import structlog

from harvester import log as logsetup


def test_a_call_below_the_level_never_reaches_a_processor() -> None:
    """debug at level info builds no event: no processor (redaction, rendering) runs for it."""
    out = io.StringIO()
    logsetup.configure("json", "info", stream=out)
    seen: list[str] = []

    def count(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        seen.append(str(event_dict["event"]))
        return event_dict

    logger = structlog.get_logger("test")
    structlog.get_config()["processors"].insert(0, count)
    try:
        for _ in range(100):
            logger.debug("harvest.poll", replica="10.0.0.1")
        logger.info("harvest.file_archived")
    finally:
        structlog.get_config()["processors"].remove(count)
    assert seen == ["harvest.file_archived"]
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["harvest.file_archived"]


def test_a_logger_used_before_a_reconfigure_follows_the_new_stream_and_level() -> None:
    """A module-level logger (cached on first use) writes where, and at the level, the last configure says."""
    first, second = io.StringIO(), io.StringIO()
    logger = structlog.get_logger("test")
    logsetup.configure("json", "debug", stream=first)
    logger.debug("first.debug")
    logsetup.configure("console", "warning", stream=second)
    logger.debug("second.debug")
    logger.info("second.info")
    logger.warning("second.warning")
    assert "first.debug" in first.getvalue()
    assert "second" not in first.getvalue()
    assert "second.warning" in second.getvalue()
    assert "second.debug" not in second.getvalue()
    assert "second.info" not in second.getvalue()
    assert not second.getvalue().lstrip().startswith("{")  # rendered by the new (console) renderer


def test_a_reconfigured_logger_still_redacts() -> None:
    """Redaction stays in the chain of a logger cached before the reconfigure."""
    logger = structlog.get_logger("test")
    logsetup.configure("json", "info", stream=io.StringIO())
    logger.info("warm.up")
    out = io.StringIO()
    logsetup.configure("json", "info", stream=out)
    logsetup.register_secret("SKLEVELS0123456789")
    logger.info("harvest.link", url="https://h.example/p?Signature=abc", note="SKLEVELS0123456789")
    text = out.getvalue()
    assert "Signature" not in text
    assert "SKLEVELS0123456789" not in text
    assert "https://h.example/p" in text


def test_a_cached_logger_runs_the_chain_structlog_is_configured_with_now() -> None:
    """A logger cached before structlog is reconfigured elsewhere (capture_logs, a restored
    configuration) follows the new chain instead of the one it was cached with."""
    first = io.StringIO()
    logger = structlog.get_logger("test")
    logsetup.configure("json", "info", stream=first)
    logger.info("warm.up")  # cached from here on
    try:
        structlog.configure(processors=[structlog.processors.JSONRenderer()])  # another list
        with structlog.testing.capture_logs() as logs:
            logger.info("harvest.file_archived", size=1)
        assert [e["event"] for e in logs] == ["harvest.file_archived"]
        assert "harvest.file_archived" not in first.getvalue()
    finally:
        logsetup.configure("json", "info", stream=io.StringIO())
