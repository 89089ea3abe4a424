"""Which instances, and which of their replicas, a run works on.

The config names instances by id or name, or asks to discover them by tags; DCS lists them
per project. Resolving turns both into :class:`~harvester.models.Target` records: every
project is listed side by side, ids named in the config are shown (that is how we learn their
names), and every instance is shown once more for ``cache_mode``, which only the show answer
carries. A project that cannot be listed is reported and the others go on; refused
credentials stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from harvester import plan
from harvester.engine.core import Core, Project
from harvester.errors import AuthError, HarvesterError, UsageError, is_fatal
from harvester.models import Group, Instance, Replica, Target

log = structlog.get_logger("harvester")


class Resolver:
    """Targets and topology for one run, through the core's clients."""

    def __init__(self, core: Core) -> None:
        self._core = core

    async def targets(
        self,
        only: Sequence[str] = (),
        *,
        strict: bool = False,
        skip_unusable: bool = True,
        keep: Callable[[str, str], bool] | None = None,
    ) -> list[Target]:
        """Every instance the config names or discovers, filtered by ``only`` (names or ids).

        With ``strict`` (incident mode), a name in ``only`` that matches several instances or
        none is a UsageError before anything else happens. ``keep`` (project id, instance id)
        narrows the set before the show calls, e.g. to this shard's instances.
        """
        core = self._core
        found: list[tuple[Project, Instance]] = []

        async def one(project: Project) -> None:
            try:
                found.extend((project, i) for i in await self._project_instances(project))
            except AuthError:
                raise
            except HarvesterError as exc:
                core.instance_failed(project.settings.name, "*", f"listing instances failed: {exc}")

        await core.for_each(core.projects, one)
        if only:
            found = filter_only(found, only, strict=strict)
        if keep is not None:  # e.g. this shard's instances: only those cost a show call
            found = [(p, i) for p, i in found if keep(p.project_id, i.instance_id)]
        found = await self._details(found)
        targets: list[Target] = []
        for project, info in sorted(
            found, key=lambda pi: (pi[0].settings.name, pi[1].name, pi[1].instance_id)
        ):
            target = Target.of(
                info,
                project=project.settings.name,
                project_id=project.project_id,
                region=project.settings.region,
            )
            reason = plan.should_harvest(info.status, info.engine_version)
            if reason is not None and skip_unusable:
                core.instance_failed(target.project, target.label, reason, skipped=True)
                continue
            targets.append(target)
        core.progress.instances(len(targets))
        log.info("harvest.instances_resolved", count=len(targets))
        return targets

    async def _project_instances(self, project: Project) -> list[Instance]:
        """Listing-level records; ids named in the config are shown (that is how we learn names)."""
        core = self._core
        ps = project.settings
        client = project.client
        if ps.instances is None:
            tags = dict(ps.discover.tags) if ps.discover is not None else None
            name = ps.discover.name if ps.discover is not None else None
            return await client.list_instances(name=name, tags=tags or None)
        result: list[Instance] = []
        ids = [ref.id for ref in ps.instances if ref.id is not None]
        by_name = [ref for ref in ps.instances if ref.name is not None]

        async def show(instance_id: str) -> None:
            try:
                result.append(await client.show_instance(instance_id))
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                core.instance_failed(ps.name, instance_id, str(exc))

        await core.for_each(ids, show)
        if by_name:
            listed = await client.list_instances()
            for match in plan.match_instances(by_name, listed, project=ps.name):
                if match.instance is None:
                    core.instance_failed(ps.name, match.ref.name or "?", str(match.error))
                else:
                    result.append(match.instance)
        return result

    async def _details(self, found: list[tuple[Project, Instance]]) -> list[tuple[Project, Instance]]:
        """``cache_mode`` is only in the show-instance answer: fetch it for each, concurrently."""
        core = self._core
        out: list[tuple[Project, Instance]] = []

        async def detail(pair: tuple[Project, Instance]) -> None:
            project, info = pair
            if info.cache_mode:
                out.append(pair)
                return
            try:
                out.append((project, await project.client.show_instance(info.instance_id)))
            except HarvesterError as exc:
                if is_fatal(exc):
                    raise
                core.instance_failed(project.settings.name, f"{info.name} ({info.instance_id})", str(exc))

        await core.for_each(found, detail)
        return out

    async def replicas(self, target: Target) -> list[Replica]:
        """The replicas to collect from; a single-node instance has one, without an id."""
        return (await self.topology(target))[1]

    async def topology(self, target: Target) -> tuple[list[Group], list[Replica]]:
        """Shards as DCS describes them, and the replicas they hold."""
        if target.cache_mode == "single":
            return [], [Replica(target, "", "", None, "master")]
        groups = await self._core.project_of(target).client.list_groups(target)
        return groups, [r for g in groups for r in g.replicas]


def filter_only(
    found: list[tuple[Project, Instance]], only: Sequence[str], *, strict: bool
) -> list[tuple[Project, Instance]]:
    """The instances ``--instance`` names (by id or name); a name that matches none is an error.

    ``strict``: a name matching several instances is an error too, listing them (``collect``
    must not guess); otherwise all of them are kept.
    """
    keep: dict[tuple[str, str], tuple[Project, Instance]] = {}
    for wanted in only:
        hits = [(p, i) for p, i in found if wanted in (i.instance_id, i.name)]
        if strict and len(hits) > 1:
            listing = ", ".join(f"{i.name} ({i.instance_id}, project {p.settings.name})" for p, i in hits)
            raise UsageError(f"--instance {wanted!r} matches {len(hits)} instances: {listing}; give an id")
        if not hits:
            close = sorted({c.name for c in plan.suggest(wanted, [i for _, i in found])})
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise UsageError(f"--instance {wanted!r} matches no configured instance{hint}")
        for p, i in hits:
            keep[(p.project_id, i.instance_id)] = (p, i)
    return list(keep.values())
