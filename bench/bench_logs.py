"""Reading speed of ``harvester logs`` and ``harvester events`` against ``grep`` on >= 1 GiB.

Builds (once; reused when present) a dated archive of Redis logs from the emulator's log
generator: ``--replicas`` replicas x ``--days`` days, ``--size-gib`` in all, in the real layout
with manifests. Then times, on the same files with a warm page cache, each in its own
process (peak RSS from ``wait4``):

- ``grep -h LITERAL FILES`` and ``harvester logs ROOT --grep LITERAL`` for a literal that
  never occurs (pure scan), a rare one and a common one (output-bound);
- ``harvester logs ROOT`` (every record, merged) and ``harvester events ROOT --json``;
- the grep run again on a 2-day window of the same lanes, to show RSS does not follow size.

    python bench/bench_logs.py                       # 1 GiB in /tmp/harvester-bench-logs
    python bench/bench_logs.py --size-gib 2 --replicas 40 --dir /data/bench

Output goes to /dev/null; MB/s is archive bytes read over wall time. Never run by the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from harvester.archive.manifest import ManifestEntry
from harvester.emulator.logs import LogSpec

MB = 1_000_000
MIB = 1 << 20
INSTANCE_ID = "b3e1c2d4-0000-4000-8000-00000000be7c"
FIRST_DAY = date(2026, 11, 20)


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    seconds: float
    cpu_seconds: float  # user + system of the child: wall time suffers when cores are shared
    bytes_read: int
    peak_rss_mib: float
    output_lines: int

    @property
    def mb_s(self) -> float:
        return self.bytes_read / MB / self.seconds

    @property
    def mb_cpu_s(self) -> float:
        return self.bytes_read / MB / self.cpu_seconds


def build(root: Path, size: int, replicas: int, days: int) -> list[Path]:
    """The archive (reused when its marker says it was built with the same shape)."""
    marker = root / ".bench-shape.json"
    shape = {"size": size, "replicas": replicas, "days": days}
    if marker.exists() and json.loads(marker.read_text()) == shape:
        return sorted(root.glob("20*/prod/*/*/*.log"))
    per_file = size // (replicas * days)
    started = time.monotonic()
    files = []
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        folder = root / day.isoformat()
        lines = []
        for r in range(replicas):
            ip = f"10.20.{r // 200}.{r % 200 + 10}"
            group = f"group-{r // 2}"
            rel = f"prod/bench-{INSTANCE_ID[:8]}/{group}/redis_{ip}_{day}.log"
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            spec = LogSpec(
                seed=7,
                ip=ip,
                day=day,
                size=per_file,
                full_size=per_file,
                role="master" if r % 2 == 0 else "slave",
                peer_ip=f"10.20.{(r ^ 1) // 200}.{(r ^ 1) % 200 + 10}",
            )
            digest = hashlib.sha256()
            with path.open("wb") as fh:
                for chunk in spec.iter_range():
                    fh.write(chunk)
                    digest.update(chunk)
            files.append(path)
            entry = ManifestEntry(
                path=rel,
                size=per_file,
                sha256=digest.hexdigest(),
                project="prod",
                project_id="0" * 32,
                region="eu-de",
                instance_id=INSTANCE_ID,
                instance_name="bench",
                group_name=group,
                replication_ip=ip,
                replication_id=None,
                log_id=f"{ip}-{day}",
                log_date=day.isoformat(),
                file_name=path.name,
                downloaded_at="2026-11-28T02:30:00+00:00",
                link_expires_at="2026-11-29T02:30:00+00:00",
                attempts=1,
                run_id="bench",
            )
            lines.append(entry.to_json() + "\n")
        (folder / "manifest.jsonl").write_text("".join(lines))
        print(f"  built {day} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    marker.write_text(json.dumps(shape))
    return files


def timed(label: str, argv: list[str], bytes_read: int) -> Run:
    """Run ``argv`` with stdout counted and dropped: wall and CPU time, peak RSS.

    ``/usr/bin/time`` runs the command, so the RSS and CPU figures are the command's own
    (a child forked from this Python would report this process's memory as its peak).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", report.name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        lines = 0
        while chunk := proc.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
        code = proc.wait()
        seconds = time.monotonic() - started
        rss_kib, user, system = report.read().split()[-3:]
    if code not in (0, 1):  # grep says 1 for "no match"
        raise SystemExit(f"{label}: exit {code}")
    return Run(label, seconds, float(user) + float(system), bytes_read, int(rss_kib) / 1024, lines)


def harvester(*args: str) -> list[str]:
    return [sys.executable, "-m", "harvester.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/harvester-bench-logs"))
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    files = build(args.dir, int(args.size_gib * (1 << 30)), args.replicas, args.days)
    total = sum(f.stat().st_size for f in files)
    print(f"archive: {len(files)} files, {total / MIB:.0f} MiB, {args.replicas} lanes", file=sys.stderr)
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)  # warm the cache

    root = str(args.dir)
    names = [str(f) for f in files]

    def days(*offsets: int) -> list[str]:
        wanted = [f"/{FIRST_DAY + timedelta(days=d)}/" for d in offsets]
        return [f for f in names if any(w in f for w in wanted)]

    def size(paths: list[str]) -> int:
        return sum(Path(f).stat().st_size for f in paths)

    runs: list[Run] = []
    for literal, what in (("NO-SUCH-TEXT", "absent"), ("somaxconn", "rare"), ("Background saving", "common")):
        runs.append(timed(f"grep -h '{literal}' ({what})", ["grep", "-h", literal, *names], total))
        argv = harvester("logs", root, "--grep", literal)
        runs.append(timed(f"harvester logs --grep '{literal}' ({what})", argv, total))
    # A 2-day window of the same 20 lanes: the files of those days (and, for harvester, the
    # day either side it also opens) are read; RSS should not change with the bytes read.
    since, until = str(FIRST_DAY + timedelta(days=1)), str(FIRST_DAY + timedelta(days=3))
    two_days = days(1, 2)
    argv = ["grep", "-h", "somaxconn", *two_days]
    runs.append(timed("grep -h somaxconn, 2-day window", argv, size(two_days)))
    argv = harvester("logs", root, "--grep", "somaxconn", "--since", since, "--until", until)
    runs.append(timed("harvester logs --grep somaxconn, 2-day window", argv, size(days(0, 1, 2, 3))))
    runs.append(timed("harvester logs (every record, merged)", harvester("logs", root), total))
    runs.append(timed("harvester events --json", harvester("events", root, "--json"), total))

    print("\n| run | wall s | CPU s | MB/s (wall) | MB/s (CPU) | peak RSS MiB | output lines |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r.label} | {r.seconds:.2f} | {r.cpu_seconds:.2f} | {r.mb_s:.0f} | {r.mb_cpu_s:.0f} "
            f"| {r.peak_rss_mib:.0f} | {r.output_lines} |"
        )
    for literal in ("absent", "rare", "common"):
        g = next(r for r in runs if r.label.startswith("grep") and f"({literal})" in r.label)
        h = next(r for r in runs if r.label.startswith("harvester logs --grep") and f"({literal})" in r.label)
        print(
            f"{literal} literal: harvester at {h.mb_s / g.mb_s:.0%} of grep's rate by wall time, "
            f"{h.mb_cpu_s / g.mb_cpu_s:.0%} by CPU time"
        )
    if args.json:
        print(json.dumps([r.__dict__ | {"mb_s": r.mb_s} for r in runs], indent=2))


if __name__ == "__main__":
    main()
