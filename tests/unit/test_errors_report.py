"""Exit codes, failure classification and the run summary, from outcome records alone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from harvester.errors import (
    Action,
    ApiError,
    AuthError,
    ConfigError,
    IncompleteBodyError,
    LinkExpiredError,
    LinkRefusedError,
    PartBusyError,
    StorageError,
    TransportError,
    classify,
    exit_code,
    expected_failure,
)
from harvester.models import FileResult, InstanceFailure, Outcome, RunSummary, Secret, SignedUrl
from harvester.report import render_text, summary_dict

DAY = date(2026, 11, 26)


def result(outcome: Outcome, *, reason: str = "", size: int = 0, instance: str = "i-1") -> FileResult:
    return FileResult(
        "prod", instance, "orders", "group-0", "10.0.0.1", DAY, outcome, "f.log", size, 1, reason
    )


def summary(*files: FileResult, instances: tuple[InstanceFailure, ...] = ()) -> RunSummary:
    s = RunSummary(run_id="r1", started_at=datetime(2026, 11, 27, 2, 30, tzinfo=UTC))
    s.files.extend(files)
    s.instances.extend(instances)
    return s


def test_all_archived_or_present_exits_zero() -> None:
    """A night where everything landed, or was already there, is a success."""
    assert exit_code(summary(result(Outcome.ARCHIVED), result(Outcome.PRESENT))) == 0
    assert exit_code(summary()) == 0


def test_some_failures_exit_one() -> None:
    """A partial night exits 1 so monitoring notices while the rest stays archived."""
    assert exit_code(summary(result(Outcome.ARCHIVED), result(Outcome.FAILED, reason="x"))) == 1


def test_failed_instance_makes_the_run_partial_but_skipped_does_not() -> None:
    """A 403 on one instance is partial; an instance not RUNNING is a deliberate skip."""
    failed = InstanceFailure("prod", "orders", "HTTP 403 DCS.2003")
    skipped = InstanceFailure("prod", "old", "engine 3.0", skipped=True)
    assert exit_code(summary(result(Outcome.ARCHIVED), instances=(failed,))) == 1
    assert exit_code(summary(result(Outcome.ARCHIVED), instances=(skipped,))) == 0


def test_nothing_worked_exits_three() -> None:
    """When every file failed, or the run hit a fatal error, nothing could be done."""
    assert exit_code(summary(result(Outcome.FAILED, reason="x"))) == 3
    fatal = summary(result(Outcome.ARCHIVED))
    fatal.fatal = "authentication refused"
    assert exit_code(fatal) == 3


@pytest.mark.parametrize(("signum", "code"), [(2, 130), (15, 143)])
def test_interrupted_runs_exit_128_plus_signal(signum: int, code: int) -> None:
    """SIGINT and SIGTERM give the conventional 130 and 143."""
    s = summary(result(Outcome.ARCHIVED))
    s.interrupted_by = signum
    assert exit_code(s) == code


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (ApiError(500, "DCS.5000"), Action.RETRY),
        (ApiError(503), Action.RETRY),
        (ApiError(429, "APIG.0308", retry_after=3.0), Action.THROTTLED),
        (ApiError(404, "DCS.4001"), Action.SKIP),
        (ApiError(403, "DCS.2003"), Action.SKIP),
        (AuthError(401, "DCS.1001"), Action.FATAL),
        (TransportError("reset"), Action.RETRY),
        (IncompleteBodyError("short"), Action.RETRY),
        (LinkExpiredError("403"), Action.RELINK),
        (LinkRefusedError("evil host"), Action.SKIP),
        (StorageError("disk full"), Action.FATAL),
        (PartBusyError("a.log.part is being written by another process"), Action.SKIP),
    ],
)
def test_each_failure_has_one_policy(exc: Exception, action: Action) -> None:
    """5xx and resets retry, 429 waits, 403 from OBS relinks, 4xx skips the file, auth stops all."""
    assert classify(exc).action is action


def test_throttling_carries_retry_after() -> None:
    """The gateway's Retry-After reaches the retry loop."""
    assert classify(ApiError(429, retry_after=7.0)).retry_after == 7.0


def test_api_error_reads_as_one_line_with_status_and_code() -> None:
    """An operator sees what was attempted, the HTTP status and the DCS error code."""
    exc = ApiError(400, "DCS.4049", "Instance is not running.", what="collect run logs of 5560df16")
    assert str(exc) == "collect run logs of 5560df16: HTTP 400 DCS.4049: Instance is not running."
    assert "\n" not in str(exc)


def test_expected_failure_finds_the_reason_inside_task_groups() -> None:
    """A config error nested in exception groups is still reported as a config error."""
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ConfigError("bad"), TransportError("x")])])
    assert isinstance(expected_failure(nested), ConfigError)
    assert expected_failure(ExceptionGroup("bug", [ValueError("boom")])) is None


def test_secrets_and_signed_urls_print_redacted() -> None:
    """Neither a credential nor a link's query string survives str(), repr() or f-strings."""
    secret = Secret("SKVERYSECRET")
    url = SignedUrl(
        "https://b.obs.eu-de.otc.t-systems.com/k/a.log?AWSAccessKeyId=AK&Expires=1&Signature=abc%2B"
    )
    for text in (str(secret), repr(secret), f"{secret}", str([secret])):
        assert "SKVERYSECRET" not in text
    for text in (str(url), repr(url), f"{url}", url.redacted):
        assert "Signature" not in text
        assert "AWSAccessKeyId" not in text
    assert url.redacted == "https://b.obs.eu-de.otc.t-systems.com/k/a.log"
    assert url.host == "b.obs.eu-de.otc.t-systems.com"


def test_summary_counts_per_instance_and_lists_reasons() -> None:
    """The JSON summary and the printed table agree with the outcome records and the exit code."""
    s = summary(
        result(Outcome.ARCHIVED, size=2048),
        result(Outcome.PRESENT),
        result(Outcome.FAILED, reason="download link refused: HTTP 404 DCS.4001"),
        result(Outcome.ARCHIVED, size=10, instance="i-2"),
    )
    s.collections_by_instance["i-1"] = 2
    data = summary_dict(s)
    assert data["exit_code"] == 1
    assert data["totals"]["downloaded"] == 2
    assert data["totals"]["bytes"] == 2058
    first = next(i for i in data["instances"] if i["instance_id"] == "i-1")
    assert (first["collected"], first["downloaded"], first["skipped"], first["failed"]) == (2, 1, 1, 1)
    assert first["failures"][0]["reason"] == "download link refused: HTTP 404 DCS.4001"
    text = render_text(s)
    assert "FAILED 2026-11-26 group-0 10.0.0.1: download link refused: HTTP 404 DCS.4001" in text
    assert text.splitlines()[0] == "run r1: exit 1"


def test_summary_names_every_failed_pending_and_no_log_day_per_instance() -> None:
    """Per instance, the JSON summary counts every outcome and lists the not-archived days by name."""
    s = summary(
        *[result(Outcome.ARCHIVED, size=100) for _ in range(3)],
        result(Outcome.PRESENT),
        result(Outcome.FAILED, reason="gave up after 3 attempts"),
        result(Outcome.CANCELLED, reason="run interrupted before it finished"),
        result(Outcome.PENDING, reason="not listed yet", instance="i-2"),
        result(Outcome.NO_LOG, reason="no log on two nights", instance="i-2"),
    )
    by_id = {i["instance_id"]: i for i in summary_dict(s)["instances"]}
    first, second = by_id["i-1"], by_id["i-2"]
    assert (first["downloaded"], first["skipped"], first["failed"], first["bytes"]) == (3, 1, 2, 300)
    assert [(f["outcome"], f["reason"]) for f in first["failures"]] == [
        ("failed", "gave up after 3 attempts"),
        ("cancelled", "run interrupted before it finished"),
    ]
    assert first["failures"][0] == {
        "group_name": "group-0",
        "replication_ip": "10.0.0.1",
        "day": "2026-11-26",
        "file_name": "f.log",
        "outcome": "failed",
        "reason": "gave up after 3 attempts",
    }
    assert (second["pending"], second["no_log"], second["downloaded"]) == (1, 1, 0)
    assert [d["reason"] for d in second["pending_days"]] == ["not listed yet"]
    assert [d["day"] for d in second["no_log_days"]] == ["2026-11-26"]
