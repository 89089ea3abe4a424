"""A hostile cloud: run-log names that attack paths, and links that point at another host.

Whatever DCS names a file, it lands inside the archive root as exactly one harmless path
component; a link to a host outside ``download.allowed_hosts`` is refused, reported with its
reason, and never fetched (the "other host" is a second emulator that counts every request).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from harvester.emulator import Emulator
from harvester.errors import expected_failure
from harvester.models import Outcome, RunSummary
from tests.emulator_sigv import EmulatorFactory
from tests.helpers import (
    all_entries,
    code_of,
    emulator_bytes,
    expected_keys,
    files_under,
    harvest,
    keys_of,
    payload_files,
    run_cli,
    settings_for,
    sha256sum_check,
)

ESCAPES = (Path("/tmp/escaped.log"), Path("/etc/cron.d/redis.log"))


async def _harvest_or_failure(emu: Emulator, tmp_path: Path) -> tuple[RunSummary | None, str | None]:
    settings = settings_for(emu, tmp_path)
    try:
        return await harvest(settings), None
    except BaseException as exc:  # a run that dies still must not have escaped the root
        failure = expected_failure(exc)
        if failure is None:
            raise
        return None, str(failure)


def _assert_contained(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    config = tmp_path / "harvester.yaml"
    for path in files_under(tmp_path):
        assert path == config or path.is_relative_to(root), f"written outside the archive: {path}"
        assert not path.is_symlink(), path
        assert os.path.realpath(path).startswith(str(root.resolve()) + os.sep) or path == config
    for folder, e in all_entries(root):
        parts = PurePosixPath(e["path"]).parts
        assert len(parts) == 4, f"{folder}: {e['path']!r} is not <project>/<instance>/<group>/<file>"
        for part in parts:
            assert part not in ("", ".", ".."), e["path"]
            assert not part.startswith((".", "-")), e["path"]
            assert "\\" not in part, e["path"]
            assert all(ch.isprintable() for ch in part), e["path"]
            assert len(part.encode()) <= 255, e["path"]
        assert (root / folder / e["path"]).resolve().is_relative_to((root / folder).resolve())


async def test_hostile_file_names_stay_inside_the_archive(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """File names like ../../etc/cron.d/x or NUL tricks are archived as sanitized names below the root."""
    emu = await emulator_factory(instances=4, seed=9, healthy=True, mode_weights={"single": 1.0})
    emu.faults.hostile.file_name_rate = 1.0
    before = {p: p.exists() for p in ESCAPES}

    summary, failure = await _harvest_or_failure(emu, tmp_path)

    _assert_contained(tmp_path)
    assert {p: p.exists() for p in ESCAPES} == before
    assert failure is None, failure
    assert summary is not None
    assert code_of(summary) == 0
    assert emu.counters.faults["hostile_file_name"] == len(expected_keys(emu))
    root = tmp_path / "archive"
    assert keys_of(root) == expected_keys(emu)
    served = emulator_bytes(emu)
    for folder, e in all_entries(root):
        assert (root / folder / e["path"]).read_bytes() == served[e["log_id"]]
    assert all(c.code == 0 for c in await sha256sum_check(root))
    verified = await run_cli("verify", root)
    assert verified.code == 0, verified.output


async def test_hostile_file_names_that_sanitize_alike_are_all_archived(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Two replicas of one shard both named '/etc/passwd' on a day: both files are archived, run exit 0."""
    emu = await emulator_factory(instances=4, seed=9, healthy=True, mode_weights={"cluster": 1.0})
    emu.faults.hostile.file_name_rate = 1.0

    summary, failure = await _harvest_or_failure(emu, tmp_path)

    _assert_contained(tmp_path)
    root = tmp_path / "archive"
    assert failure is None, f"the whole run died on a name collision: {failure}"
    assert summary is not None
    assert code_of(summary) == 0, [f.reason for f in summary.files if f.outcome is Outcome.FAILED]
    assert keys_of(root) == expected_keys(emu)
    assert len(payload_files(root)) == len(expected_keys(emu)), "a replica's file overwrote another's"


async def test_links_to_other_hosts_are_refused_reported_and_never_fetched(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Links to a host not in allowed_hosts: each such file fails with that reason, exit 1, no fetch."""
    emu = await emulator_factory(instances=3, seed=9, healthy=True)
    evil = await emulator_factory(instances=1, seed=9)  # same OBS keys: a fetch there would succeed
    settings = settings_for(emu, tmp_path)
    first = emu.fleet.instances[0]
    done = await harvest(settings, only=(first.name,))  # one instance safely archived beforehand
    assert code_of(done) == 0
    archived_before = payload_files(settings.archive.root)

    emu.faults.hostile.link_rate = 1.0
    emu.faults.hostile.link_base = f"http://localhost:{evil.port}"
    summary = await harvest(settings)

    assert code_of(summary) == 1
    failed = [f for f in summary.files if f.outcome is Outcome.FAILED]
    wanted = {k for k in expected_keys(emu) if k[0] != first.instance_id}
    assert len(failed) == len(wanted) == emu.counters.faults["hostile_link"]
    for f in failed:
        assert "'localhost'" in f.reason
        assert "download.allowed_hosts" in f.reason
        assert f.attempts <= 1
    assert {f.outcome for f in summary.files if f.instance_id == first.instance_id} == {Outcome.PRESENT}
    assert sum(evil.counters.requests.values()) == 0, "the foreign host was contacted"
    assert evil.counters.downloads == 0
    assert payload_files(settings.archive.root) == archived_before
    assert not [p for p in files_under(tmp_path) if p.name.endswith(".part")]
