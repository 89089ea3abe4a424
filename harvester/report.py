"""The run's account, for people (stdout) and machines (``--summary-json``, ``runs/<id>.json``).

Both are computed from the outcome records only, so they can never disagree with the exit code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harvester.errors import exit_code
from harvester.models import FileResult, Outcome, RunSummary


def _per_instance(summary: RunSummary) -> dict[tuple[str, str], list[FileResult]]:
    groups: dict[tuple[str, str], list[FileResult]] = defaultdict(list)
    for f in summary.files:
        groups[(f.project, f.instance_id)].append(f)
    return groups


def _count(files: list[FileResult], outcome: Outcome) -> int:
    return sum(1 for f in files if f.outcome is outcome)


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
        instances.append(
            {
                "project": project,
                "instance_id": instance_id,
                "instance_name": files[0].instance_name,
                "collected": summary.collections_by_instance.get(instance_id, 0),
                "downloaded": _count(files, Outcome.ARCHIVED),
                "skipped": _count(files, Outcome.PRESENT),
                "failed": _count(files, Outcome.FAILED) + _count(files, Outcome.CANCELLED),
                "pending": _count(files, Outcome.PENDING),
                "no_log": _count(files, Outcome.NO_LOG),
                "bytes": sum(f.size for f in files if f.outcome is Outcome.ARCHIVED),
                "failures": [_day(f) for f in files if f.outcome in (Outcome.FAILED, Outcome.CANCELLED)],
                "pending_days": [_day(f) for f in files if f.outcome is Outcome.PENDING],
                "no_log_days": [_day(f) for f in files if f.outcome is Outcome.NO_LOG],
            }
        )
    files = summary.files
    return {
        "run_id": summary.run_id,
        "started_at": summary.started_at.isoformat(),
        "finished_at": summary.finished_at.isoformat() if summary.finished_at else None,
        "config_path": summary.config_path,
        "exit_code": exit_code(summary),
        "fatal": summary.fatal,
        "interrupted_by_signal": summary.interrupted_by,
        "totals": {
            "downloaded": _count(files, Outcome.ARCHIVED),
            "skipped": _count(files, Outcome.PRESENT),
            "failed": _count(files, Outcome.FAILED),
            "cancelled": _count(files, Outcome.CANCELLED),
            "pending": _count(files, Outcome.PENDING),
            "no_log": _count(files, Outcome.NO_LOG),
            "bytes": sum(f.size for f in files if f.outcome is Outcome.ARCHIVED),
            "collections": summary.collections,
            "retries": summary.retries,
            "instances_failed": sum(1 for i in summary.instances if not i.skipped),
            "instances_skipped": sum(1 for i in summary.instances if i.skipped),
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


def unreachable_lines(summary: RunSummary) -> list[str]:
    """One ``harvester: error:`` line per project whose endpoint could not be reached."""
    return [f"harvester: error: project {p}: {why}" for p, why in sorted(summary.unreachable.items())]
