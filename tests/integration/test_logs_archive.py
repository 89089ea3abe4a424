"""Reading what a real harvest and a real ``collect`` wrote: sources, records, events, roles.

The archive and the bundle come from the engine talking to the emulator over loopback, so
these tests read the layout and manifests the harvester really produces.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harvester.emulator import Emulator, Instance
from harvester.logs.model import Role
from harvester.logs.parse import ParseStats
from harvester.logs.pipeline import iter_events, iter_records
from harvester.logs.roles import role_spans
from harvester.logs.sources import discover
from harvester.models import Outcome
from tests import helpers
from tests.collect_helpers import collect_in_process, projects_of, write_config
from tests.emulator_sigv import EmulatorFactory


async def _archive(emulator_factory: EmulatorFactory, tmp_path: Path) -> tuple[Emulator, Path]:
    emu = await emulator_factory(instances=4, seed=7)
    settings = helpers.settings_for(emu, tmp_path)
    summary = await helpers.harvest(settings)
    assert helpers.code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    return emu, settings.archive.root


async def test_sources_of_a_harvested_archive_match_its_manifests(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Every archived log is found once, named by its manifest line (instance, id, shard, IP, day)."""
    _, root = await _archive(emulator_factory, tmp_path)
    sources = discover([root])
    entries = helpers.all_entries(root)
    assert len(sources) == len(entries) > 20
    by_path = {str(root / folder / e["path"]): e for folder, e in entries}
    for source in sources:
        entry = by_path[source.path]
        assert (source.instance, source.instance_id, source.shard, source.replica) == (
            entry["instance_name"],
            entry["instance_id"],
            entry["group_name"],
            entry["replication_ip"],
        )
        assert source.day is not None
        assert source.day.isoformat() == entry["log_date"]


async def test_a_window_reads_only_the_days_around_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """An hour on one day opens that day's files and the days beside it, not the whole week."""
    _, root = await _archive(emulator_factory, tmp_path)
    days = sorted({s.day for s in discover([root]) if s.day})
    middle = days[3]
    since = datetime(middle.year, middle.month, middle.day, 10, tzinfo=UTC)
    picked = discover([root], since=since, until=since + timedelta(hours=1))
    assert {s.day for s in picked} == {middle - timedelta(days=1), middle, middle + timedelta(days=1)}
    stats = ParseStats()
    records = list(iter_records(picked, stats=stats, since=since, until=since + timedelta(hours=1)))
    assert records
    assert all(since <= r.time < since + timedelta(hours=1) for r in records)


async def test_merged_records_cover_every_line_in_time_order(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """All files merged: every line accounted for, records in time order, no file skipped."""
    _, root = await _archive(emulator_factory, tmp_path)
    sources = discover([root])
    stats = ParseStats()
    records = list(iter_records(sources, stats=stats))
    assert [r.time for r in records] == sorted(r.time for r in records)
    total_lines = sum(Path(s.path).read_bytes().count(b"\n") for s in sources)
    assert stats.total("lines") == total_lines
    assert stats.total("records") == len(records)
    assert (
        stats.total("records") + stats.total("continuation") + stats.total("blank") + stats.total("unparsed")
        == total_lines
    )
    assert not stats.skipped_files
    assert {r.source.lane for r in records} == {s.lane for s in sources}


async def test_events_and_roles_of_a_harvested_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Events come out time-ordered, each pointing at a real record line of its replica's file;
    every replica gets role spans that tile the window, and its replica lines say replica."""
    emu, root = await _archive(emulator_factory, tmp_path)
    sources = discover([root])
    events = list(iter_events(sources, stats=ParseStats()))
    assert events
    assert [e.time for e in events] == sorted(e.time for e in events)
    lines_of: dict[str, list[str]] = {}
    for event in events:
        text = lines_of.setdefault(event.source.path, Path(event.source.path).read_text().splitlines())
        line = text[event.line - 1]
        assert event.time.strftime("%d %b %Y %H:%M:%S") in line, (event, line)
    start = min(e.time for e in events)
    end = max(e.time for e in events) + timedelta(seconds=1)
    spans = role_spans(events, start=start, end=end)
    lanes = {s.lane for s in sources}
    assert {sp.source.lane for sp in spans} == lanes
    for lane in lanes:
        mine = [sp for sp in spans if sp.source.lane == lane]
        assert mine[0].start == start
        assert mine[-1].end == end
        assert all(a.end == b.start for a, b in itertools.pairwise(mine))
    replica_roles = {r.ip: r.role for i in emu.fleet.instances for r in i.replicas}
    # The emulator's seeded failovers demote a master for a while: it then syncs as a replica.
    demoted = {e.source.lane for e in events if e.kind == "failover.demoted"}
    for event in events:
        if event.kind == "sync.started":  # only a replica syncs with a master
            assert event.role is Role.REPLICA
            assert replica_roles[event.source.replica] == "slave" or event.source.lane in demoted


async def test_a_collect_bundle_reads_like_the_archive(tmp_path: Path, emulator: Emulator) -> None:
    """A bundle's logs are found with their owners from its manifest, and yield events."""
    inst: Instance = next(i for i in emulator.fleet.find(cache_mode="ha") if i.collectable)
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emulator))
    run = await collect_in_process(config, [inst.name])
    assert run.exit_code == 0, run.summary
    sources = discover([run.bundle])
    today = emulator.clock.today()
    assert sorted((s.shard, s.replica, s.day) for s in sources) == sorted(
        (r.group_name, r.ip, today) for r in inst.replicas
    )
    assert {(s.instance, s.instance_id) for s in sources} == {(inst.name, inst.instance_id)}
    stats = ParseStats()
    events = list(iter_events(sources, stats=stats))
    assert {e.source.replica for e in events} == {r.ip for r in inst.replicas}
    assert not stats.skipped_files
    # The incidents folder reads every bundle; a root without date folders falls back to it.
    assert discover([run.root / "incidents"]) == sources
    assert discover([run.root]) == sources
