"""``harvester collect``: everything about a few instances, right now, in one bundle.

Same engine, auth, limits, retries, expiry rule, atomic writes and manifest format as the
nightly run; only the selection (fresh collections, today included, every replica or one)
and the destination (``<root>/incidents/<UTC timestamp>-<label>/``) differ, so incident
material never mixes with the complete-day archive.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.to_thread
import structlog

from harvester import plan
from harvester.app import SignalWatch, execute, new_run_id, owns_process, prepare
from harvester.archive.manifest import ManifestEntry
from harvester.archive.paths import MANIFEST_LOCK, archive_relpath, instance_dir, safe_component
from harvester.archive.store import Archive
from harvester.commands.finish import report_problems, write_summary_json
from harvester.engine import Destination, Engine
from harvester.errors import (
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_PARTIAL,
    ApiError,
    HarvesterError,
    UsageError,
    exit_code,
    is_fatal,
)
from harvester.models import FileResult, Group, Instance, LogFile, Outcome, Replica, RunSummary, Target
from harvester.report import render_text, summary_dict

log = structlog.get_logger("harvester")
SLOWLOG_MAX_AGE = timedelta(days=7) - timedelta(minutes=5)  # the API refuses a start older than 7 days


@dataclass(frozen=True, slots=True)
class IncidentOptions:
    only: tuple[str, ...]
    days: int
    replica: str
    slowlog: bool
    since: datetime | None
    until: datetime | None


def pick_replicas(replicas: Sequence[Replica], selector: str) -> list[Replica]:
    """``all``, ``master``, an IP or a replication id; single-node instances ignore it."""
    if selector == "all" or any(r.replication_id is None for r in replicas):
        return list(replicas)
    if selector == "master":
        return [r for r in replicas if r.role == "master"]
    return [r for r in replicas if selector in (r.replication_ip, r.replication_id)]


def slowlog_window(
    now: datetime, days: int, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """Defaults to the log window (today, or the N days before plus today), capped at 7 days."""
    end = min(until or now, now)
    if since is not None:
        start = since
    elif days == 0:
        start = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    else:
        start = datetime.combine(now.date() - timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    start = max(start, now - SLOWLOG_MAX_AGE)
    if start >= end:
        raise UsageError(f"slow-log window is empty: {start.isoformat()} .. {end.isoformat()}")
    return start, end


class Incident:
    def __init__(
        self, engine: Engine, options: IncidentOptions, name: str, reserved: list[str] | None = None
    ) -> None:
        self.engine = engine
        self.options = options
        self.name = name
        self.bundle = name
        self.reserved = reserved if reserved is not None else []

    async def run(self) -> RunSummary:
        # A bad slow-log window must stop the command before anything is collected.
        if self.options.slowlog:
            slowlog_window(self.engine.now(), self.options.days, self.options.since, self.options.until)
        # Instances the operator named explicitly are tried even when they look unusable:
        # DCS's own answer (DCS.4049 not running, DCS.4007 engine) is the report they need.
        targets = await self.engine.resolver.targets(self.options.only, strict=True, skip_unusable=False)
        # Only now, with every argument and name checked, does the bundle folder come to exist.
        self.bundle = await anyio.to_thread.run_sync(self.engine.archive.reserve_folder, self.name)
        self.reserved.append(self.bundle)
        await self.engine.for_each_instance(targets, self._collect_instance, explain=_explain)
        await self._reading()
        return self.engine.summary

    async def _reading(self) -> None:
        """``events.jsonl`` and ``timeline.html`` from the bundle's logs, once they are all in.

        Written like the other metadata (atomically, into the bundle's manifest, so into the
        tarball too). A failure here is reported, never at the cost of the logs already kept.
        """
        from harvester.commands.timeline import bundle_reading  # noqa: PLC0415 - only collect needs it

        engine = self.engine
        folder = engine.archive.folder(self.bundle)
        title = f"Incident {PurePosixPath(self.bundle).name}"
        try:
            events, page, account = await anyio.to_thread.run_sync(
                functools.partial(bundle_reading, folder, title=title, generated_at=engine.now())
            )
        except Exception as exc:  # any reading bug must leave the collected logs usable
            engine.instance_failed("", "events.jsonl/timeline.html", f"not written: {exc!r}")
            return
        for name, data in (("events.jsonl", events), ("timeline.html", page)):
            await self._write_bundle_file(PurePosixPath(name), data)
        log.info("incident.timeline_written", bundle=self.bundle, account=account)

    async def _write_bundle_file(self, relpath: PurePosixPath, data: bytes) -> None:
        """A file about the whole bundle: in its manifest with no instance fields."""
        engine = self.engine
        async with engine.archive.open_part(self.bundle, relpath, expected_size=len(data)) as part:
            await part.write(data)
            archived = await part.commit()
        entry = ManifestEntry.for_metadata(
            None, archived, run_id=engine.summary.run_id, written_at=engine.now()
        )
        await engine.manifest.record(self.bundle, entry)

    async def _collect_instance(self, target: Target) -> None:
        engine = self.engine
        client = engine.project_of(target).client
        base = instance_dir(target)
        info = await client.show_instance(target.instance_id)
        groups, replicas = await engine.resolver.topology(target)
        chosen = pick_replicas(replicas, self.options.replica)
        await self._write_json(target, base / "instance.json", dict(info.raw))
        if groups:
            await self._write_json(target, base / "groups.json", _groups_json(groups))
        if not chosen:
            raise UsageError(
                f"--replica {self.options.replica!r} matches no replica of {target.instance_name}"
            )

        before = {lf.log_id for lf in await engine.collector.listing(target, replicas)}
        # N days before, and today: the N-day window excludes the day still being written.
        posts = [(r, qt) for r in chosen for qt in sorted({0, self.options.days})]

        async def post(request: tuple[Replica, int]) -> None:
            await engine.collector.request(*request)

        await engine.for_each(posts, post)
        today = plan.today_utc(engine.now())
        days = frozenset({today} | plan.requested_days(today, (self.options.days,)))
        collected = await engine.collector.wait(
            target, dict.fromkeys(chosen, days), before, replicas=replicas
        )
        fresh = [lf for lf in collected.items if lf.log_id not in before]
        mine = [lf for lf in fresh if any(r.owns(lf.key) for r in chosen)]
        work: list[tuple[LogFile, Destination]] = []
        for lf in _latest_per_key(mine):
            status = plan.classify_status(lf.status)
            if status == "ready":
                dest = Destination(
                    self.bundle,
                    archive_relpath(target, lf.replica.group_name, lf.file_name, lf.replica.replication_ip),
                )
                work.append((lf, dest))
            else:
                reason = (
                    "DCS reported the log collection as failed" if status == "failed" else "not ready in time"
                )
                engine.record(FileResult.of(lf, Outcome.FAILED, reason=reason))
        wait_timeout = engine.settings.collect.wait_timeout
        for replica in chosen:
            listed_days = {lf.day for lf in mine if replica.owns(lf.key)}
            reason = collected.why(replica, wait_timeout)
            if replica in collected.timed_out and not listed_days:
                lf = LogFile(replica, "", "", engine.now().date(), "")
                engine.record(FileResult.of(lf, Outcome.FAILED, reason=reason))
                continue
            # The wait ended on a settled listing, not on proof: a day the bundle asked for and
            # did not get is reported as pending (a slow collection, or a quiet Redis), never
            # left out of the summary.
            for day in sorted(days - listed_days):
                lf = LogFile(replica, "", "", day, "")
                engine.record(FileResult.of(lf, Outcome.PENDING, reason=f"not in this bundle: {reason}"))
        await engine.fetcher.fetch_all(work)
        if self.options.slowlog:  # after the logs: a slow-log failure must not cost them
            await self._slowlog(target, info, base)

    async def _slowlog(self, target: Target, info: Instance, base: PurePosixPath) -> None:
        start, end = slowlog_window(
            self.engine.now(), self.options.days, self.options.since, self.options.until
        )
        client = self.engine.project_of(target).client
        try:
            entries = await client.slowlogs(info.instance_id, start=start, end=end)
        except HarvesterError as exc:
            if is_fatal(exc):
                raise
            self.engine.instance_failed(target.project, target.instance_name, f"slow log: {exc}")
            return
        entries.sort(key=_slowlog_order)
        lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        await self._write_bytes(target, base / "slowlog.jsonl", lines.encode())
        log.info(
            "incident.slowlog_written", entries=len(entries), start=start.isoformat(), end=end.isoformat()
        )

    async def _write_json(self, target: Target, relpath: PurePosixPath, data: object) -> None:
        await self._write_bytes(target, relpath, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    async def _write_bytes(self, target: Target, relpath: PurePosixPath, data: bytes) -> None:
        """Metadata goes through the same atomic writer and into the same manifest as logs."""
        engine = self.engine
        async with engine.archive.open_part(self.bundle, relpath, expected_size=len(data)) as part:
            await part.write(data)
            archived = await part.commit()
        entry = ManifestEntry.for_metadata(
            target, archived, run_id=engine.summary.run_id, written_at=engine.now()
        )
        await engine.manifest.record(self.bundle, entry)


def _explain(target: Target, exc: HarvesterError) -> str:
    """Why an instance failed; DCS's refusal comes with what the listing said about it."""
    if isinstance(exc, ApiError):
        return f"{exc} (instance status {target.status}, engine {target.engine_version})"
    return str(exc)


def _slowlog_order(entry: dict[str, Any]) -> tuple[str, int, str]:
    """Oldest first; ids are numbers, so 10 sorts after 9 within the same second."""
    raw_id = entry.get("id", "")
    try:
        numeric = int(raw_id)
    except (TypeError, ValueError):
        numeric = 0
    return (str(entry.get("start_time", "")), numeric, str(raw_id))


def _latest_per_key(files: Sequence[LogFile]) -> list[LogFile]:
    """One file per (replica, day): the listing's last item is the newest collection."""
    latest: dict[object, LogFile] = {}
    for lf in files:
        latest[lf.key] = lf
    return list(latest.values())


def _groups_json(groups: Sequence[Group]) -> dict[str, Any]:
    return {"group_count": len(groups), "group_list": [dict(g.raw) for g in groups]}


def bundle_name(now: datetime, label: str) -> str:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"incidents/{stamp}-{safe_component(label, max_len=60, mark_changes=False)}"


def main(args: argparse.Namespace, since: datetime | None, until: datetime | None) -> int:
    """``harvester collect``: one bundle about a few instances, now; its path is the last line."""
    with SignalWatch(restore=not owns_process(args)) as watch:
        settings = prepare(args)
        started = datetime.now(UTC)
        run_id = new_run_id(started)
        bundles: list[str] = []
        options = IncidentOptions(
            only=tuple(args.instance),
            days=args.days,
            replica=args.replica,
            slowlog=not args.no_slowlog,
            since=since,
            until=until,
        )
        if since is not None and until is not None and since >= until:
            raise UsageError("--since must be before --until")

        async def work(engine: Engine) -> None:
            await Incident(engine, options, bundle_name(started, args.label), bundles).run()

        summary = execute(settings, args, run_id, lock_name=None, work=work, watch=watch)
        return finish_bundle(summary, settings.archive.root, bundles[0] if bundles else None, args)


def finish_bundle(summary: RunSummary, root: Path, bundle: str | None, args: argparse.Namespace) -> int:
    """Close the bundle and print its path, only if it was written; returns the exit code.

    The path is the last line of stdout and scripts take it as "here is the bundle", so it is
    printed only once ``summary.json`` is in place. A bundle that was never created (archive
    not writable, credentials refused before anything was collected) or whose summary could
    not be written ends with the reason on stderr and exit 3 (130/143 when interrupted).
    """
    code = exit_code(summary)
    data = summary_dict(summary)
    data["bundle"] = str(root / bundle) if bundle is not None else None
    print(render_text(summary))
    written = False
    if bundle is not None:
        archive = Archive(root)
        try:
            archive.write_json_atomic(f"{bundle}/summary.json", data)
            written = True
        except HarvesterError as exc:
            reason = f"could not write summary.json: {exc}"
            print(f"harvester: error: bundle {root / bundle} is incomplete: {reason}", file=sys.stderr)
        if written:
            try:  # a finished bundle is a record: no lock file stays behind in it
                archive.remove_lock_file(f"{bundle}/{MANIFEST_LOCK}")
            except HarvesterError as exc:
                log.warning("incident.lock_file_kept", reason=str(exc))
        if written and args.tar:
            try:
                print(f"tarball: {archive.write_tar(bundle)}")
            except HarvesterError as exc:
                print(f"harvester: error: --tar: {exc}", file=sys.stderr)
                code = EXIT_PARTIAL if code == EXIT_OK else code
    write_summary_json(args, data)
    report_problems(summary)
    if not written and summary.interrupted_by is None:
        if bundle is None and summary.fatal is None:
            print("harvester: error: no bundle was created", file=sys.stderr)
        return EXIT_NOTHING
    if bundle is not None and written:
        print(root / bundle)
    return code
