"""One file's attempts: what a failed link or download leads to (retry, relink, give up, stop)."""

from __future__ import annotations

import errno
import itertools

import pytest

from harvester import plan
from harvester.config.schema import LimitsSettings
from harvester.errors import (
    ApiError,
    AuthError,
    DiskFullError,
    EndpointUnavailableError,
    FolderNotWritableError,
    IncompleteBodyError,
    LinkExpiredError,
    LinkRefusedError,
    PartBusyError,
    StorageError,
    TransportError,
)
from harvester.plan import AttemptError, Decision, FailureKind, Step

LIMITS = LimitsSettings(download_attempts=4, relink_attempts=3)


def _disk_full_os_error() -> StorageError:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as cause:
        try:
            raise StorageError("cannot write the part file") from cause
        except StorageError as exc:
            return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (LinkRefusedError("download link points to host 'evil'"), FailureKind.REFUSED),
        (DiskFullError("disk full"), FailureKind.DISK_FULL),
        (_disk_full_os_error(), FailureKind.DISK_FULL),
        (FolderNotWritableError("read-only folder"), FailureKind.STORAGE),
        (PartBusyError("another writer"), FailureKind.STORAGE),
        (StorageError("cannot rename"), FailureKind.STORAGE),
        (AuthError(401, "IAM.0001", "refused"), FailureKind.FATAL),
        (LinkExpiredError("HTTP 403 AccessDenied"), FailureKind.RELINK),
        (IncompleteBodyError("body ended after 10 of 20 bytes"), FailureKind.RETRY),
        (TransportError("connection reset"), FailureKind.RETRY),
        (ApiError(503, "DCS.5000"), FailureKind.RETRY),
        (ApiError(429, "APIGW.0308"), FailureKind.FINAL),
        (ApiError(404, "DCS.4404"), FailureKind.FINAL),
        (EndpointUnavailableError("circuit open"), FailureKind.FINAL),
    ],
)
def test_each_error_has_one_kind(exc: BaseException, kind: FailureKind) -> None:
    """Every failure the fetch loop can see is read as exactly one kind of next step."""
    failure = AttemptError.of(exc)
    assert failure.kind is kind
    assert failure.reason == str(exc)


def test_retry_after_is_carried_from_a_throttling_obs() -> None:
    """OBS's Retry-After travels with the failure, so the backoff can honour it."""
    assert AttemptError.of(TransportError("HTTP 503 SlowDown", retry_after=7.0)).retry_after == 7.0
    assert AttemptError.of(IncompleteBodyError("short")).retry_after is None


def test_transient_failure_is_retried_until_download_attempts() -> None:
    """A reset or short body is retried with backoff while transfers are left, then the file fails."""
    failure = AttemptError(FailureKind.RETRY, "connection reset")
    assert plan.after_download_error(failure, 1, 0, LIMITS) == Decision(Step.RETRY, wait=0.5)
    assert plan.after_download_error(failure, 3, 0, LIMITS) == Decision(Step.RETRY, wait=2.0)
    assert plan.after_download_error(failure, 4, 0, LIMITS) == Decision(Step.GIVE_UP, "connection reset")


def test_backoff_honours_retry_after_within_its_cap() -> None:
    """OBS's own Retry-After is waited (at most MAX_RETRY_AFTER); without it, exponential to 10 s."""
    slow = AttemptError(FailureKind.RETRY, "HTTP 503", retry_after=7.0)
    assert plan.after_download_error(slow, 1, 0, LIMITS).wait == 7.0
    huge = AttemptError(FailureKind.RETRY, "HTTP 503", retry_after=10_000.0)
    assert plan.after_download_error(huge, 1, 0, LIMITS).wait == plan.MAX_RETRY_AFTER
    assert plan.download_backoff(None, 10) == 10.0
    assert plan.download_backoff(0.0, 2) == 1.0


def test_refused_link_is_renewed_up_to_relink_attempts() -> None:
    """A 403 asks for a fresh link, relink_attempts times; the next one fails the file and says so."""
    failure = AttemptError(FailureKind.RELINK, "HTTP 403 AccessDenied")
    assert plan.after_download_error(failure, 1, 0, LIMITS) == Decision(Step.RELINK)
    assert plan.after_download_error(failure, 4, 2, LIMITS) == Decision(Step.RELINK)
    assert plan.after_download_error(failure, 4, 3, LIMITS) == Decision(
        Step.GIVE_UP, "links kept being refused: HTTP 403 AccessDenied"
    )


def test_a_link_to_an_untrusted_host_fails_the_file_at_once() -> None:
    """No attempt can make a link to a host outside download.allowed_hosts work: no retry, no relink."""
    failure = AttemptError(FailureKind.REFUSED, "download link points to host 'evil'")
    assert plan.after_download_error(failure, 1, 0, LIMITS) == Decision(Step.GIVE_UP, failure.reason)


def test_storage_failures_fail_the_file_and_a_full_disk_stops_later_writes() -> None:
    """An unwritable folder fails this file only; a full disk fails it and marks every later file."""
    folder = plan.after_download_error(AttemptError(FailureKind.STORAGE, "read-only"), 1, 0, LIMITS)
    assert folder == Decision(Step.GIVE_UP, "read-only")
    full = plan.after_download_error(AttemptError(FailureKind.DISK_FULL, "ENOSPC"), 1, 0, LIMITS)
    assert full == Decision(Step.GIVE_UP, "disk full: ENOSPC", stop_writes=True)


def test_refused_credentials_stop_the_run() -> None:
    """Credentials refused while downloading or linking stop everything: no other file can work."""
    fatal = AttemptError(FailureKind.FATAL, "HTTP 401")
    assert plan.after_download_error(fatal, 1, 0, LIMITS).step is Step.STOP
    assert plan.after_link_error(fatal).step is Step.STOP


def test_a_missing_link_fails_the_file_with_its_reason() -> None:
    """DCS gave no link (its call already retried): the file fails, naming why."""
    decision = plan.after_link_error(AttemptError(FailureKind.RETRY, "HTTP 503 DCS.5000"))
    assert decision == Decision(Step.GIVE_UP, "no download link: HTTP 503 DCS.5000")


def test_storage_failure_wording() -> None:
    """A file on disk but not in the manifest says so; a full disk says so first."""
    what = "archived but not recorded in the manifest"
    assert plan.storage_failure("EIO", disk_full=False, what=what) == f"{what}: EIO"
    assert plan.storage_failure("ENOSPC", disk_full=True, what=what) == f"disk full: {what}: ENOSPC"


@pytest.mark.parametrize("kind", [FailureKind.RETRY, FailureKind.RELINK])
def test_the_decisions_give_up_before_the_safety_bound(kind: FailureKind) -> None:
    """Whatever mix of transient failures and refused links, a file gives up within its budget."""
    for pattern in itertools.product([FailureKind.RETRY, FailureKind.RELINK], repeat=8):
        relinks = 0
        for attempts, step_kind in enumerate((kind, *pattern), start=1):
            assert plan.may_attempt(attempts - 1, LIMITS)
            decision = plan.after_download_error(AttemptError(step_kind, "x"), attempts, relinks, LIMITS)
            if decision.step is Step.GIVE_UP:
                break
            if decision.step is Step.RELINK:
                relinks += 1
        else:
            pytest.fail(f"no give-up after {len(pattern) + 1} attempts: {(kind, *pattern)}")
