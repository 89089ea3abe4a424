"""The emulate command's argument mapping and the harvester config it writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from harvester.emulator import Emulator, EmulatorConfig, build_fleet
from harvester.emulator.cli import (
    build_parser,
    config_from_args,
    harvester_config,
    list_incidents,
    write_atomically,
)


def test_flags_map_onto_config() -> None:
    """Every flag lands in the matching EmulatorConfig field or fault knob."""
    argv = "--port 0 --instances 30 --projects 2 --seed 9 --log-size 1000 --fault-rate 0.1"
    argv += " --latency-ms 20 --link-ttl 60 --collect-delay 0.5"
    args = build_parser().parse_args(argv.split())
    cfg = config_from_args(args)
    assert (cfg.port, cfg.instances, cfg.projects, cfg.seed, cfg.log_size) == (0, 30, 2, 9, 1000)
    assert (cfg.link_ttl, cfg.collect_delay, cfg.host) == (60, 0.5, "127.0.0.1")
    assert cfg.faults.links.error_500_rate == cfg.faults.obs.error_500_rate == 0.1
    assert cfg.faults.iam.error_500_rate == 0.0
    assert cfg.faults.iam.latency_ms == 20


def test_default_port_is_8555() -> None:
    """Without --port the emulator listens on the documented 8555."""
    assert config_from_args(build_parser().parse_args([])).port == 8555


def test_written_config_is_valid_yaml(tmp_path: Path) -> None:
    """The harvester config parses as YAML with the expected shape and an export hint."""
    emu = Emulator(port=0)
    emu.port = 8555
    path = tmp_path / "sub" / "harvester.yaml"
    write_atomically(path, harvester_config(emu))
    text = path.read_text()
    data = yaml.safe_load(text)
    assert data["archive"] == {"root": "./archive"}
    assert data["auth"] == {
        "method": "aksk",
        "access_key_env": "OS_ACCESS_KEY",
        "secret_key_env": "OS_SECRET_KEY",
    }
    assert data["projects"][0]["endpoints"]["iam"] == "http://127.0.0.1:8555/v3"
    assert "export OS_ACCESS_KEY=EMULATORAK0000000000 OS_SECRET_KEY=" in text
    assert [p.name for p in path.parent.iterdir()] == ["harvester.yaml"]


def test_list_incidents_names_each_instance_day_with_an_incident() -> None:
    """--list-incidents prints two incidents per running instance over the eight retained days."""
    cfg = EmulatorConfig(seed=42, instances=6, clock_start=datetime(2024, 3, 17, 12, tzinfo=UTC).timestamp())
    rows = list_incidents(cfg)
    running = [i.name for i in build_fleet(cfg.fleet_config()).instances if i.collectable]
    assert sorted({r.split()[2] for r in rows}) == sorted(running)
    assert len(rows) == 2 * len(running)
    assert all(r[:10] >= "2024-03-10" for r in rows)
    assert any(" failover " in r and " -> " in r for r in rows)
    assert list_incidents(EmulatorConfig(seed=42, instances=6, incident_period=0)) == []
