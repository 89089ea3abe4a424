"""Per-file cost of the archive's payload writer (``Archive.open_part``), no network involved.

Writes files through the writer exactly as a download does (open the part, write the body in
chunks, commit) and reports, per case: wall time per file, the event loop's own CPU per file
(``time.thread_time`` on the loop thread: what the nightly run is short of, see finding 3 in
``bench/README.md``), and MiB/s. Each case runs ``--repeat`` times; the median is shown.

    python bench/bench_part_writer.py                       # 2,000 x 16 KiB and 8 x 64 MiB
    python bench/bench_part_writer.py --dir /var/lib/x      # on the disk the archive lives on
    PYTHONPATH=/tmp/base python bench/bench_part_writer.py  # an older tree, for a before/after

Each file's size is passed as ``expected_size`` (what a download knows from Content-Length)
when the tree under test accepts it: a body that fits in one batch is then created, written,
fsynced and renamed by one worker-thread call. The chunk size is the download default
(1 MiB); the ``64 KiB chunks`` case feeds a large body in small pieces, as a slow network read
delivers it. Files are written one at a time
(``conc 1``: latency) and eight at a time (``conc 8``: the default download concurrency).
fsync is real, so the figures depend on the disk under ``--dir``. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from inspect import signature
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    files: int
    size: int
    chunk: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class Result:
    wall: float
    loop_cpu: float


def archive_class() -> Any:
    """``Archive`` from wherever the tree under test keeps it (before or after the move).

    The old name first: an editable install would otherwise serve the new module to an older
    tree put first on ``PYTHONPATH``.
    """
    for module in ("harvester.storage", "harvester.archive.store"):
        try:
            return importlib.import_module(module).Archive
        except ModuleNotFoundError:
            continue
    raise SystemExit("no harvester Archive found on sys.path")


def body(size: int, chunk: int) -> list[bytes]:
    """The chunks of one body: random bytes, so hashing does real work."""
    block = os.urandom(min(size, chunk))
    full, rest = divmod(size, len(block))
    return [block] * full + ([block[:rest]] if rest else [])


async def run_case(root: Path, case: Case) -> Result:
    archive = archive_class()(root)
    chunks = body(case.size, case.chunk)
    names = iter(range(case.files))
    # The body's length, as a download passes its Content-Length (trees that take it).
    sized = {"expected_size": case.size} if "expected_size" in signature(archive.open_part).parameters else {}

    async def worker() -> None:
        for i in names:
            rel = PurePosixPath("proj", "inst-0000abcd", f"group-{i % 16}", f"redis_{i}.log")
            async with archive.open_part("2025-01-02", rel, **sized) as part:
                for chunk in chunks:
                    await part.write(chunk)
                await part.commit()

    cpu = time.thread_time()
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(case.concurrency):
            tg.start_soon(worker)
    return Result(time.perf_counter() - start, time.thread_time() - cpu)


def measure(base: Path, case: Case, repeat: int) -> Result:
    walls: list[float] = []
    cpus: list[float] = []
    for n in range(repeat):
        root = base / f"{case.label}-{case.concurrency}-{n}".replace(" ", "_")
        result = anyio.run(run_case, root, case)
        walls.append(result.wall)
        cpus.append(result.loop_cpu)
        shutil.rmtree(root)
    return Result(statistics.median(walls), statistics.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000, help="how many 16 KiB files")
    parser.add_argument("--large", type=int, default=8, help="how many 64 MiB files")
    args = parser.parse_args()

    cases = [
        Case("16 KiB", args.small, 16 * KIB, MIB, 1),
        Case("16 KiB", args.small, 16 * KIB, MIB, 8),
        Case("64 MiB", args.large, 64 * MIB, MIB, 1),
        Case("64 MiB", args.large, 64 * MIB, MIB, 8),
        Case("64 MiB, 64 KiB chunks", args.large, 64 * MIB, 64 * KIB, 8),
    ]
    cases = [c for c in cases if c.files > 0]  # --small 0 or --large 0 skips those
    base = Path(tempfile.mkdtemp(prefix="bench-part-", dir=args.dir))
    cls = archive_class()
    where = importlib.import_module(cls.__module__).__file__
    print(f"writer: {cls.__module__} ({where}); median of {args.repeat}")
    print("| case | conc | files | ms/file (wall) | loop CPU ms/file | MiB/s |")
    print("|---|---|---|---|---|---|")
    try:
        for case in cases:
            r = measure(base, case, args.repeat)
            mib = case.files * case.size / MIB
            print(
                f"| {case.label} | {case.concurrency} | {case.files} | {1000 * r.wall / case.files:.3f} "
                f"| {1000 * r.loop_cpu / case.files:.3f} | {mib / r.wall:.1f} |",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
