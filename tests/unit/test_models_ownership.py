"""Which replica a listed file or a pending day belongs to: one rule, for the engine and the planner."""

from __future__ import annotations

from datetime import date

from harvester.models import ArchiveKey, Instance, Replica, Target

DAY = date(2025, 3, 5)
CLUSTER = Target("p", "0" * 32, "eu-de", "c1", "cache", cache_mode="cluster")
SINGLE = Target("p", "0" * 32, "eu-de", "s1", "solo", cache_mode="single")


def key(target: Target, group: str, ip: str) -> ArchiveKey:
    return ArchiveKey(target.project_id, target.instance_id, group, ip, DAY)


def test_a_cluster_replica_owns_only_its_group_and_ip() -> None:
    """A replica of a cluster owns what carries its group and IP, nothing of its neighbours."""
    master = Replica(CLUSTER, "group-0", "10.0.0.1", "rid-m0", "master")
    assert master.owns(key(CLUSTER, "group-0", "10.0.0.1"))
    assert not master.owns(key(CLUSTER, "group-0", "10.0.0.2"))
    assert not master.owns(key(CLUSTER, "group-1", "10.0.0.1"))


def test_a_single_node_owns_everything_of_its_instance_and_nothing_else() -> None:
    """A single node has no replica id: every file of its instance is its own, another instance's is not."""
    node = Replica(SINGLE, "", "", None, "master")
    assert node.owns(key(SINGLE, "", ""))
    assert node.owns(key(SINGLE, "group-0", "10.0.0.9"))
    assert not node.owns(key(CLUSTER, "", ""))


def test_a_target_is_made_from_a_listed_instance_with_its_project() -> None:
    """The instance's name, mode, engine and status carry over; the project comes from the config."""
    listed = Instance("c1", "cache", "RUNNING", "6.0", cache_mode="cluster")
    target = Target.of(listed, project="p", project_id="0" * 32, region="eu-de")
    assert target == Target("p", "0" * 32, "eu-de", "c1", "cache", "cluster", "6.0", "RUNNING")
