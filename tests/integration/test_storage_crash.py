"""SIGKILL at random moments never leaves the archive inconsistent with its manifests."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from harvester.archive.manifest import manifest_folders, read_entries
from harvester.archive.manifest_writer import ManifestWriter
from harvester.archive.paths import PART_SUFFIX, SHA_LIST_NAME, TMP_SUFFIX
from harvester.archive.store import Archive
from harvester.archive.verify import verify
from tests.polling import DEADLINE

pytestmark = pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("2025-01-02", "2025-01-03", "incidents/20250103T040506Z-oom")
FILES_PER_BATCH = 45
BATCHES = 8
CONCURRENCY = 4

# The "harvester": archives one batch of files, skipping those its manifest already lists,
# as the engine does with archived_keys(). Some downloads restart from byte 0 midway.
_CHILD = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path, PurePosixPath
    import anyio
    from harvester.archive.manifest import ManifestEntry, read_entries
    from harvester.archive.manifest_writer import ManifestWriter
    from harvester.archive.store import Archive

    FOLDERS = {folders!r}

    def body(batch, j):
        seed = hashlib.sha256(f"{{batch}}/{{j}}".encode()).digest()
        return seed * (j * 97 % 3000)  # 0 .. ~96 KB

    async def one(archive, writer, batch, j, done):
        folder = FOLDERS[j % len(FOLDERS)]
        rel = f"proj/redis-{{batch}}-abcd1234/group-{{j % 3}}/redis-{{j}}.log"
        if rel in done[folder]:
            return
        data = body(batch, j)
        async with archive.open_part(folder, PurePosixPath(rel)) as part:
            if j % 5 == 0:
                await part.write(b"bytes of a download that failed half way")
                await part.reset()
            for i in range(0, len(data), 16384):
                await part.write(data[i : i + 16384])
            stored = await part.commit()
        await writer.record(folder, ManifestEntry(
            stored.relpath, stored.size, stored.sha256, "proj", "p-1", "eu-de", f"i-{{batch}}",
            f"redis-{{batch}}", f"group-{{j % 3}}", f"10.0.{{batch}}.{{j}}", None, f"log-{{j}}",
            "2025-01-02", f"redis-{{j}}.log", "2025-01-03T01:00:00+00:00",
            "2025-01-03T02:00:00+00:00", 1, f"run-{{batch}}",
        ))
        print("recorded", flush=True)  # lets the test aim its kill into the middle of the run

    async def main():
        root, batch = Path(sys.argv[1]), int(sys.argv[2])
        archive = Archive(root)
        archive.check_writable()
        writer = ManifestWriter(archive)
        done = {{f: {{e.path for e in read_entries(root, f)}} for f in FOLDERS}}
        print("ready", flush=True)
        limit = anyio.Semaphore({concurrency})

        async def worker(j):
            async with limit:
                await one(archive, writer, batch, j, done)

        async with anyio.create_task_group() as tg:
            for j in range({files}):
                tg.start_soon(worker, j)

    anyio.run(main)
    """
).format(folders=FOLDERS, concurrency=CONCURRENCY, files=FILES_PER_BATCH)


def start(root: Path, batch: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(batch)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((PART_SUFFIX, TMP_SUFFIX))]


def sha256sum_check(folder: Path) -> None:
    if not (folder / SHA_LIST_NAME).exists():
        return
    result = subprocess.run(
        ["sha256sum", "--strict", "--quiet", "-c", SHA_LIST_NAME],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def check_after_kill(root: Path) -> None:
    """The invariants a SIGKILL must never break, checked before any repair."""
    for name in manifest_folders(root):
        folder = root / name
        entries = {e.path: e for e in read_entries(root, name)}
        for entry in entries.values():
            data = (folder / entry.path).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.size, entry.sha256), entry.path
        sha256sum_check(folder)
        # The sha256 list may lag the jsonl by the line being recorded, never run ahead of it.
        if (folder / SHA_LIST_NAME).exists():
            for line in (folder / SHA_LIST_NAME).read_text().splitlines():
                digest, path = line.split("  ", 1)
                assert entries[path].sha256 == digest


def test_sigkill_at_random_moments_keeps_the_archive_consistent(tmp_path: Path) -> None:
    """However a run dies, manifests list only complete files, and the next run restores a clean archive."""
    root = tmp_path / "archive"
    rng = random.Random(20250103)
    # A fixed number of kills, not "as many as fit in 15 s": a loaded machine fits fewer.
    for batch in range(BATCHES):
        proc = start(root, batch)
        assert proc.stdout is not None
        for _ in range(rng.randrange(FILES_PER_BATCH)):
            proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.01))  # the kill's moment within a file: the point of the test
        proc.kill()
        proc.wait()

        check_after_kill(root)
        orphans = leftovers(root)
        assert Archive(root).remove_orphans() == len(orphans)
        assert leftovers(root) == []

        anyio.run(ManifestWriter(Archive(root)).reconcile_all)
        report = verify(root)
        assert (report.missing, report.corrupt) == ([], [])
        # Only files renamed into place but not yet recorded when the kill came: the next run
        # downloads them again and replaces them (the documented crash rule).
        assert len(report.extra) <= CONCURRENCY, report.extra

        recovery = start(root, batch)
        recovery.communicate(timeout=DEADLINE)
        assert recovery.returncode == 0
        report = verify(root)
        assert report.clean, report
        assert report.checked == FILES_PER_BATCH * (batch + 1)
        for name in manifest_folders(root):
            sha256sum_check(root / name)
