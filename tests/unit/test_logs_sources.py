"""Source discovery: archive roots, date folders, bundles and bare files, with their owners."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from harvester.archive.manifest import ManifestEntry
from harvester.errors import UsageError
from harvester.logs.model import LogSource
from harvester.logs.sources import Discovery, discover, source_from_name
from tests import log_samples as s

INSTANCE_ID = "5560df16-cebf-4473-95c4-d1b573c16e79"
OTHER_ID = "9a0b1c2d-0000-4000-8000-000000000001"


def _entry(rel: str, body: bytes, *, instance: str, instance_id: str, ip: str, day: date) -> ManifestEntry:
    return ManifestEntry(
        path=rel,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        project="prod",
        project_id="0" * 32,
        region="eu-de",
        instance_id=instance_id,
        instance_name=instance,
        group_name="group-0",
        replication_ip=ip,
        replication_id=None,
        log_id=f"log-{ip}-{day}",
        log_date=day.isoformat(),
        file_name=f"redis_{ip}_{day}.log",
        downloaded_at="2026-11-27T02:30:00+00:00",
        link_expires_at="2026-11-28T02:30:00+00:00",
        attempts=1,
        run_id="run-1",
    )


def _folder(
    folder: Path, day: date, replicas: list[tuple[str, str, str]], *, listed: bool = True, body: str = ""
) -> list[Path]:
    """Write one manifest folder: ``replicas`` are (instance name, id, ip)."""
    lines = []
    paths = []
    for name, iid, ip in replicas:
        rel = f"prod/{name}-{iid[:8]}/group-0/redis_{ip}_{day}.log"
        data = (body or s.V5_MASTER_SYNC).encode()
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
        if listed:
            lines.append(_entry(rel, data, instance=name, instance_id=iid, ip=ip, day=day).to_json() + "\n")
    (folder / "manifest.jsonl").write_text("".join(lines), encoding="utf-8")
    return paths


def _archive(root: Path) -> None:
    for day in (date(2026, 11, 20), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)):
        _folder(
            root / day.isoformat(),
            day,
            [
                ("orders", INSTANCE_ID, "10.0.0.1"),
                ("orders", INSTANCE_ID, "10.0.0.2"),
                ("cart", OTHER_ID, "10.0.9.9"),
            ],
            body=s.V5_MASTER_SYNC.replace("17 Nov 2019", day.strftime("%d %b %Y")),
        )
    (root / "runs").mkdir()
    (root / "runs" / "run-1.json").write_text("{}")
    (root / "2026-11-26" / "prod" / f"orders-{INSTANCE_ID[:8]}" / "instance.json").write_text("{}")


def test_an_archive_root_yields_every_log_with_its_owner_from_the_manifest(tmp_path: Path) -> None:
    """Every replica-day of every date folder, named by the manifest; nothing else is a source."""
    _archive(tmp_path)
    sources = discover([tmp_path])
    assert len(sources) == 12
    first = sources[0]
    assert (first.instance, first.instance_id, first.project, first.shard, first.replica) == (
        "orders",
        INSTANCE_ID,
        "prod",
        "group-0",
        "10.0.0.1",
    )
    assert sources[-1].instance == "cart"
    assert all(Path(x.path).name.startswith("redis_") for x in sources)
    orders = [x for x in sources if x.replica == "10.0.0.1"]
    assert [x.day for x in orders] == [
        date(2026, 11, 20),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]


def test_the_window_picks_only_the_days_that_can_hold_it(tmp_path: Path) -> None:
    """A window on 25 Nov opens 24-26 Nov (one day either side for clock zones), not 20 Nov."""
    _archive(tmp_path)
    sources = discover(
        [tmp_path], since=datetime(2026, 11, 25, 8, tzinfo=UTC), until=datetime(2026, 11, 25, 9, tzinfo=UTC)
    )
    assert sorted({x.day for x in sources if x.day}) == [
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]
    later = discover([tmp_path], since=datetime(2026, 11, 26, 12, tzinfo=UTC))
    assert {x.day for x in later} == {date(2026, 11, 25), date(2026, 11, 26)}


@pytest.mark.parametrize("wanted", ["orders", INSTANCE_ID, INSTANCE_ID[:8], f"orders-{INSTANCE_ID[:8]}"])
def test_instance_filter_takes_a_name_an_id_a_prefix_or_the_folder_name(tmp_path: Path, wanted: str) -> None:
    """``--instance`` accepts what an operator has at hand."""
    _archive(tmp_path)
    sources = discover([tmp_path], instances=[wanted], replica="10.0.0.2")
    assert {(x.instance, x.replica) for x in sources} == {("orders", "10.0.0.2")}
    assert len(sources) == 4


def test_files_the_manifest_does_not_list_are_read_and_noted(tmp_path: Path) -> None:
    """A file without a manifest line (a crash before its record) is kept, named by its path."""
    day = date(2026, 11, 26)
    _folder(tmp_path / day.isoformat(), day, [("orders", INSTANCE_ID, "10.0.0.1")], listed=False)
    info = Discovery()
    sources = discover([tmp_path], info=info)
    assert len(sources) == 1
    assert (sources[0].instance, sources[0].instance_id, sources[0].replica, sources[0].day) == (
        "orders",
        INSTANCE_ID[:8],
        "10.0.0.1",
        day,
    )
    assert "not in the manifest" in info.notes[0]


def test_listed_but_missing_files_and_bad_manifest_lines_are_noted(tmp_path: Path) -> None:
    """A manifest line whose file is gone, a garbage line and a torn tail: noted, not fatal."""
    day = date(2026, 11, 26)
    folder = tmp_path / day.isoformat()
    paths = _folder(folder, day, [("orders", INSTANCE_ID, "10.0.0.1"), ("orders", INSTANCE_ID, "10.0.0.2")])
    paths[1].unlink()
    with (folder / "manifest.jsonl").open("a") as fh:
        fh.write('not json\n{"path": "torn')
    info = Discovery()
    sources = discover([folder], info=info)
    assert [x.replica for x in sources] == ["10.0.0.1"]
    assert any("listed in the manifest but missing" in n for n in info.notes)
    assert any("1 unreadable line(s) ignored" in n for n in info.notes)


def test_bare_files_take_replica_and_day_from_the_dcs_name(tmp_path: Path) -> None:
    """``redis_<ip>_<day>.log`` names the replica and day; any other name is its own lane."""
    dcs = s.write(tmp_path / "redis_192.168.0.142_2026-11-26.log", s.V5_MASTER_SYNC)
    other = s.write(tmp_path / "node-7.log", s.V5_MASTER_SYNC)
    sources = discover([dcs, other])
    assert sorted((x.replica, x.day) for x in sources) == [
        ("192.168.0.142", date(2026, 11, 26)),
        ("node-7", None),
    ]
    assert source_from_name(Path("x/redis_fe80::1_2026-11-26.log.gz")).replica == "fe80::1"


def test_a_file_inside_an_archive_is_named_by_its_manifest(tmp_path: Path) -> None:
    """A single archived file given on its own still gets its instance, id and shard."""
    _archive(tmp_path)
    target = (
        tmp_path
        / "2026-11-25"
        / "prod"
        / f"orders-{INSTANCE_ID[:8]}"
        / "group-0"
        / "redis_10.0.0.1_2026-11-25.log"
    )
    (source,) = discover([target])
    assert source == LogSource(
        str(target), "orders", INSTANCE_ID, "prod", "group-0", "10.0.0.1", date(2026, 11, 25)
    )


def test_bundles_and_the_incidents_folder(tmp_path: Path) -> None:
    """A bundle reads like a date folder; ``incidents/`` reads every bundle; the same bytes in an
    archive and a bundle are read once."""
    day = date(2026, 11, 26)
    _archive(tmp_path)
    bundle = tmp_path / "incidents" / "20261127T101500Z-oom"
    _folder(
        bundle,
        day,
        [("orders", INSTANCE_ID, "10.0.0.1")],
        body=s.V5_MASTER_SYNC.replace("17 Nov 2019", "26 Nov 2026"),
    )
    _folder(
        tmp_path / "incidents" / "20261127T111500Z-again",
        day,
        [("cart", OTHER_ID, "10.0.9.9")],
        body=s.V7_AOF,
    )
    assert [x.replica for x in discover([bundle])] == ["10.0.0.1"]
    assert len(discover([tmp_path])) == 12  # the root reads its date folders, not the bundles
    assert sorted(x.replica for x in discover([tmp_path / "incidents"])) == ["10.0.0.1", "10.0.9.9"]
    info = Discovery()
    both = discover([tmp_path / "2026-11-26", bundle], info=info)
    assert len(both) == 3
    assert info.duplicates == 1


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    """A typo in a path stops the command with one line naming it."""
    with pytest.raises(UsageError, match="no such file or folder"):
        discover([tmp_path / "nope"])
