"""``harvester collect`` and the slow log: every page, oldest first, inside the window, capped at 7 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from harvester.emulator import Emulator, Instance
from harvester.emulator.slowlog import query as emulator_slowlog
from tests.collect_helpers import (
    bundle_files,
    collect_in_process,
    instance_folder,
    manifest_lines,
    projects_of,
    read_jsonl,
    write_config,
)
from tests.emulator_sigv import EmulatorFactory

PER_DAY = 300  # three pages of 100 per day: the client must page


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _expected_ids(emu: Emulator, inst: Instance, start: datetime, end: datetime) -> set[int]:
    """Ids of the emulator's slow-log entries with start <= t <= end."""
    entries = emulator_slowlog(
        emu.config.seed,
        inst,
        per_day=PER_DAY,
        start_ms=_ms(start),
        end_ms=_ms(end),
        now_ms=_ms(end),
    )
    return {e.id for e in entries}


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def _setup(tmp_path: Path, emulator_factory: EmulatorFactory) -> tuple[Emulator, Instance, Path]:
    emu = await emulator_factory(slowlog_per_day=PER_DAY)
    inst = next(i for i in emu.fleet.find(cache_mode="cluster") if i.collectable)
    config = write_config(tmp_path / "harvester.yaml", tmp_path / "archive", projects_of(emu))
    return emu, inst, config


def _check_order_and_uniqueness(entries: list[dict[str, object]]) -> None:
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "duplicate slow-log entries"
    keys = [(str(e["start_time"]), int(str(e["id"]))) for e in entries]
    assert keys == sorted(keys), "slow log is not oldest first"


async def test_slowlog_has_every_page_oldest_first(tmp_path: Path, emulator_factory: EmulatorFactory) -> None:
    """slowlog.jsonl holds every entry of the window (several pages), oldest first, without duplicates."""
    emu, inst, config = await _setup(tmp_path, emulator_factory)
    since = datetime.now(UTC) - timedelta(days=2)
    before = datetime.now(UTC)

    run = await collect_in_process(config, [inst.name], since=since)

    after = datetime.now(UTC)
    entries = read_jsonl(instance_folder(run.bundle, "emulated", inst) / "slowlog.jsonl")
    assert len(entries) > 2 * 100
    _check_order_and_uniqueness(entries)
    got = {int(str(e["id"])) for e in entries}
    assert _expected_ids(emu, inst, since, before) <= got <= _expected_ids(emu, inst, since, after)
    for e in entries:
        assert since - timedelta(seconds=1) <= _parse(str(e["start_time"])) <= after
    assert set(entries[0]) >= {"id", "command", "start_time", "duration", "shard_name"}
    assert not run.summary.instances


async def test_slowlog_window_follows_days(tmp_path: Path, emulator_factory: EmulatorFactory) -> None:
    """Without ``--since`` the slow log covers the log window: ``--days 1`` means from yesterday 00:00 UTC."""
    emu, inst, config = await _setup(tmp_path, emulator_factory)
    before = datetime.now(UTC)

    run = await collect_in_process(config, [inst.name], days=1)

    after = datetime.now(UTC)
    midnight = datetime.combine(before.date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    entries = read_jsonl(instance_folder(run.bundle, "emulated", inst) / "slowlog.jsonl")
    _check_order_and_uniqueness(entries)
    got = {int(str(e["id"])) for e in entries}
    assert _expected_ids(emu, inst, midnight, before) <= got <= _expected_ids(emu, inst, midnight, after)
    assert len(got) > PER_DAY  # yesterday alone fills three pages


async def test_since_older_than_seven_days_is_capped(
    tmp_path: Path, emulator_factory: EmulatorFactory
) -> None:
    """A ``--since`` 10 days back is capped to the API's 7 days instead of failing with DCS.4030."""
    _, inst, config = await _setup(tmp_path, emulator_factory)
    now = datetime.now(UTC)

    run = await collect_in_process(config, [inst.name], since=now - timedelta(days=10))

    assert not run.summary.instances, run.summary.instances
    assert run.exit_code == 0
    entries = read_jsonl(instance_folder(run.bundle, "emulated", inst) / "slowlog.jsonl")
    _check_order_and_uniqueness(entries)
    starts = [_parse(str(e["start_time"])) for e in entries]
    assert min(starts) >= now - timedelta(days=7) - timedelta(seconds=1)
    assert min(starts) < now - timedelta(days=6)  # the capped window still reaches back almost 7 days
    assert 6 * PER_DAY < len(entries) <= 8 * PER_DAY


async def test_since_and_until_bound_the_slowlog(tmp_path: Path, emulator_factory: EmulatorFactory) -> None:
    """``--since``/``--until`` give exactly the entries between them."""
    emu, inst, config = await _setup(tmp_path, emulator_factory)
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = now - timedelta(days=3), now - timedelta(days=2)

    run = await collect_in_process(config, [inst.name], since=since, until=until)

    entries = read_jsonl(instance_folder(run.bundle, "emulated", inst) / "slowlog.jsonl")
    _check_order_and_uniqueness(entries)
    assert {int(str(e["id"])) for e in entries} == _expected_ids(emu, inst, since, until)
    assert all(since <= _parse(str(e["start_time"])) <= until for e in entries)


async def test_no_slowlog_writes_none(tmp_path: Path, emulator_factory: EmulatorFactory) -> None:
    """``--no-slowlog`` leaves slowlog.jsonl out of the bundle and its manifest."""
    _, inst, config = await _setup(tmp_path, emulator_factory)

    run = await collect_in_process(config, [inst.name], slowlog=False)

    assert run.exit_code == 0, run.summary
    assert not any(p.endswith("slowlog.jsonl") for p in bundle_files(run.bundle))
    assert not any(e["path"].endswith("slowlog.jsonl") for e in manifest_lines(run.bundle))
    assert (instance_folder(run.bundle, "emulated", inst) / "instance.json").is_file()
