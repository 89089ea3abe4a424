"""What verify --repair tries to fetch again, and what it reports as beyond repair (and why)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from harvester.archive.verify import VerifyReport, repair_plan
from harvester.models import ArchiveKey

NOW = datetime(2025, 1, 10, 3, tzinfo=UTC)


def key(day: str) -> ArchiveKey:
    return ArchiveKey("p-1", "i-1", "group-0", "10.0.0.1", date.fromisoformat(day))


def test_damage_inside_dcs_window_is_fetched_the_rest_is_explained() -> None:
    """Days 1-7 back are fetched; older days, bundles and manifest damage get a reason each."""
    report = VerifyReport(
        missing=["2025-01-03/p/a.log", "incidents/20250101T000000Z-oom/p/b.log"],
        corrupt=[
            "2025-01-09/p/c.log",
            "2025-01-02/p/d.log",
            "2025-01-09/manifest-sha256.txt (disagrees with manifest.jsonl)",
            "2025-01-09/manifest.jsonl (line 3 is not a valid entry)",
        ],
        damaged={
            "2025-01-03/p/a.log": key("2025-01-03"),
            "2025-01-09/p/c.log": key("2025-01-09"),
            "2025-01-02/p/d.log": key("2025-01-02"),
        },
    )
    fetchable, hopeless = repair_plan(report, NOW)
    assert fetchable == {"2025-01-03/p/a.log": key("2025-01-03"), "2025-01-09/p/c.log": key("2025-01-09")}
    assert hopeless == {
        "incidents/20250101T000000Z-oom/p/b.log": (
            "an incident bundle's copy: run harvester collect again if it is still needed"
        ),
        "2025-01-02/p/d.log": "DCS keeps run logs for 7 days; 2025-01-02 is older",
        "2025-01-09/manifest-sha256.txt (disagrees with manifest.jsonl)": (
            "the next run regenerates it from manifest.jsonl"
        ),
        "2025-01-09/manifest.jsonl (line 3 is not a valid entry)": (
            "a manifest line that is not a valid entry: fix or remove it by hand"
        ),
    }


def test_a_clean_report_plans_nothing() -> None:
    """Nothing damaged: nothing to fetch, nothing to explain."""
    assert repair_plan(VerifyReport(checked=3, ok=3), NOW) == ({}, {})
