"""Days without a file stay pending across nights: never given up on one night's timing.

Nights are simulated with the emulator's clock, which the engine follows (``helpers.night``):
moving ``emu.clock`` a day forward moves DCS's "today" and ours together. The emulator's
less tidy knobs make a collection's files appear at different times (``collect_stagger``),
list today's partial log after a ``query_time`` > 0 collection (``collect_extra_today``), or
never produce a requested day (``lost_days``, ``lost_rate``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from harvester.archive.state import STATE_PATH
from harvester.emulator import Emulator
from harvester.metrics import metrics_snapshot
from harvester.models import FileResult, Outcome, RunSummary
from harvester.report import render_text, summary_dict
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import NOON, TODAY, code_of, day, keys_of, night, settings_for

DAY = 86400.0
#: collect.wait_timeout for a night whose files all come promptly: it ends as soon as they are
#: listed, so a generous value costs nothing and a loaded machine cannot turn them pending.
PATIENT = 60.0


async def _cloud(factory: EmulatorFactory, *, start_days_ago: int = 0, **knobs: Any) -> Emulator:
    """Two healthy instances (one single node, one with replicas), the clock at noon of a day."""
    start = (NOON - timedelta(days=start_days_ago)).timestamp()
    return await factory(
        instances=2, seed=5, healthy=True, mode_weights={"single": 1.0, "ha": 1.0}, clock_start=start, **knobs
    )


def _replicas(emu: Emulator) -> list[tuple[str, str, str]]:
    return [(i.instance_id, r.group_name, r.ip) for i in emu.fleet.instances for r in i.replicas]


def _by(summary: RunSummary, outcome: Outcome) -> list[FileResult]:
    return [f for f in summary.files if f.outcome is outcome]


def _state(root: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    path = root / STATE_PATH
    if not path.exists():
        return {}
    days = json.loads(path.read_text())["days"]
    return {(d["instance_id"], d["replication_ip"], d["day"]): d for d in days}


async def test_files_that_appear_late_stay_pending_and_are_archived_when_they_appear(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Staggered files: the night ends with days pending (exit 0, listed), the next night archives them."""
    emu = await _cloud(emulator_factory, start_days_ago=3)
    assert {len(i.replicas) for i in emu.fleet.instances} == {1, 2}
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 3}})
    prompt = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": PATIENT}})
    root = settings.archive.root
    assert code_of(await night(prompt, emu)) == 0  # three nights ago: days -10..-4

    emu.clock.advance(3 * DAY)
    emu.config.collect_stagger = 10.0  # each day further back appears 10 s later than the one after it
    second = await night(settings, emu)

    assert code_of(second) == 0, [f.reason for f in _by(second, Outcome.FAILED)]
    pending = _by(second, Outcome.PENDING)
    replicas = len(_replicas(emu))
    assert {f.day for f in pending} == {day(2), day(3)}
    assert len(pending) == 2 * replicas
    assert {f.day for f in _by(second, Outcome.ARCHIVED)} == {day(1)}
    assert summary_dict(second)["totals"]["pending"] == 2 * replicas
    assert f"{2 * replicas} days pending" in render_text(second)
    assert f"PENDING {day(3).isoformat()}" in render_text(second)
    assert metrics_snapshot(second, 0, None).per_project["emulated"].days_pending == 2 * replicas
    assert all("collected again next night" in f.reason for f in pending)

    emu.clock.advance(DAY)
    emu.config.collect_stagger = 0.0  # tonight the files come promptly
    third = await night(prompt, emu)

    assert code_of(third) == 0
    assert not _by(third, Outcome.PENDING)
    assert {f.day for f in _by(third, Outcome.ARCHIVED)} == {day(0), day(2), day(3)}
    everything = {(i, g, ip, day(n).isoformat()) for i, g, ip in _replicas(emu) for n in range(11)}
    assert keys_of(root) == everything, "a day was lost"
    assert _state(root) == {}


async def test_files_that_come_after_each_nights_wait_are_never_given_up(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Older days' files always listed after the (short) wait: pending every night, never `no log
    produced`, archived the night they arrive within the wait."""
    emu = await _cloud(emulator_factory, start_days_ago=6)
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 30}})
    prompt = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": PATIENT}})
    root = settings.archive.root
    assert code_of(await night(prompt, emu)) == 0  # six nights ago: days -13..-7

    emu.clock.advance(3 * DAY)
    emu.config.collect_stagger = 60.0  # yesterday's file at once, each day further back a minute later
    for n in range(3):
        summary = await night(settings, emu)
        assert code_of(summary) == 0, [f.reason for f in _by(summary, Outcome.FAILED)]
        assert not _by(summary, Outcome.NO_LOG), "a day whose file came late was given up"
        back = 3 - n  # the emulator's today is `back` days before TODAY
        assert {f.day for f in _by(summary, Outcome.ARCHIVED)} == {day(back + 1)}
        assert {f.day for f in _by(summary, Outcome.PENDING)} == {day(5), day(6)}  # each night older
        # last night's late files are listed by now: their evidence is void, tonight's is one night
        assert all(len(r["evidence"]) <= 1 for r in _state(root).values())
        emu.clock.advance(DAY)

    emu.config.collect_stagger = 0.0  # tonight they come within the wait
    last = await night(prompt, emu)
    assert code_of(last) == 0
    assert not _by(last, Outcome.PENDING)
    assert not _by(last, Outcome.NO_LOG)
    everything = {(i, g, ip, day(n).isoformat()) for i, g, ip in _replicas(emu) for n in range(1, 14)}
    assert keys_of(root) == everything, "a day was lost"
    assert _state(root) == {}


async def test_todays_unrequested_file_is_no_evidence_of_a_quiet_day(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Today's partial log listed after a query_time=1 collection does not count against yesterday."""
    emu = await _cloud(emulator_factory, start_days_ago=1, collect_extra_today=True)
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 1}})
    assert code_of(await night(settings, emu)) == 0  # yesterday's night: days -8..-2
    emu.clock.advance(DAY)
    emu.config.lost_days = {day(1)}  # DCS never produces yesterday's file

    tonight = [await night(settings, emu), await night(settings, emu)]  # two runs, one night

    for summary in tonight:
        assert code_of(summary) == 0
        assert emu.counters.collections > 0
        assert {(f.day, f.outcome) for f in summary.files if f.day == day(1)} == {(day(1), Outcome.PENDING)}
    records = _state(settings.archive.root)
    assert {d for _, _, d in records} == {day(1).isoformat()}
    assert all(r["evidence"] == [] and r["collections"] == 2 for r in records.values())

    emu.clock.advance(DAY)  # the next night's collection produces the later day: one night of evidence
    following = await night(settings, emu)
    assert code_of(following) == 0
    late = [f for f in following.files if f.day == day(1)]
    assert {f.outcome for f in late} == {Outcome.PENDING}, "today's file was counted as evidence"
    assert all("quiet on 1 of 2 nights" in f.reason for f in late)


async def test_a_day_quiet_on_two_nights_is_reported_once_as_no_log(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A day DCS produces no file for while producing later ones, on two nights: `no log produced`, once."""
    emu = await _cloud(emulator_factory, lost_days={day(2)})
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 1}})
    replicas = len(_replicas(emu))

    first = await night(settings, emu)
    again = await night(settings, emu)  # the same night: no second night of evidence
    emu.clock.advance(DAY)
    second = await night(settings, emu)
    emu.clock.advance(DAY)
    collections_before = emu.counters.collections
    third = await night(settings, emu)

    for summary in (first, again):
        assert code_of(summary) == 0
        assert {f.day for f in _by(summary, Outcome.PENDING)} == {day(2)}
        assert not _by(summary, Outcome.NO_LOG)
    assert code_of(second) == 0
    no_log = _by(second, Outcome.NO_LOG)
    assert len(no_log) == replicas
    assert {f.day for f in no_log} == {day(2)}
    assert all(f.reason.startswith("no log produced: ") for f in no_log)
    assert not _by(second, Outcome.PENDING)
    assert "NO LOG" in render_text(second)
    assert code_of(third) == 0
    assert not [f for f in third.files if f.day == day(2)], "a final day was reported again"
    # The third night only needs the new yesterday: query_time=1, which does not cover day -2.
    assert emu.counters.collections - collections_before == replicas
    assert summary_dict(third)["totals"]["no_log"] == 0


async def test_a_day_that_leaves_the_window_unharvested_is_a_failure_once(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A pending day DCS drops after 7 days is reported once as a failure (exit 1), then forgotten."""
    emu = await _cloud(emulator_factory, lost_days={day(7)})
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 1}})
    replicas = len(_replicas(emu))
    first = await night(settings, emu)
    assert code_of(first) == 0
    assert {f.day for f in _by(first, Outcome.PENDING)} == {day(7)}

    emu.clock.advance(DAY)
    with structlog.testing.capture_logs() as logs:
        second = await night(settings, emu)

    assert code_of(second) == 1
    failed = _by(second, Outcome.FAILED)
    assert len(failed) == replicas
    assert {f.day for f in failed} == {day(7)}
    for f in failed:
        assert f.reason == (
            "left DCS's 7-day window unharvested: "
            f"no file listed after 1 collection(s) since {TODAY.isoformat()}"
        )
    expired = [e for e in logs if e["event"] == "harvest.day_expired"]
    assert len(expired) == replicas
    assert {e["log_level"] for e in expired} == {"warning"}
    assert {f.day for f in _by(second, Outcome.ARCHIVED)} == {day(0)}

    emu.clock.advance(DAY)
    third = await night(settings, emu)
    assert code_of(third) == 0
    assert not _by(third, Outcome.FAILED)
    assert _state(settings.archive.root) == {}


async def test_a_collection_accepted_but_never_done_leaves_its_days_pending(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """204 on collect, then no file at all: the days stay pending without evidence (exit 0), then land."""
    emu = await _cloud(emulator_factory, lost_rate=1.0)
    settings = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": 0.5}})
    replicas = len(_replicas(emu))

    first = await night(settings, emu)

    assert code_of(first) == 0
    pending = _by(first, Outcome.PENDING)
    assert len(pending) == 7 * replicas
    assert all("no file within collect.wait_timeout (0.5s)" in f.reason for f in pending)
    assert all(r["evidence"] == [] for r in _state(settings.archive.root).values())

    emu.config.lost_rate = 0.0
    prompt = settings_for(emu, tmp_path, auth="password", extra={"collect": {"wait_timeout": PATIENT}})
    later = await night(prompt, emu)
    assert code_of(later) == 0
    assert len(_by(later, Outcome.ARCHIVED)) == 7 * replicas
    assert _state(settings.archive.root) == {}
