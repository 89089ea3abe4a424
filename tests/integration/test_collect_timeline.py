"""``harvester collect`` writes events.jsonl and timeline.html into the bundle, from the logs it holds.

The bundles are collected from the emulator late on a day with a seeded failover, so both
files have something known to show: the promoted replica and the demoted old master.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from harvester.archive.verify import verify
from tests.cdp import find_chromium, open_page
from tests.collect_helpers import manifest_lines, sha256_file, sha_list
from tests.emulator_sigv import EmulatorFactory
from tests.timeline_bundle import failover_bundle, page_data, read_events

STATS = "window.__timeline && window.__timeline.ready && window.__timeline"


def _kinds_of(events: list[dict[str, object]], ip: str) -> set[object]:
    return {e["kind"] for e in events if e["replica"] == ip}


async def test_bundle_holds_events_and_timeline_listed_in_its_manifest(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Both files sit at the bundle's top, in its manifest and sha256 list, and verify clean."""
    fb = await failover_bundle(emulator_factory, tmp_path, cluster=False)
    bundle = fb.run.bundle
    entries = {e["path"]: e for e in manifest_lines(bundle)}
    for name in ("events.jsonl", "timeline.html"):
        assert (bundle / name).is_file()
        assert entries[name]["sha256"] == sha256_file(bundle / name)
        assert entries[name]["size"] == (bundle / name).stat().st_size
        assert entries[name]["instance_id"] == ""  # about the whole bundle, not one instance
        assert sha_list(bundle)[name] == entries[name]["sha256"]
    report = verify(fb.run.root)
    assert (report.corrupt, report.missing, report.extra) == ([], [], [])


async def test_events_show_the_failover_from_both_sides(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """events.jsonl has the replica's link loss and promotion, and the old master's demotion, in order."""
    fb = await failover_bundle(emulator_factory, tmp_path, cluster=True)
    events = read_events(fb.run.bundle / "events.jsonl")
    inc = fb.incident
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    promoted = next(e for e in events if e["replica"] == inc.peer and e["kind"] == "failover.promoted")
    lost = next(
        e
        for e in events
        if e["replica"] == inc.peer
        and e["kind"] == "master_link.lost"
        and e["time"] <= promoted["time"]
        and e["time"][11:19] >= _hms(inc.at_ms)
    )
    demoted = next(e for e in events if e["replica"] == inc.subject and e["kind"] == "failover.demoted")
    assert lost["time"] < promoted["time"] < demoted["time"]
    assert _seconds(promoted["time"]) - _seconds(lost["time"]) < 10
    assert promoted["instance"] == fb.instance.name
    assert "cluster.election" in _kinds_of(events, inc.peer)
    assert {"cluster.state_fail", "cluster.state_ok"} <= _kinds_of(events, inc.subject)
    assert any(e["kind"] == "cluster.vote" for e in events if e["replica"] in inc.other_masters)


async def test_timeline_page_has_a_lane_per_replica_grouped_by_shard(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """One lane per replica of the cluster, labelled by IP under its shard; the promoted one was master."""
    fb = await failover_bundle(emulator_factory, tmp_path, cluster=True)
    data = page_data(fb.run.bundle / "timeline.html")
    replicas = fb.instance.replicas
    assert sorted((lane["shard"], lane["label"]) for lane in data["lanes"]) == sorted(
        (r.group_name, r.ip) for r in replicas
    )
    assert {lane["inst"] for lane in data["lanes"]} == {fb.instance.name}
    assert len(data["events"]) == len(read_events(fb.run.bundle / "events.jsonl"))
    lane_of = {lane["label"]: i for i, lane in enumerate(data["lanes"])}
    master = data["roles"].index("master")
    assert any(s[0] == lane_of[fb.incident.peer] and s[1] == master for s in data["spans"])


async def test_bundle_timeline_loads_clean_in_chromium(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The bundle's page draws every replica lane and every event of events.jsonl, with no console error."""
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "chromium is not installed (apt-get install chromium); the CI must run the browser checks"
            )
        pytest.skip("chromium is not installed")
    fb = await failover_bundle(emulator_factory, tmp_path, cluster=True)
    events = read_events(fb.run.bundle / "events.jsonl")
    async with open_page(binary) as page:
        await page.load((fb.run.bundle / "timeline.html").as_uri())
        stats = await page.wait_for(STATS)
        labels = await page.evaluate(
            "[...document.querySelectorAll('#lanes .lane-label')].map(t => t.textContent)"
        )
        await page.screenshot(tmp_path / "bundle-timeline.png", full_page=False)
        assert page.errors == []
    assert sorted(labels) == sorted(r.ip for r in fb.instance.replicas)
    assert stats["markerEvents"] == len(events)
    assert (tmp_path / "bundle-timeline.png").stat().st_size > 10_000


def _hms(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _seconds(iso: object) -> float:
    return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
