"""The simulated fleet: projects, instances, shards and replicas, derived from a seed.

The fleet is plain data built once from :class:`FleetConfig`, so unit tests can build and
inspect it without a server, and the same seed always yields the same ids, names and IPs.
The mix of cache modes, old engines and unhealthy instances is assigned by quota (then
shuffled) rather than by coin flips, so a small fleet still contains every case a test needs.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

CACHE_MODES = ("single", "ha", "cluster", "proxy", "ha_rw_split")
NOT_RUNNING_STATUSES = ("CREATING", "ERROR", "RESTARTING", "EXTENDING", "FROZEN")
_ENVS = ("prod", "stage", "dev")
_APPS = ("orders", "sessions", "catalog", "payments", "cart", "search", "auth", "inventory", "feeds")
_TEAMS = ("checkout", "platform", "identity", "growth")
_AZS = ("eu-de-01", "eu-de-02", "eu-de-03")


@dataclass(slots=True)
class FleetConfig:
    """How many instances, across how many projects, and how unhealthy the mix is."""

    instances: int = 12
    projects: int = 1
    seed: int = 1
    region: str = "eu-de"
    mode_weights: dict[str, float] = field(
        default_factory=lambda: {"single": 0.2, "ha": 0.4, "cluster": 0.2, "proxy": 0.1, "ha_rw_split": 0.1}
    )
    engine_3_rate: float = 1 / 12
    not_running_rate: float = 1 / 12
    max_shards: int = 4

    @classmethod
    def healthy(cls, instances: int = 12, projects: int = 1, seed: int = 1) -> FleetConfig:
        """Every instance RUNNING on Redis >= 4.0: what a benchmark wants."""
        return cls(instances=instances, projects=projects, seed=seed, engine_3_rate=0.0, not_running_rate=0.0)


@dataclass(frozen=True, slots=True)
class Project:
    project_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Replica:
    replication_id: str
    role: str
    ip: str
    node_id: str
    az_code: str
    group_name: str
    group_id: str


@dataclass(frozen=True, slots=True)
class Group:
    group_id: str
    group_name: str
    replicas: tuple[Replica, ...]


@dataclass(frozen=True, slots=True)
class Instance:
    instance_id: str
    project_id: str
    name: str
    engine_version: str
    status: str
    cache_mode: str
    spec_code: str
    ip: str
    port: int
    capacity_gb: int
    tags: tuple[tuple[str, str], ...]
    created_at: datetime
    groups: tuple[Group, ...]

    @property
    def replicas(self) -> tuple[Replica, ...]:
        return tuple(r for g in self.groups for r in g.replicas)

    @property
    def replica_count(self) -> int:
        return len(self.groups[0].replicas)

    @property
    def sharding_count(self) -> int:
        return len(self.groups)

    @property
    def collectable(self) -> bool:
        return self.status == "RUNNING" and self.engine_version != "3.0"


@dataclass(frozen=True, slots=True)
class Fleet:
    seed: int
    projects: tuple[Project, ...]
    instances: tuple[Instance, ...]

    def project(self, project_id: str) -> Project | None:
        return next((p for p in self.projects if p.project_id == project_id), None)

    def project_by_name(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)

    def in_project(self, project_id: str) -> list[Instance]:
        return [i for i in self.instances if i.project_id == project_id]

    def instance(self, project_id: str, instance_id: str) -> Instance | None:
        return next(
            (i for i in self.instances if i.instance_id == instance_id and i.project_id == project_id), None
        )

    def find(self, **attrs: object) -> list[Instance]:
        """Instances whose attributes equal every given value, e.g. ``find(cache_mode="cluster")``."""
        return [i for i in self.instances if all(getattr(i, k) == v for k, v in attrs.items())]


def project_id_for(seed: int, index: int) -> str:
    """32 lowercase hex characters, stable for a (seed, index)."""
    return hashlib.md5(f"emulator-project-{seed}-{index}".encode(), usedforsecurity=False).hexdigest()


def project_name_for(region: str, index: int) -> str:
    return f"{region}_emulated" if index == 0 else f"{region}_emulated-{index}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _quota(total: int, rate: float) -> int:
    """Round ``total * rate``, but keep at least one when the rate is positive and the fleet not tiny."""
    if rate <= 0:
        return 0
    return min(total, max(1 if total >= 4 else 0, round(total * rate)))


def _mode_plan(cfg: FleetConfig, rng: random.Random) -> list[str]:
    weights = {m: w for m, w in cfg.mode_weights.items() if w > 0}
    unknown = set(weights) - set(CACHE_MODES)
    if unknown:
        raise ValueError(f"unknown cache modes: {sorted(unknown)}")
    total_w = sum(weights.values())
    n = cfg.instances
    counts = {m: int(n * w / total_w) for m, w in weights.items()}
    if n >= len(weights):
        for m in weights:
            counts[m] = max(counts[m], 1)
    by_remainder = sorted(weights, key=lambda m: (n * weights[m] / total_w) % 1, reverse=True)
    i = 0
    while sum(counts.values()) < n:
        counts[by_remainder[i % len(by_remainder)]] += 1
        i += 1
    while sum(counts.values()) > n:
        biggest = max(counts, key=lambda m: counts[m])
        counts[biggest] -= 1
    plan = [m for m in weights for _ in range(counts[m])]
    rng.shuffle(plan)
    return plan


class _IpAllocator:
    def __init__(self, rng: random.Random) -> None:
        self._next = rng.randrange(0, 40) * 250

    def take(self) -> str:
        n = self._next
        self._next += 1
        return f"192.168.{(n // 250) % 256}.{n % 250 + 2}"


def _groups(mode: str, rng: random.Random, ips: _IpAllocator, max_shards: int) -> tuple[Group, ...]:
    if mode == "single":
        shards, slaves = 1, [0]
    elif mode == "ha":
        shards, slaves = 1, [1]
    elif mode == "ha_rw_split":
        shards, slaves = 1, [rng.choice((1, 2))]
    else:
        low = 3 if mode == "cluster" else 2
        shards = rng.randint(min(low, max_shards), max(min(low, max_shards), max_shards))
        per = rng.choice((1, 2)) if mode == "cluster" else 1
        slaves = [per] * shards
    groups: list[Group] = []
    for g in range(shards):
        gid, gname = _uuid(rng), f"group-{g}"
        replicas = tuple(
            Replica(
                replication_id=_uuid(rng),
                role="master" if r == 0 else "slave",
                ip=ips.take(),
                node_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                az_code=_AZS[(g + r) % len(_AZS)],
                group_name=gname,
                group_id=gid,
            )
            for r in range(1 + slaves[min(g, len(slaves) - 1)])
        )
        groups.append(Group(group_id=gid, group_name=gname, replicas=replicas))
    return tuple(groups)


def _spec_code(mode: str, capacity: int, shards: int, replicas: int) -> str:
    if mode == "single":
        return f"redis.single.xu1.large.{capacity}"
    if mode in ("cluster", "proxy"):
        return f"redis.{mode}.xu1.large.r{replicas}.{capacity}-{shards}"
    return f"redis.ha.xu1.large.r{replicas}.{capacity}"


def build_fleet(cfg: FleetConfig) -> Fleet:
    """The same ``cfg`` always gives the same fleet, field for field."""
    if cfg.instances < 0 or cfg.projects < 1:
        raise ValueError("need instances >= 0 and projects >= 1")
    rng = random.Random(f"fleet-{cfg.seed}")
    projects = tuple(
        Project(project_id=project_id_for(cfg.seed, i), name=project_name_for(cfg.region, i))
        for i in range(cfg.projects)
    )
    modes = _mode_plan(cfg, rng) if cfg.instances else []
    old_candidates = [i for i, m in enumerate(modes) if m in ("single", "ha")] or list(range(len(modes)))
    old = set(rng.sample(old_candidates, min(len(old_candidates), _quota(cfg.instances, cfg.engine_3_rate))))
    sick = set(rng.sample(range(len(modes)), _quota(cfg.instances, cfg.not_running_rate)))
    ips = _IpAllocator(rng)
    epoch = datetime(2023, 1, 1, tzinfo=UTC)
    instances: list[Instance] = []
    for i, mode in enumerate(modes):
        env, app = _ENVS[i % len(_ENVS)], _APPS[rng.randrange(len(_APPS))]
        groups = _groups(mode, rng, ips, cfg.max_shards)
        capacity = rng.choice((1, 2, 4, 8, 16, 32))
        instances.append(
            Instance(
                instance_id=_uuid(rng),
                project_id=projects[i % len(projects)].project_id,
                name=f"redis-{env}-{app}-{i + 1:02d}",
                engine_version="3.0" if i in old else rng.choice(("4.0", "5.0", "6.0", "7.0")),
                status=rng.choice(NOT_RUNNING_STATUSES) if i in sick else "RUNNING",
                cache_mode=mode,
                spec_code=_spec_code(mode, capacity, len(groups), len(groups[0].replicas)),
                ip=ips.take(),
                port=6379,
                capacity_gb=capacity,
                tags=(("env", env), ("app", app), ("team", _TEAMS[rng.randrange(len(_TEAMS))])),
                created_at=epoch + timedelta(seconds=rng.randrange(0, 700 * 86400)),
                groups=groups,
            )
        )
    return Fleet(seed=cfg.seed, projects=projects, instances=tuple(instances))
