"""The run's outcome as a Prometheus textfile, for node_exporter's textfile collector.

The one metric an alert needs is ``dcs_harvester_last_success_timestamp_seconds``: a failed
run must not reset it, or ``time() - dcs_harvester_last_success_timestamp_seconds > 26*3600``
would stop firing after every failure. So a failed run copies the value from the previous
file. Before the first success it is 0, which makes that alert fire rather than stay silent
on a harvester that never worked.

The per-project numbers describe the last run only, so they are gauges (no ``_total``): they go
down as well as up from one run to the next. When sharded, every sample carries ``shard``, and
each shard should write its own file (``dcs_harvester_<shard>.prom``) so they do not clobber
each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harvester.archive.files import write_bytes_atomic
from harvester.errors import StorageError
from harvester.models import RunSummary, tally, utcnow

__all__ = [
    "MetricsSnapshot",
    "ProjectCounts",
    "metrics_snapshot",
    "read_last_success",
    "render",
    "write_metrics",
]

PREFIX = "dcs_harvester_"
LAST_SUCCESS = f"{PREFIX}last_success_timestamp_seconds"


@dataclass(frozen=True, slots=True)
class ProjectCounts:
    """One project's numbers for the run."""

    files_archived: int = 0
    bytes_archived: int = 0
    files_failed: int = 0
    files_skipped: int = 0  # already present in the archive
    retries: int = 0
    instances_failed: int = 0
    days_pending: int = 0  # replica-days without a file yet, collected again next night


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything the metrics file says about one run."""

    started_at: datetime
    finished_at: datetime
    exit_code: int
    success: bool
    shard: str | None
    per_project: Mapping[str, ProjectCounts]


def metrics_snapshot(summary: RunSummary, code: int, shard: str | None) -> MetricsSnapshot:
    """The run's numbers per project, counted from its outcome records like the summary's."""
    per: dict[str, ProjectCounts] = {}
    projects = {f.project for f in summary.files} | {i.project for i in summary.instances}
    for project in sorted(projects):
        n = tally(
            (f for f in summary.files if f.project == project),
            (i for i in summary.instances if i.project == project),
        )
        per[project] = ProjectCounts(
            files_archived=n.archived,
            bytes_archived=n.bytes,
            files_failed=n.not_archived,
            files_skipped=n.present,
            retries=summary.retries_by_project.get(project, 0),
            instances_failed=n.instances_failed,
            days_pending=n.pending,
        )
    return MetricsSnapshot(
        started_at=summary.started_at,
        finished_at=summary.finished_at or utcnow(),
        exit_code=code,
        success=code == 0,
        shard=shard,
        per_project=per,
    )


_RUN_GAUGES = (
    ("last_run_start_timestamp_seconds", "Unix time the last run started."),
    ("last_run_end_timestamp_seconds", "Unix time the last run finished."),
    (
        "last_success_timestamp_seconds",
        "Unix time the last successful run finished (0 before the first success).",
    ),
    ("last_exit_code", "Exit code of the last run (0 ok, 1 partial, 3 nothing done, 130/143 interrupted)."),
)
_PROJECT_GAUGES = (
    ("files_archived", "Files archived by the last run.", "files_archived"),
    ("bytes_archived", "Bytes archived by the last run.", "bytes_archived"),
    ("files_failed", "Files the last run failed to archive.", "files_failed"),
    ("files_skipped", "Files the last run skipped because they were already archived.", "files_skipped"),
    ("retries", "Retries (requests and downloads) in the last run.", "retries"),
    ("instances_failed", "Instances the last run could not work on.", "instances_failed"),
    (
        "days_pending",
        "Replica-days the last run needed but found no file for yet (collected again next night).",
        "days_pending",
    ),
)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(float(value))


def render(snapshot: MetricsSnapshot, previous_last_success: float | None) -> str:
    """The exposition text; ``previous_last_success`` is carried over when the run failed."""
    shard = [("shard", snapshot.shard)] if snapshot.shard is not None else []
    if snapshot.success:
        last_success = snapshot.finished_at.timestamp()
    else:
        last_success = previous_last_success if previous_last_success is not None else 0.0
    run_values = (
        snapshot.started_at.timestamp(),
        snapshot.finished_at.timestamp(),
        last_success,
        snapshot.exit_code,
    )
    out: list[str] = []
    for (name, help_text), value in zip(_RUN_GAUGES, run_values, strict=True):
        out += [
            f"# HELP {PREFIX}{name} {_escape_help(help_text)}",
            f"# TYPE {PREFIX}{name} gauge",
            f"{PREFIX}{name}{_labels(shard)} {_number(value)}",
        ]
    for name, help_text, attr in _PROJECT_GAUGES:
        out += [f"# HELP {PREFIX}{name} {_escape_help(help_text)}", f"# TYPE {PREFIX}{name} gauge"]
        for project in sorted(snapshot.per_project):
            value = getattr(snapshot.per_project[project], attr)
            out.append(f"{PREFIX}{name}{_labels([('project', project), *shard])} {_number(value)}")
    return "\n".join(out) + "\n"


_SAMPLE = re.compile(rf"^{LAST_SUCCESS}(?:\{{.*\}})?\s+(\S+)")


def read_last_success(path: Path) -> float | None:
    """The last-success time in an existing metrics file; None if absent or unreadable.

    Deliberately forgiving: a damaged metrics file must not fail the run that replaces it.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                value = float(match[1])
            except ValueError:
                return None
            return value if math.isfinite(value) else None
    return None


def write_metrics(path: Path, snapshot: MetricsSnapshot) -> None:
    """Replace the metrics file atomically, so node_exporter never scrapes half of it."""
    text = render(snapshot, read_last_success(path))
    try:
        write_bytes_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"cannot write metrics file {path}: {exc.strerror or exc}") from exc
