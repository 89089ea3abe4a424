"""A fabricated archive of many nights, for the benchmarks of planning against archive age.

Each night is a date folder as the harvester leaves it: the layout of
:func:`harvester.archive.paths.archive_relpath`, one ``manifest.jsonl`` line per file (with
``mtime_ns``, so the trust rule needs one ``stat`` and no re-hash) and the matching
``manifest-sha256.txt`` (so start-up reconciliation finds every folder intact). Writing a year of
nights for 500 instances file by file would cost ~700,000 inodes and gigabytes; instead every
payload is a hard link to a shared file of ``payload_size`` bytes (a new one every
60,000 links: ext4 allows 65,000 per inode): a ``stat`` sees the size the
manifest recorded, which is all the trust rule reads. ``flat=True`` also drops the per-instance
folders (one folder per day), for a quicker fabrication when only the manifests matter.

The fleet is the emulator's (same seed, same ids, groups and replica IPs), so a harvest against
the emulator sees these keys as its own. ``bench_harvest.py --archive-nights N`` runs this file as a
script (so the harvest's process does not carry the fabrication's memory)::

    python bench/archive_fixture.py --root DIR --instances 500 --nights 30 --before 2025-03-13
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePosixPath

import anyio

from harvester.archive.manifest import sha_line
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.paths import MANIFEST_NAME, SHA_LIST_NAME, archive_relpath, date_folder
from harvester.archive.store import Archive
from harvester.emulator import EmulatorConfig
from harvester.emulator.fleet import build_fleet
from harvester.models import ArchiveKey, Target

__all__ = ["FleetInstance", "emulator_fleet", "fabricate", "nights_before"]

PROJECT = "bench"  # the project label bench_harvest's config uses
_LINKS_PER_FILE = 60_000


@dataclass(frozen=True, slots=True)
class FleetInstance:
    target: Target
    replicas: tuple[tuple[str, str], ...]  # (group_name, replication_ip); ("", "") for a single node

    def keys(self, day: date) -> list[ArchiveKey]:
        t = self.target
        return [ArchiveKey(t.project_id, t.instance_id, g, ip, day) for g, ip in self.replicas]


def emulator_fleet(instances: int, seed: int = 1, mode: str | None = None) -> list[FleetInstance]:
    """The fleet the emulator serves for these settings (healthy, as the benchmarks run it)."""
    cfg = EmulatorConfig(
        instances=instances, seed=seed, healthy=True, mode_weights={mode: 1.0} if mode else None
    )
    fleet = build_fleet(cfg.fleet_config())
    out = []
    for inst in fleet.instances:
        target = Target(
            PROJECT, inst.project_id, cfg.region, inst.instance_id, inst.name, inst.cache_mode, "", "RUNNING"
        )
        if inst.cache_mode == "single":
            replicas: tuple[tuple[str, str], ...] = (("", ""),)
        else:
            replicas = tuple((r.group_name, r.ip) for r in inst.replicas)
        out.append(FleetInstance(target, replicas))
    return out


class _Shared:
    """The file the payloads link to, replaced by a fresh copy before it runs out of links."""

    def __init__(self, root: Path, body: bytes) -> None:
        self._root, self._body = root, body
        self._n, self._left = 0, 0
        self._path, self._mtime_ns = root, 0

    def link(self, path: Path) -> int:
        """Link ``path`` to the shared payload; returns that payload's mtime_ns."""
        if self._left == 0:
            self._n += 1
            # Beside the archive, not in it: the harvester claims only a root holding its own files.
            self._path = self._root.parent / f".{self._root.name}-payload-{self._n}"
            self._path.write_bytes(self._body)
            self._mtime_ns = self._path.stat().st_mtime_ns
            self._left = _LINKS_PER_FILE
        os.link(self._path, path)
        self._left -= 1
        return self._mtime_ns


def nights_before(first: date, nights: int) -> list[date]:
    """``nights`` days ending the day before ``first``, newest first."""
    return [first - timedelta(days=n) for n in range(1, nights + 1)]


def fabricate(
    root: Path,
    fleet: Iterable[FleetInstance],
    days: Iterable[date],
    *,
    payload_size: int = 16 * 1024,
    flat: bool = False,
) -> int:
    """Write one archived file per replica and day; returns how many files the manifests list."""
    root.mkdir(parents=True, exist_ok=True)
    body = b"x" * payload_size
    digest = hashlib.sha256(body).hexdigest()
    shared = _Shared(root, body)
    instances = list(fleet)
    files = 0
    for day in days:
        folder = root / date_folder(day)
        folder.mkdir(exist_ok=True)
        made: set[Path] = set()
        lines: list[str] = []
        sha: list[str] = []
        stamp = datetime.combine(day + timedelta(days=1), time(1, 0)).isoformat() + "+00:00"
        for inst in instances:
            t = inst.target
            for group, ip in inst.replicas:
                name = f"redis_{ip or 'node'}_{day.isoformat()}.log"
                rel = archive_relpath(t, group, name, ip)
                if flat:
                    rel = PurePosixPath("_".join(rel.parts))
                path = folder.joinpath(*rel.parts)
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                mtime_ns = shared.link(path)
                lines.append(
                    json.dumps(
                        {
                            "path": str(rel),
                            "size": payload_size,
                            "sha256": digest,
                            "project": t.project,
                            "project_id": t.project_id,
                            "region": t.region,
                            "instance_id": t.instance_id,
                            "instance_name": t.instance_name,
                            "group_name": group,
                            "replication_ip": ip,
                            "replication_id": None if not ip else f"rep-{ip}",
                            "log_id": f"log-{t.instance_id[:8]}-{ip}-{day.isoformat()}",
                            "log_date": day.isoformat(),
                            "file_name": name,
                            "downloaded_at": stamp,
                            "link_expires_at": stamp,
                            "attempts": 1,
                            "run_id": f"bench-{day.isoformat()}",
                            "mtime_ns": mtime_ns,
                        },
                        separators=(",", ":"),
                    )
                )
                sha.append(sha_line(str(rel), digest))
                files += 1
        (folder / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / SHA_LIST_NAME).write_text("".join(sha), encoding="utf-8")
    return files


def checked(root: Path) -> None:
    """Sweep and reconcile ``root`` once, as last night's run did at its start.

    A real archive of N nights was started up N times, so it carries the sweep and
    intact-manifest records (``.state/``) of the run before; a freshly fabricated one does not.
    """
    archive = Archive(root)
    archive.claim()
    archive.remove_orphans()
    anyio.run(ManifestWriter(archive).reconcile_all)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="the archive root to fill")
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mode", default=None, help="the emulator's --mode, if the run forces one")
    p.add_argument("--nights", type=int, required=True)
    p.add_argument(
        "--before", type=date.fromisoformat, required=True, help="the newest night is the day before"
    )
    p.add_argument("--payload-size", type=int, default=16 * 1024)
    p.add_argument("--flat", action="store_true")
    p.add_argument(
        "--checked",
        action="store_true",
        help="then run the start-up checks once, leaving the records in .state/ a nightly run leaves",
    )
    args = p.parse_args(argv)
    fleet = emulator_fleet(args.instances, args.seed, args.mode)
    days = nights_before(args.before, args.nights)
    files = fabricate(args.root, fleet, days, payload_size=args.payload_size, flat=args.flat)
    if args.checked:
        checked(args.root)
    print(
        json.dumps({"files": files, "nights": args.nights, "first": days[-1].isoformat() if days else None})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
