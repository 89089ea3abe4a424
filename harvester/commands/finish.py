"""What a harvesting command does once its work is over: its records, its summary, its problems.

Every record is written whatever happened (a run that was refused or interrupted still says
so), and a record that cannot be written is one ``harvester: error:`` line, never a traceback,
and never a change of the exit code: the harvest itself already happened. The exit code comes
from the outcome records alone (:func:`harvester.errors.exit_code`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harvester.archive.files import json_chunks, write_chunks_atomic
from harvester.archive.store import Archive
from harvester.config.schema import Settings
from harvester.errors import HarvesterError, exit_code
from harvester.metrics import metrics_snapshot, write_metrics
from harvester.models import RunSummary
from harvester.report import problem_lines, render_text, summary_dict


def report_problems(summary: RunSummary) -> None:
    """One ``harvester: error:`` line on stderr per thing that stopped work (see
    :func:`harvester.report.problem_lines`), none for a clean run."""
    for line in problem_lines(summary):
        print(line, file=sys.stderr)


def write_record(what: str, write: Callable[[], object]) -> None:
    """Write one record; a failure is reported on stderr and changes nothing else."""
    try:
        write()
    except (HarvesterError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"harvester: error: {what}: could not write it: {reason}", file=sys.stderr)


def write_summary_json(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """``--summary-json F``: the summary, also at a path of the operator's choosing."""
    if args.summary_json is not None:
        path = Path(args.summary_json)
        write_record(
            "--summary-json", lambda: write_chunks_atomic(path, json_chunks(data, ensure_ascii=True))
        )


def finish(
    summary: RunSummary, settings: Settings, args: argparse.Namespace, *, shard: str | None, root_record: bool
) -> int:
    """Write the run's records and print the human summary; returns the exit code."""
    code = exit_code(summary)
    data = summary_dict(summary)
    if (root_record and summary.fatal is None) or summary.files:
        try:
            Archive(settings.archive.root).write_json_atomic(f"runs/{summary.run_id}.json", data)
        except HarvesterError as exc:
            print(f"harvester: error: could not write the run summary: {exc}", file=sys.stderr)
    write_summary_json(args, data)
    metrics_file = getattr(args, "metrics_file", None)
    if metrics_file is not None:
        snapshot = metrics_snapshot(summary, code, shard)
        write_record("--metrics-file", lambda: write_metrics(Path(metrics_file), snapshot))
    print(render_text(summary))
    print(f"archive: {settings.archive.root}")
    report_problems(summary)
    return code
