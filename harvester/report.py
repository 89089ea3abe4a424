"""The run's account, for people (stdout) and machines (``--summary-json``, ``runs/<id>.json``).

Both are computed from the outcome records only, so they can never disagree with the exit code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harvester.errors import exit_code
from harvester.models import FileResult, Outcome, RunSummary, tally


def _per_instance(summary: RunSummary) -> dict[tuple[str, str], list[FileResult]]:
    groups: dict[tuple[str, str], list[FileResult]] = defaultdict(list)
    for f in summary.files:
        groups[(f.project, f.instance_id)].append(f)
    return groups


def _day(f: FileResult) -> dict[str, Any]:
    return {
        "group_name": f.group_name,
        "replication_ip": f.replication_ip,
        "day": f.day.isoformat(),
        "file_name": f.file_name,
        "outcome": f.outcome.value,
        "reason": f.reason,
    }


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """The JSON summary: stable keys, documented in the README."""
    instances = []
    for (project, instance_id), files in sorted(_per_instance(summary).items()):
        n = tally(files)
        instances.append(
            {
                "project": project,
                "instance_id": instance_id,
                "instance_name": files[0].instance_name,
                "collected": summary.collections_by_instance.get(instance_id, 0),
                "downloaded": n.archived,
                "skipped": n.present,
                "failed": n.not_archived,
                "pending": n.pending,
                "no_log": n.no_log,
                "bytes": n.bytes,
                "failures": [_day(f) for f in files if f.outcome in (Outcome.FAILED, Outcome.CANCELLED)],
                "pending_days": [_day(f) for f in files if f.outcome is Outcome.PENDING],
                "no_log_days": [_day(f) for f in files if f.outcome is Outcome.NO_LOG],
            }
        )
    total = tally(summary.files, summary.instances)
    return {
        "run_id": summary.run_id,
        "started_at": summary.started_at.isoformat(),
        "finished_at": summary.finished_at.isoformat() if summary.finished_at else None,
        "config_path": summary.config_path,
        "exit_code": exit_code(summary),
        "fatal": summary.fatal,
        "interrupted_by_signal": summary.interrupted_by,
        "totals": {
            "downloaded": total.archived,
            "skipped": total.present,
            "failed": total.failed,
            "cancelled": total.cancelled,
            "pending": total.pending,
            "no_log": total.no_log,
            "bytes": total.bytes,
            "collections": summary.collections,
            "retries": summary.retries,
            "instances_failed": total.instances_failed,
            "instances_skipped": total.instances_skipped,
        },
        "instances": instances,
        "unreachable": dict(sorted(summary.unreachable.items())),
        "instance_problems": [
            {"project": i.project, "instance": i.instance, "reason": i.reason, "skipped": i.skipped}
            for i in summary.instances
        ],
    }


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def render_text(summary: RunSummary) -> str:
    """A short table an operator reads at 3 a.m.: what landed, what did not, and why."""
    data = summary_dict(summary)
    lines = [f"run {summary.run_id}: exit {data['exit_code']}"]
    if summary.fatal:
        lines.append(f"  stopped: {summary.fatal}")
    for inst in data["instances"]:
        extra = f", {inst['pending']} pending" if inst["pending"] else ""
        extra += f", {inst['no_log']} without a log" if inst["no_log"] else ""
        lines.append(
            f"  {inst['project']}/{inst['instance_name']}: {inst['downloaded']} downloaded "
            f"({_human_bytes(inst['bytes'])}), {inst['skipped']} already archived, {inst['failed']} failed"
            f"{extra}"
        )
        for tag, key in (("FAILED", "failures"), ("PENDING", "pending_days"), ("NO LOG", "no_log_days")):
            lines.extend(
                f"    {tag} {f['day']} {f['group_name'] or '-'} {f['replication_ip'] or '-'}: {f['reason']}"
                for f in inst[key]
            )
    for problem in data["instance_problems"]:
        tag = "skipped" if problem["skipped"] else "FAILED"
        lines.append(f"  {tag} {problem['project']}/{problem['instance']}: {problem['reason']}")
    t = data["totals"]
    lines.append(
        f"total: {t['downloaded']} downloaded ({_human_bytes(t['bytes'])}), {t['skipped']} already archived, "
        f"{t['failed'] + t['cancelled']} failed, {t['pending']} days pending, "
        f"{t['instances_failed']} instances failed, {t['retries']} retries"
        + (f", {t['no_log']} days without a log" if t["no_log"] else "")
    )
    return "\n".join(lines)


def problem_lines(summary: RunSummary) -> list[str]:
    """One ``harvester: error:`` line per thing that stopped work, none for a clean run.

    An unreachable endpoint first, as one line per project naming it and the cause; then the
    fatal reason; then every instance that could not be worked on (an instance the config names
    that DCS does not know, with the candidates; a project whose listing failed), so cron mail
    and a terminal both show what to fix without reading JSON logs. Instances deliberately
    skipped (not RUNNING, engine too old) are in the summary, not here, and so are the
    instances of a project whose endpoint was unreachable: that project has its one line.
    """
    lines = [f"harvester: error: project {p}: {why}" for p, why in sorted(summary.unreachable.items())]
    if summary.fatal:
        lines.append(f"harvester: error: {summary.fatal}")
    lines.extend(
        f"harvester: error: {problem.project}/{problem.instance}: {problem.reason}"
        for problem in summary.instances
        if not problem.skipped and problem.project not in summary.unreachable
    )
    return lines
