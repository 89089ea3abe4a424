"""The outcome records a run keeps share their repeated fields instead of copying them per file."""

from __future__ import annotations

from datetime import date

from harvester.models import FileResult, Outcome, Shared


def _result(file_name: str, ip: str, day: str, outcome: Outcome = Outcome.ARCHIVED) -> FileResult:
    # Built from fresh copies, as a listing parse makes them: equal values, distinct objects.
    return FileResult(
        "".join(["pr", "od"]),
        "".join(["i-", "1"]),
        "".join(["ord", "ers"]),
        "".join(["group-", "0"]),
        "".join(ip),
        date.fromisoformat(day),
        outcome,
        file_name=file_name,
        size=1000,
        attempts=1,
    )


def test_a_shared_record_equals_the_original() -> None:
    """Sharing changes no field: the summary reads the same record."""
    shared = Shared()
    original = _result("a.log", "10.0.0.1", "2026-11-26", Outcome.FAILED)
    assert shared.result(original) == original


def test_records_of_one_instance_share_their_repeated_values() -> None:
    """Two files of one replica and day keep one copy of the instance, IP and day between them."""
    shared = Shared()
    first = shared.result(_result("a.log", "10.0.0.1", "2026-11-26"))
    second = shared.result(_result("b.log", "10.0.0.1", "2026-11-26"))
    assert first.instance_id is second.instance_id
    assert first.replication_ip is second.replication_ip
    assert first.day is second.day
    assert (first.file_name, second.file_name) == ("a.log", "b.log")
    other = shared.result(_result("c.log", "10.0.0.2", "2026-11-25"))
    assert (other.replication_ip, other.day) == ("10.0.0.2", date(2026, 11, 25))
