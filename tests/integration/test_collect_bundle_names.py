"""``harvester collect`` end to end in this process (embedded emulator): one bundle per collection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import stamina
import structlog

from harvester.cli import main
from harvester.commands import collect as incident
from harvester.emulator import FleetConfig, build_fleet
from tests.collect_helpers import bundle_files, logs_every_day, sha_list

FROZEN = datetime.now(UTC).replace(microsecond=0)


class _FrozenDatetime(datetime):
    """``datetime`` whose ``now()`` is always the same second: two runs start "at once"."""

    @classmethod
    def now(cls, tz: object = None) -> _FrozenDatetime:
        return cls.fromtimestamp(FROZEN.timestamp(), UTC)


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """``cli.main`` binds structlog to pytest's captured stderr; later tests must not write to it."""
    saved = structlog.get_config()
    hooks = stamina.instrumentation.get_on_retry_hooks()
    yield
    structlog.configure(**saved)
    stamina.instrumentation.set_on_retry_hooks(hooks)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "harvester.yaml"
    path.write_text(
        "archive: {root: " + json.dumps(str(tmp_path / "archive")) + "}\n"
        "emulator: {instances: 12, seed: 1, collect_delay: 0.05, log_size: 4096}\n"
        "collect: {poll_interval: 0.05, wait_timeout: 20}\n"
        "limits: {requests_per_second: 500}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.usefixtures("_restore_logging")
def test_two_collections_in_the_same_second_get_separate_bundles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two collections with the same label started within one second never write into one bundle."""
    monkeypatch.setattr(incident, "datetime", _FrozenDatetime)
    config = _config(tmp_path)
    today = [datetime.now(UTC).date()]
    ha, single = (
        next(
            i
            for i in build_fleet(FleetConfig(instances=12, seed=1)).instances
            if i.cache_mode == mode and i.collectable and logs_every_day(i, 1, today)
        )
        for mode in ("ha", "single")
    )
    bundles: list[Path] = []
    contents: list[set[str]] = []
    for inst in (ha, single):
        code = main(["collect", "--config", str(config), "--no-progress", "--instance", inst.name])
        assert code in (0, 1)
        bundles.append(Path(capsys.readouterr().out.strip().splitlines()[-1]))
        contents.append(bundle_files(bundles[-1]))

    assert bundles[0] != bundles[1]
    assert bundle_files(bundles[0]) == contents[0]
    assert not any(single.name in p for p in sha_list(bundles[0]))
