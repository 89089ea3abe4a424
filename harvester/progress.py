"""Live progress on a terminal; silence everywhere else.

The engine reports counts through :class:`Progress`; in cron or CI (no terminal) the
structured logs are the record and a progress bar would only add noise to them.

While bars are on screen, rich redirects ``sys.stderr`` through its console, so the log lines
that still show (warnings and errors, see :func:`harvester.log.console_level`) are printed
above the bars instead of tearing them.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from rich import filesize
from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TransferSpeedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


class Progress(Protocol):
    def instances(self, resolved: int) -> None: ...
    def waiting(self, delta: int) -> None: ...
    def files_planned(self, delta: int) -> None: ...
    def file_done(self, *, failed: bool) -> None: ...
    def bytes(self, delta: int) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Used when stderr is not a terminal or ``--no-progress`` is given."""

    def instances(self, resolved: int) -> None:
        pass

    def waiting(self, delta: int) -> None:
        pass

    def files_planned(self, delta: int) -> None:
        pass

    def file_done(self, *, failed: bool) -> None:
        pass

    def bytes(self, delta: int) -> None:
        pass

    def close(self) -> None:
        pass


def count_text(completed: float, total: float | None) -> str:
    """``3/7`` once the total is known, ``3`` before: a bar never shows a total of ``None``."""
    done = f"{completed:g}"
    return done if total is None else f"{done}/{total:g}"


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(count_text(task.completed, task.total))


class _BytesColumn(ProgressColumn):
    """Bytes so far; the total of a night's downloads is not known in advance, so none is shown."""

    def render(self, task: Task) -> Text:
        return Text(filesize.decimal(int(task.completed)), style="progress.download")


class TerminalProgress:
    """Three rich bars on stderr: collection, files, bytes."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console if console is not None else Console(file=sys.stderr)
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            _CountColumn(),
            TextColumn("{task.fields[extra]}"),
            console=self._console,
            transient=False,
        )
        self._bytes = RichProgress(
            TextColumn("downloaded"), _BytesColumn(), TransferSpeedColumn(), console=self._console
        )
        self._waiting = 0
        self._failed = 0
        self._inst: TaskID = self._bar.add_task("instances", total=None, extra="")
        self._files: TaskID = self._bar.add_task("files", total=0, extra="")
        self._bytes_task: TaskID = self._bytes.add_task("bytes", total=None)
        self._bar.start()
        self._bytes.start()

    def instances(self, resolved: int) -> None:
        self._bar.update(self._inst, total=resolved, completed=resolved)

    def waiting(self, delta: int) -> None:
        self._waiting += delta
        self._bar.update(self._inst, extra=f"{self._waiting} waiting for collection")

    def files_planned(self, delta: int) -> None:
        task = self._bar.tasks[self._files]
        self._bar.update(self._files, total=(task.total or 0) + delta)

    def file_done(self, *, failed: bool) -> None:
        self._failed += int(failed)
        extra = f"{self._failed} failed" if self._failed else ""
        self._bar.update(self._files, advance=1, extra=extra)

    def bytes(self, delta: int) -> None:
        self._bytes.update(self._bytes_task, advance=delta)

    def close(self) -> None:
        self._bar.stop()
        self._bytes.stop()


def bars_wanted(no_progress: bool, stream: TextIO | None = None) -> bool:
    """Bars only on a terminal and only if the user did not say ``--no-progress``."""
    out = stream if stream is not None else sys.stderr
    return not no_progress and out.isatty()


def make_progress(enabled: bool) -> Progress:
    """A terminal gets bars, unless the user said no; anything else gets nothing."""
    if enabled and sys.stderr.isatty():
        return TerminalProgress()
    return NullProgress()
