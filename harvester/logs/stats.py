"""What reading a log file met: counts per file, totals, and the report for stderr.

Nothing odd about a file is raised or dropped silently: it is counted here, and every
command prints :meth:`ParseStats.report` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLOCK_STEP_MS", "MAX_CONTINUATION", "MAX_LINE", "FileStats", "ParseStats"]

#: A line longer than this is cut here (and counted): memory stays bounded whatever the file.
MAX_LINE = 64 * 1024
#: Continuation lines kept per record (a crash report is a few hundred); the rest are counted.
MAX_CONTINUATION = 2000
#: A step back larger than this counts as a clock step (smaller ones are child/parent jitter).
CLOCK_STEP_MS = 1000


@dataclass(slots=True)
class FileStats:
    """What reading one file met. Counts of lines unless the name says otherwise."""

    path: str
    bytes: int = 0
    lines: int = 0
    records: int = 0  # records handed to the caller
    unparsed: int = 0  # lines that belong to no record (before the file's first record)
    continuation: int = 0  # lines attached to the record before them
    continuation_dropped: int = 0  # continuation lines beyond MAX_CONTINUATION
    blank: int = 0
    non_utf8: int = 0  # lines whose bytes are not UTF-8 (shown with U+FFFD)
    nul: int = 0  # lines that held NUL bytes (removed), as a crash leaves in a file
    long_lines: int = 0  # lines cut at MAX_LINE
    out_of_order: int = 0  # records earlier than one before them in the file
    clock_steps: int = 0  # times the clock went back by more than CLOCK_STEP_MS
    truncated_last_line: bool = False  # the file does not end with a newline
    empty: bool = False
    skipped: str = ""  # why the file was not read at all (binary, unreadable)
    only_matching: bool = False  # the grep fast path parsed only lines holding the literal
    lines_counted: bool = True  # False: the fast path was told not to count lines

    def warnings(self) -> list[str]:
        """One short phrase per problem, for the end-of-run report."""
        out: list[str] = []
        if self.skipped:
            out.append(f"not read: {self.skipped}")
        if self.empty:
            out.append("empty file")
        for count, what in (
            (self.unparsed, "line(s) in no known format before the first record"),
            (self.non_utf8, "line(s) not UTF-8 (shown with U+FFFD)"),
            (self.nul, "line(s) with NUL bytes (removed)"),
            (self.long_lines, f"line(s) longer than {MAX_LINE // 1024} KiB (cut)"),
            (self.continuation_dropped, f"continuation line(s) beyond {MAX_CONTINUATION} per record"),
            (self.out_of_order, "record(s) earlier than a record before them (kept in file order)"),
        ):
            if count:
                out.append(f"{count} {what}")
        if self.clock_steps:
            out.append(f"clock stepped back {self.clock_steps} time(s)")
        if self.truncated_last_line:
            out.append("last line has no newline (truncated?)")
        return out


@dataclass(slots=True)
class ParseStats:
    """Every file's :class:`FileStats`, in the order the files were opened."""

    files: list[FileStats] = field(default_factory=list)

    def new_file(self, path: str) -> FileStats:
        stats = FileStats(path)
        self.files.append(stats)
        return stats

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def problem_files(self) -> list[FileStats]:
        return [f for f in self.files if f.warnings()]

    @property
    def skipped_files(self) -> list[FileStats]:
        return [f for f in self.files if f.skipped]

    def report(self, limit: int = 20) -> list[str]:
        """Human lines for stderr: a total, then each file with a problem (at most ``limit``)."""
        counted = all(f.lines_counted for f in self.files)
        line_count = f"{self.total('lines')} lines" if counted else "lines not counted"
        lines = [
            f"read {len(self.files)} file(s), {self.total('bytes')} bytes, {line_count}, "
            f"{self.total('records')} records"
        ]
        if any(f.only_matching for f in self.files):
            lines.append(
                "note: --grep fast path: only lines holding the pattern's literal were parsed, so the "
                "counts below cover those lines"
            )
        problems = self.problem_files
        for f in problems[:limit]:
            lines.append(f"warning: {f.path}: " + "; ".join(f.warnings()))
        if len(problems) > limit:
            lines.append(f"warning: ... and {len(problems) - limit} more file(s) with warnings")
        return lines

    def to_dict(self) -> dict[str, Any]:
        keys = (
            "bytes",
            "lines",
            "records",
            "unparsed",
            "continuation",
            "continuation_dropped",
            "blank",
            "non_utf8",
            "nul",
            "long_lines",
            "out_of_order",
            "clock_steps",
        )
        return {
            "files": len(self.files),
            **{k: self.total(k) for k in keys},
            "empty_files": sum(f.empty for f in self.files),
            "truncated_last_lines": sum(f.truncated_last_line for f in self.files),
            "skipped_files": {f.path: f.skipped for f in self.files if f.skipped},
        }
