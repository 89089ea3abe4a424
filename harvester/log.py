"""structlog configuration: JSON lines for machines, console for people, secrets for nobody.

Redaction is a processor at the end of the chain, so it applies to every event whatever
code emitted it: values equal to a registered secret become ``***`` and any URL keeps
only scheme, host and path (a signed OBS link's query string is a bearer credential).

A call below the configured level costs next to nothing: the loggers are structlog's filtering
loggers (:func:`structlog.make_filtering_bound_logger`, whose filtered methods are a bare
``return None``), and each module-level ``structlog.get_logger()`` proxy assembles its logger once
(``cache_logger_on_first_use``) instead of on every call. Caching would freeze what a logger was
built with, so a cached logger holds nothing that a later configuration changes: it runs the
processor chain structlog is configured with *at the time of the call* (so ``capture_logs`` or
a test restoring the configuration reaches it), writes to one forwarding stream that
:func:`configure` points elsewhere, and takes its level from the methods of one wrapper class
that :func:`configure` rewrites. A later :func:`configure` (the CLI's, a test's) therefore still
applies to loggers cached before it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, TextIO

import stamina.instrumentation
import structlog

_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s\"'<>]*")
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Make ``value`` impossible to log; called for every credential the config resolves."""
    if len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Remove registered secrets and URL query strings from free text."""
    if "?" in text:  # the pattern needs one: most values (paths, names, sizes) skip the regex
        text = _URL_QUERY.sub(r"\1?<redacted>", text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value))


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The last line of defence: nothing leaves the process with a secret in it."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub_value(value)
    return event_dict


LEVELS = ("debug", "info", "warning", "error")


def console_level(requested: str, bars: bool) -> str:
    """The level actually printed: with progress bars on screen, warnings and errors only.

    Per-file info lines would scroll the bars away (and say what the bars already show); what
    an operator must read (a retry storm, a failed instance) is a warning and still shows,
    above the bars. ``--no-progress`` or a non-terminal stderr gives every requested line.
    """
    if bars and LEVELS.index(requested) < LEVELS.index("warning"):
        return "warning"
    return requested


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now*, not to the one seen at configure time.

    While rich shows progress bars it swaps ``sys.stderr`` for a proxy that prints above the
    bars; a logger holding the original stream would draw straight through them.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _Output:
    """The one stream every cached logger writes to; :func:`configure` points it elsewhere."""

    def __init__(self) -> None:
        self.target: Any = _CurrentStderr()

    def write(self, text: str) -> int:
        return int(self.target.write(text))

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return bool(self.target.isatty())


class _CurrentProcessors:
    """The processor chain structlog is configured with now, whoever configured it last."""

    def __iter__(self) -> Iterator[Any]:
        return iter(structlog.get_config()["processors"])


_CURRENT_PROCESSORS = _CurrentProcessors()


class _HarvesterLogger(structlog.BoundLoggerBase):
    """The wrapper class of every logger: its level methods are those of
    ``make_filtering_bound_logger(level)``, copied in by :func:`_set_level` (a filtered level's
    method is structlog's ``_nop``); its chain is always the configured one."""

    def __init__(self, logger: Any, processors: Iterable[Any], context: Any) -> None:
        super().__init__(logger, _CURRENT_PROCESSORS, context)


def _set_level(numeric: int) -> None:
    source = structlog.make_filtering_bound_logger(numeric)
    for name, value in vars(source).items():
        if not name.startswith("__"):
            setattr(_HarvesterLogger, name, value)


_set_level(logging.NOTSET)
_OUTPUT = _Output()


def configure(
    fmt: str = "auto", level: str = "info", stream: TextIO | None = None, *, bars: bool = False
) -> None:
    """Set up structlog once per process; ``auto`` means console on a terminal, JSON elsewhere.

    ``bars``: progress bars will be on screen; see :func:`console_level`.
    """
    out: Any = stream if stream is not None else _CurrentStderr()
    _OUTPUT.target = out
    level = console_level(level, bars)
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    _set_level(numeric)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=_HarvesterLogger,
        logger_factory=structlog.PrintLoggerFactory(_OUTPUT),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # storage and manifest log through the standard library (they must not depend on us):
    # route those records through the same redaction and rendering, in the same stream.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # stamina would log its own retries; ours carry more context and pass through redaction.
    stamina.instrumentation.set_on_retry_hooks([])
