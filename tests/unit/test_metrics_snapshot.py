"""The Prometheus numbers of a run come from its outcome records, per project."""

from __future__ import annotations

from datetime import UTC, date, datetime

from harvester.metrics import metrics_snapshot
from harvester.models import FileResult, InstanceFailure, Outcome, RunSummary

DAY = date(2026, 11, 26)


def test_counts_and_retries_are_labelled_by_project() -> None:
    """Each project gets its own files, bytes, failures and retries; the exit code is carried."""
    summary = RunSummary(run_id="r", started_at=datetime(2026, 11, 27, 2, 30, tzinfo=UTC))
    summary.finished_at = datetime(2026, 11, 27, 2, 40, tzinfo=UTC)
    summary.files += [
        FileResult("prod", "i-1", "a", "g", "ip", DAY, Outcome.ARCHIVED, "f", 100),
        FileResult("prod", "i-1", "a", "g", "ip2", DAY, Outcome.PRESENT, "f"),
        FileResult("stage", "i-2", "b", "g", "ip", DAY, Outcome.FAILED, "f", reason="x"),
    ]
    summary.instances.append(InstanceFailure("stage", "c", "HTTP 403 DCS.2003"))
    summary.retries_by_project.update({"prod": 3, "stage": 1})
    snap = metrics_snapshot(summary, 1, None)
    prod, stage = snap.per_project["prod"], snap.per_project["stage"]
    assert (prod.files_archived, prod.bytes_archived, prod.files_skipped, prod.retries) == (1, 100, 1, 3)
    assert (stage.files_failed, stage.instances_failed, stage.retries) == (1, 1, 1)
    assert snap.exit_code == 1
    assert not snap.success
