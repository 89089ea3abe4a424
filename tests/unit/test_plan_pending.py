"""Pending days: when a missing day is evidence of a quiet Redis, final, or lost; how long to wait."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from harvester import plan
from harvester.models import ArchiveKey

TODAY = date(2025, 3, 10)


def day(n: int) -> date:
    """The day n days before TODAY."""
    return TODAY - timedelta(days=n)


def key(n: int) -> ArchiveKey:
    return ArchiveKey("p", "i", "group-0", "10.0.0.1", day(n))


# --------------------------------------------------------------------------- evidence


def test_requested_days_are_the_complete_days_of_each_window() -> None:
    """query_time N asks for the N days before today; 0 (today) adds no complete day."""
    assert plan.requested_days(TODAY, (3,)) == {day(1), day(2), day(3)}
    assert plan.requested_days(TODAY, (0, 1)) == {day(1)}
    assert plan.requested_days(TODAY, ()) == frozenset()


def test_a_later_requested_file_is_evidence_for_the_earlier_missing_days() -> None:
    """Files for day-1 and day-3 but none for day-2 and day-4..7: the days before day-1 look quiet."""
    requested = plan.requested_days(TODAY, (7,))
    got = plan.quiet_evidence(requested, {day(1), day(3)}, TODAY)
    assert got == {day(2), day(4), day(5), day(6), day(7)}


def test_only_later_days_count_as_evidence() -> None:
    """A file for an OLDER day says nothing about the newer missing ones (files may trickle in)."""
    requested = plan.requested_days(TODAY, (3,))
    assert plan.quiet_evidence(requested, {day(3)}, TODAY) == frozenset()
    assert plan.quiet_evidence(requested, {day(2)}, TODAY) == {day(3)}


def test_todays_unrequested_file_is_no_evidence() -> None:
    """Today's partial log listed after a query_time=1 collection proves nothing about yesterday."""
    requested = plan.requested_days(TODAY, (1,))
    assert plan.quiet_evidence(requested, {TODAY}, TODAY) == frozenset()


def test_files_outside_the_window_are_no_evidence() -> None:
    """A file for a day no collection asked for (outside the window) is no evidence either."""
    requested = plan.requested_days(TODAY, (1,))
    assert plan.quiet_evidence(requested, {day(1) + timedelta(days=3)}, TODAY) == frozenset()
    three = plan.requested_days(TODAY, (3,))
    assert plan.quiet_evidence(three, {day(5)}, TODAY) == frozenset()


def test_a_replica_that_produced_nothing_gives_no_evidence() -> None:
    """No file at all may be a collection that never ran: no day is held against it."""
    assert plan.quiet_evidence(plan.requested_days(TODAY, (7,)), set(), TODAY) == frozenset()


# --------------------------------------------------------------------------- records


def test_a_day_becomes_final_only_after_two_separate_nights() -> None:
    """One night of evidence keeps a day pending; a second run the same night adds nothing."""
    first = plan.note_missing(None, key(2), TODAY, covered=True, evidence=True, reason="no file listed")
    assert (first.since, first.collections, first.final) == (TODAY, 1, False)
    again = plan.note_missing(first, key(2), TODAY, covered=True, evidence=True, reason="no file listed")
    assert (again.collections, len(again.evidence), again.final) == (2, 1, False)
    later = TODAY + timedelta(days=1)
    final = plan.note_missing(again, key(2), later, covered=True, evidence=True, reason="no file listed")
    assert final.final
    assert final.evidence == {TODAY, later}
    assert final.since == TODAY


def test_nights_without_evidence_do_not_count() -> None:
    """A night whose collection produced nothing (or was not made) adds no evidence."""
    record = None
    for n in range(5):
        record = plan.note_missing(
            record, key(2), TODAY + timedelta(days=n), covered=n % 2 == 0, evidence=False, reason="x"
        )
    assert record is not None
    assert (record.collections, record.evidence, record.final) == (3, frozenset(), False)


def test_a_pending_day_that_leaves_the_window_is_a_failure_once() -> None:
    """A day older than DCS keeps is reported with how long it was tried; a final one is not."""
    record = plan.PendingDay(key(8), since=day(7), collections=2, reason="no file listed")
    assert plan.left_window(day(8), TODAY)
    assert not plan.left_window(day(7), TODAY)
    assert plan.expired_reason(record, TODAY) == (
        f"left DCS's 7-day window unharvested: no file listed after 2 collection(s) since {day(7)}"
    )
    assert plan.expired_reason(record, TODAY - timedelta(days=1)) is None
    final = plan.PendingDay(key(8), since=day(7), evidence=frozenset({day(7), day(6)}), final=True)
    assert plan.expired_reason(final, TODAY) is None
    assert plan.no_log_reason(final).startswith("no log produced: ")
    assert f"on 2 nights ({day(7)}, {day(6)})" in plan.no_log_reason(final)


# --------------------------------------------------------------------------- waiting


def wait(**kw: object) -> plan.WaitEnd | None:
    args: dict[str, object] = {
        "wanted": {day(1), day(2)},
        "final_days": set(),
        "started": 0.0,
        "now": 1.0,
        "changes": [],
        "slowest": None,
        "wait_timeout": 100.0,
    }
    args.update(kw)
    return plan.wait_end(**args)  # type: ignore[arg-type]


def test_the_wait_ends_when_every_wanted_day_has_a_final_file() -> None:
    """All asked-for days listed and final: done at once, whatever else is listed."""
    assert wait(final_days={day(1), day(2), TODAY}, changes=[0.5]) is plan.WaitEnd.COMPLETE


def test_files_that_trickle_in_are_waited_for() -> None:
    """After the first file, the wait lasts 1.5x the time it took; files trickling in stretch it
    to three times the longest gap between them (issue 10: from what appeared, not the poll)."""
    # Request at 0, a file at 20: settle is 30 s after the last change.
    assert wait(final_days={day(1)}, changes=[20.0], now=49.9, wait_timeout=200.0) is None
    assert wait(final_days={day(1)}, changes=[20.0], now=50.0, wait_timeout=200.0) is plan.WaitEnd.SETTLED
    # A second file 30 s after the first stretches the settle period to 90 s.
    two = {"final_days": {day(1)}, "changes": [20.0, 50.0], "wait_timeout": 300.0}
    assert wait(now=139.0, **two) is None
    assert wait(now=140.0, **two) is plan.WaitEnd.SETTLED


def test_a_fast_first_file_ends_a_quiet_replicas_wait_after_the_small_floor() -> None:
    """A fast first file: the wait ends after SETTLE_FLOOR, not a share of wait_timeout (issue 10)."""
    assert wait(final_days={day(1)}, changes=[0.1], now=0.1 + plan.SETTLE_FLOOR - 0.01) is None
    assert wait(final_days={day(1)}, changes=[0.1], now=0.1 + plan.SETTLE_FLOOR) is plan.WaitEnd.SETTLED


def test_a_replica_with_nothing_waits_for_the_run_yardstick_or_the_timeout() -> None:
    """No file and nothing to compare with: only wait_timeout ends it; else 1.5x the slowest."""
    assert wait(now=99.0) is None
    assert wait(now=100.0) is plan.WaitEnd.TIMED_OUT
    assert wait(now=29.9, slowest=20.0) is None
    assert wait(now=30.0, slowest=20.0) is plan.WaitEnd.SETTLED


def test_the_next_listing_comes_at_a_settle_deadline_when_that_is_sooner() -> None:
    """A wait ends on a fresh listing at its deadline, not up to a whole poll gap later."""
    # Schedule says 5 s; a replica's deadline is 1.2 s away: look just after it.
    assert plan.next_poll(20, 5.0, now=10.0, deadlines=[11.2, None]) == pytest.approx(1.205)
    # No deadline known (nothing to measure yet): the schedule alone.
    assert plan.next_poll(0, 5.0, now=0.0, deadlines=[None]) == plan.FIRST_POLL
    # A deadline already past never makes the polls a busy loop.
    assert plan.next_poll(3, 5.0, now=10.0, deadlines=[9.0]) == plan.MIN_POLL_GAP


def test_a_replica_whose_collection_shows_nothing_waits_until_the_deadline_then_ends() -> None:
    """The deadline next_poll aims at is the one wait_end ends the wait on."""
    deadline = plan.settle_deadline([], 0.0, 2.0)
    assert deadline is not None
    assert deadline == pytest.approx(plan.LATENCY_FACTOR * 2.0)
    assert wait(now=deadline - 0.001, slowest=2.0) is None
    assert wait(now=deadline, slowest=2.0) is plan.WaitEnd.SETTLED


def test_the_listing_is_polled_soon_then_less_often_up_to_the_poll_interval() -> None:
    """Polls start at FIRST_POLL, grow by POLL_GROWTH, never exceed collect.poll_interval."""
    delays = [plan.poll_delay(n, 5.0) for n in range(12)]
    assert delays[0] == plan.FIRST_POLL
    assert delays[1] == pytest.approx(plan.FIRST_POLL * plan.POLL_GROWTH)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert delays[-1] == 5.0
    assert max(delays) == 5.0
    assert plan.poll_delay(0, 0.05) == 0.05  # a poll_interval below the first poll caps it too
    assert plan.poll_delay(10_000, 5.0) == 5.0  # no overflow however long the wait


def test_a_day_with_a_late_or_unfinished_file_is_not_quiet() -> None:
    """A requested day listed in any status (not ready yet, failed) is late, not quiet."""
    requested = plan.requested_days(TODAY, (3,))
    assert plan.quiet_evidence(requested, {day(1)}, TODAY) == {day(2), day(3)}
    assert plan.quiet_evidence(requested, {day(1)}, TODAY, listed={day(1), day(3)}) == {day(2)}


def test_a_file_that_shows_up_later_voids_the_evidence_and_the_verdict() -> None:
    """Evidence nights and a final verdict are dropped once the day's file is listed after all."""
    k = key(3)
    once = plan.note_missing(None, k, day(1), covered=True, evidence=True, reason="no file listed")
    assert once.evidence == {day(1)}
    assert not once.final
    voided = plan.void_evidence(once)
    assert voided.evidence == frozenset()
    assert not voided.final
    assert (voided.since, voided.collections) == (once.since, once.collections)
    final = plan.note_missing(once, k, TODAY, covered=True, evidence=True, reason="no file listed")
    assert final.final
    assert not plan.void_evidence(final).final
    # seen tonight: the old night is void and tonight is no evidence either
    seen = plan.note_missing(once, k, TODAY, covered=True, evidence=True, reason="not ready", seen=True)
    assert seen.evidence == frozenset()
    assert not seen.final
    assert seen.collections == 2
    clean = plan.PendingDay(k, since=day(1))
    assert plan.void_evidence(clean) is clean


def test_a_replica_with_nothing_is_measured_by_its_own_instances_complete_replicas() -> None:
    """Siblings asked at the same moment are better evidence than the run's slowest collection."""
    assert plan.collection_yardstick([1.2, 1.4], slowest=9.0) == 1.4
    assert plan.collection_yardstick([], slowest=9.0) == 9.0
    assert plan.collection_yardstick([], slowest=None) is None
