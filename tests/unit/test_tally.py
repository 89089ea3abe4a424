"""One count of the outcome records: the summary, the metrics and the exit code agree."""

from __future__ import annotations

from datetime import UTC, date, datetime

from harvester.errors import EXIT_PARTIAL, exit_code
from harvester.metrics import metrics_snapshot
from harvester.models import FileResult, InstanceFailure, Outcome, RunSummary, tally
from harvester.report import problem_lines, summary_dict

DAY = date(2026, 11, 26)


def _file(outcome: Outcome, size: int = 0, ip: str = "10.0.0.1") -> FileResult:
    return FileResult("prod", "i-1", "orders", "group-0", ip, DAY, outcome, "f.log", size)


def _summary() -> RunSummary:
    s = RunSummary(run_id="r1", started_at=datetime(2026, 11, 27, 2, 30, tzinfo=UTC))
    s.files += [
        _file(Outcome.ARCHIVED, 100),
        _file(Outcome.ARCHIVED, 20, ip="10.0.0.2"),
        _file(Outcome.PRESENT, 999),
        _file(Outcome.FAILED),
        _file(Outcome.CANCELLED),
        _file(Outcome.PENDING),
        _file(Outcome.NO_LOG),
    ]
    s.instances += [
        InstanceFailure("prod", "b", "HTTP 404"),
        InstanceFailure("prod", "c", "old", skipped=True),
    ]
    return s


def test_tally_counts_each_outcome_and_only_archived_bytes() -> None:
    """Each outcome is counted once; bytes are those of the files this run archived."""
    n = tally(_summary().files, _summary().instances)
    assert (n.archived, n.present, n.failed, n.cancelled, n.pending, n.no_log) == (2, 1, 1, 1, 1, 1)
    assert n.bytes == 120
    assert (n.not_archived, n.good) == (2, 3)
    assert (n.instances_failed, n.instances_skipped) == (1, 1)


def test_summary_metrics_and_exit_code_read_the_same_numbers() -> None:
    """What the JSON summary, the Prometheus file and the exit code say about one run is one count."""
    summary = _summary()
    code = exit_code(summary)
    data = summary_dict(summary)
    prod = metrics_snapshot(summary, code, None).per_project["prod"]
    instance = data["instances"][0]
    assert code == EXIT_PARTIAL
    assert (instance["downloaded"], prod.files_archived, data["totals"]["downloaded"]) == (2, 2, 2)
    assert (instance["failed"], prod.files_failed) == (2, 2)  # failed and cancelled together
    assert (data["totals"]["failed"], data["totals"]["cancelled"]) == (1, 1)
    assert (instance["bytes"], prod.bytes_archived) == (120, 120)
    assert (instance["pending"], prod.days_pending) == (1, 1)
    assert (data["totals"]["instances_failed"], prod.instances_failed) == (1, 1)


def test_problem_lines_name_the_unreachable_project_once() -> None:
    """An unreachable project is one line; its instances' failures are not repeated below it."""
    summary = _summary()
    summary.fatal = "lock held by another run"
    summary.unreachable["stage"] = "DCS endpoint https://dcs:443 unreachable: refused"
    summary.instances.append(InstanceFailure("stage", "x", "unreachable"))
    assert problem_lines(summary) == [
        "harvester: error: project stage: DCS endpoint https://dcs:443 unreachable: refused",
        "harvester: error: lock held by another run",
        "harvester: error: prod/b: HTTP 404",
    ]
