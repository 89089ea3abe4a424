"""Every file (and replica-day) the run needs ends in exactly one outcome, whatever goes wrong.

Storage failures are injected with a small Archive subclass (the tests run as root, so a
read-only folder would not stop a write); everything else is real: the engine, HTTP to the
emulator, the files on disk. Cancellation goes through an anyio cancel scope, as a signal does.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import anyio

from harvester.app import new_run_id, open_engine
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.part import PartWriter
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from harvester.commands.run import Nightly, NightlyOptions
from harvester.config.schema import Settings
from harvester.emulator import Emulator
from harvester.engine import Engine
from harvester.errors import StorageError
from harvester.models import Outcome, RunSummary
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import code_of, expected_keys, keys_of, settings_for
from tests.polling import eventually


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class FullDisk(Archive):
    """An archive whose disk is full after ``room`` files: every later write fails with ENOSPC."""

    def __init__(self, root: Path, room: int) -> None:
        super().__init__(root)
        self.room = room

    def open_part(
        self, folder: str, relpath: PurePosixPath, *, expected_size: int | None = None
    ) -> AbstractAsyncContextManager[PartWriter]:
        if self.room <= 0:
            exc = _oserror(errno.ENOSPC)
            raise StorageError(f"cannot write {folder}/{relpath}.part: {exc.strerror}") from exc
        self.room -= 1
        return super().open_part(folder, relpath, expected_size=expected_size)


class ReadOnlyFolder(Archive):
    """An archive with one date folder the harvester may not write (permission denied)."""

    def __init__(self, root: Path, folder: str) -> None:
        super().__init__(root)
        self.read_only = folder

    def open_part(
        self, folder: str, relpath: PurePosixPath, *, expected_size: int | None = None
    ) -> AbstractAsyncContextManager[PartWriter]:
        if folder == self.read_only:
            exc = _oserror(errno.EACCES)
            raise StorageError(f"cannot create folders for {folder}/{relpath}: {exc.strerror}") from exc
        return super().open_part(folder, relpath, expected_size=expected_size)


async def _run_with(settings: Settings, archive: Archive) -> RunSummary:
    run_id = new_run_id(datetime.now(UTC))
    async with open_engine(settings, run_id, progress=False, lock_name="run", lock_timeout=5.0) as engine:
        engine.archive = archive
        engine.manifest = ManifestWriter(archive)
        await Nightly(engine, NightlyOptions()).run()
        return engine.summary


def _one_outcome_each(summary: RunSummary, emu: Emulator) -> None:
    """Each needed replica-day has exactly one outcome record.

    A day of a single-node instance that never got a file is reported for the instance (the
    group and IP come from a listed file); compare those by instance and day.
    """
    single = {i.instance_id for i in emu.fleet.instances if i.cache_mode == "single"}

    def norm(instance: str, group: str, ip: str, day: str) -> tuple[str, str, str, str]:
        return (instance, "", "", day) if instance in single else (instance, group, ip, day)

    counted = Counter(
        norm(f.instance_id, f.group_name, f.replication_ip, f.day.isoformat()) for f in summary.files
    )
    assert set(counted) == {norm(*k) for k in expected_keys(emu)}
    assert set(counted.values()) == {1}


async def test_a_full_disk_fails_the_remaining_files_and_keeps_the_archived_ones(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """ENOSPC after 5 files: those stay archived and verified, every other file fails "disk full", exit 1."""
    emu = await emulator_factory(instances=3, seed=11, healthy=True)
    settings = settings_for(emu, tmp_path)
    root = settings.archive.root

    summary = await _run_with(settings, FullDisk(root, room=5))

    assert summary.fatal is None
    assert code_of(summary) == 1
    _one_outcome_each(summary, emu)
    archived = [f for f in summary.files if f.outcome is Outcome.ARCHIVED]
    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    assert len(archived) == 5
    assert len(failed) == len(expected_keys(emu)) - 5
    assert all(f.reason.startswith("disk full: ") for f in failed), {f.reason for f in failed}
    assert len(keys_of(root)) == 5
    assert verify(root).clean


async def test_a_folder_it_may_not_write_fails_only_its_files(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Permission denied on one day's folder fails that day's files with the reason; the rest is archived."""
    emu = await emulator_factory(instances=2, seed=11, healthy=True)
    settings = settings_for(emu, tmp_path)
    day = sorted({k[3] for k in expected_keys(emu)})[0]

    summary = await _run_with(settings, ReadOnlyFolder(settings.archive.root, day))

    assert code_of(summary) == 1
    _one_outcome_each(summary, emu)
    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    assert {f.day.isoformat() for f in failed} == {day}
    assert all("Permission denied" in f.reason and "disk full" not in f.reason for f in failed)
    assert keys_of(settings.archive.root) == {k for k in expected_keys(emu) if k[3] != day}


async def test_a_run_stopped_while_dcs_collects_accounts_for_every_day(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Interrupted while waiting for the collection: every needed day is reported as interrupted."""
    emu = await emulator_factory(instances=2, seed=11, healthy=True, collect_delay=60.0)
    settings = settings_for(emu, tmp_path)
    box: dict[str, Engine] = {}

    async def run() -> None:
        run_id = new_run_id(datetime.now(UTC))
        async with open_engine(settings, run_id, progress=False, lock_name="run", lock_timeout=5.0) as engine:
            box["engine"] = engine
            await Nightly(engine, NightlyOptions()).run()

    replicas = sum(len(i.replicas) for i in emu.fleet.instances)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await eventually(
            lambda: emu.counters.collections >= replicas and emu.counters.requests["dcs"] >= 20,
            what="the run waiting for every replica's collection",
            every=0.02,
        )
        tg.cancel_scope.cancel()

    summary = box["engine"].summary
    _one_outcome_each(summary, emu)
    assert {f.outcome for f in summary.files} == {Outcome.CANCELLED}
    assert {f.reason for f in summary.files} == {"run interrupted while waiting for DCS to collect"}
