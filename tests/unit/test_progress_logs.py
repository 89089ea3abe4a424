"""On a terminal, progress bars and log lines do not fight, and no bar shows a total of None."""

from __future__ import annotations

import io
import sys

import pytest
import structlog
from rich.console import Console

from harvester import log as logsetup
from harvester.progress import TerminalProgress, bars_wanted, count_text


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


@pytest.mark.parametrize(
    ("requested", "bars", "shown"),
    [
        ("debug", True, "warning"),
        ("info", True, "warning"),
        ("warning", True, "warning"),
        ("error", True, "error"),
        ("debug", False, "debug"),
        ("info", False, "info"),
    ],
)
def test_bars_on_screen_keep_only_warnings_and_errors(requested: str, bars: bool, shown: str) -> None:
    """With bars, per-file info (and debug) lines are not printed; without bars, what was asked for."""
    assert logsetup.console_level(requested, bars) == shown


def test_count_text_never_says_none() -> None:
    """A bar whose total is not known yet shows its count alone."""
    assert count_text(3, None) == "3"
    assert count_text(3, 7) == "3/7"
    assert count_text(0, 0) == "0/0"


def test_bars_only_on_a_terminal_and_not_when_refused() -> None:
    """``--no-progress`` and a non-terminal stream both mean no bars."""
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    assert bars_wanted(False, tty)
    assert not bars_wanted(True, tty)
    assert not bars_wanted(False, io.StringIO())


def test_rendered_bars_never_show_none() -> None:
    """Before instances are resolved and after, the rendered bars contain no 'None'."""
    console, out = _terminal()
    bars = TerminalProgress(console)
    console.print(bars._bar)  # the state before anything is known
    bars.waiting(2)
    bars.instances(4)
    bars.files_planned(5)
    bars.file_done(failed=False)
    bars.file_done(failed=True)
    bars.bytes(2048)
    bars.close()
    text = out.getvalue()
    assert "None" not in text
    assert "instances" in text
    assert "2/5" in text
    assert "1 failed" in text
    assert "2.0 kB" in text


def test_warnings_print_above_the_bars_and_info_lines_do_not() -> None:
    """While bars are live, a warning goes through rich's console (above the bars); info is dropped."""
    console, out = _terminal()
    logsetup.configure("json", "info", bars=True)  # as in a run: logging first, bars later
    before = sys.stderr
    bars = TerminalProgress(console)
    try:
        assert sys.stderr is not before  # rich's proxy; the logger must write through it
        logger = structlog.get_logger("test")
        logger.info("harvest.file_archived", file="redis_1.log")
        logger.warning("harvest.instance_failed", instance="orders")
    finally:
        bars.close()
    text = out.getvalue()
    assert "harvest.instance_failed" in text
    assert "harvest.file_archived" not in text


def test_without_bars_info_lines_are_logged() -> None:
    """No bars: the requested level applies unchanged."""
    out = io.StringIO()
    logsetup.configure("json", "info", stream=out, bars=False)
    structlog.get_logger("test").info("harvest.file_archived")
    assert "harvest.file_archived" in out.getvalue()
