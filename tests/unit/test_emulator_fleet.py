"""The seeded fleet: deterministic, realistic, and containing every case tests need."""

from __future__ import annotations

import re

from harvester.emulator import FleetConfig, build_fleet
from harvester.emulator.fleet import CACHE_MODES


def test_same_seed_same_fleet() -> None:
    """Two builds from one seed are identical; another seed differs."""
    assert build_fleet(FleetConfig(seed=7)) == build_fleet(FleetConfig(seed=7))
    assert build_fleet(FleetConfig(seed=7)) != build_fleet(FleetConfig(seed=8))


def test_project_ids_are_32_hex_and_named() -> None:
    """Project ids are 32 lowercase hex; the first is named eu-de_emulated."""
    fleet = build_fleet(FleetConfig(projects=3))
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.project_id) for p in fleet.projects)
    assert [p.name for p in fleet.projects] == ["eu-de_emulated", "eu-de_emulated-1", "eu-de_emulated-2"]
    assert {i.project_id for i in fleet.instances} == {p.project_id for p in fleet.projects}


def test_default_mix_covers_every_case() -> None:
    """Twelve instances include every cache mode, a Redis 3.0 and a non-RUNNING instance."""
    fleet = build_fleet(FleetConfig(instances=12))
    assert {i.cache_mode for i in fleet.instances} == set(CACHE_MODES)
    assert len(fleet.find(engine_version="3.0")) == 1
    assert len([i for i in fleet.instances if i.status != "RUNNING"]) == 1


def test_healthy_fleet_has_only_collectable_instances() -> None:
    """The benchmark fleet is all RUNNING on Redis >= 4.0."""
    fleet = build_fleet(FleetConfig.healthy(instances=50))
    assert all(i.collectable for i in fleet.instances)


def test_topology_per_cache_mode() -> None:
    """single has one node; ha one master + one slave; cluster several shards of master + 1-2 slaves."""
    fleet = build_fleet(FleetConfig(instances=40, seed=3))
    for inst in fleet.instances:
        roles = [[r.role for r in g.replicas] for g in inst.groups]
        assert all(r[0] == "master" and set(r[1:]) <= {"slave"} for r in roles)
        assert [g.group_name for g in inst.groups] == [f"group-{n}" for n in range(len(inst.groups))]
        if inst.cache_mode == "single":
            assert roles == [["master"]]
        elif inst.cache_mode == "ha":
            assert roles == [["master", "slave"]]
        elif inst.cache_mode == "cluster":
            assert inst.sharding_count >= 3
            assert all(2 <= len(r) <= 3 for r in roles)


def test_ips_unique_and_private() -> None:
    """Every instance and replica IP is a distinct 192.168.x.y address."""
    fleet = build_fleet(FleetConfig(instances=60))
    ips = [i.ip for i in fleet.instances] + [r.ip for i in fleet.instances for r in i.replicas]
    assert len(ips) == len(set(ips))
    assert all(re.fullmatch(r"192\.168\.\d{1,3}\.\d{1,3}", ip) for ip in ips)


def test_names_and_tags_look_real() -> None:
    """Names read like redis-prod-orders-01 and every instance carries env/app/team tags."""
    fleet = build_fleet(FleetConfig())
    for inst in fleet.instances:
        assert re.fullmatch(r"redis-(prod|stage|dev)-[a-z]+-\d{2}", inst.name)
        assert {k for k, _ in inst.tags} == {"env", "app", "team"}
