"""Run locks against another harvester process: a held lock is waited for, a killed one taken over.

Moved from the unit tier: these need a real second process holding a real ``flock``, and the
wait for a busy lock is real time (``run_lock`` polls until its timeout).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from harvester.archive.store import Archive
from harvester.errors import LockError


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


_HOLDER = textwrap.dedent(
    """
    import sys, anyio
    from pathlib import Path
    from harvester.archive.store import Archive

    async def main():
        async with Archive(Path(sys.argv[1])).run_lock("nightly", 5):
            print("locked", flush=True)
            await anyio.sleep(60)

    anyio.run(main)
    """
)


@pytest.fixture
def holder(archive: Archive) -> Iterator[subprocess.Popen[str]]:
    """Another harvester process holding the nightly lock."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(archive.root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


async def test_a_second_run_waits_then_fails_naming_the_holder(
    archive: Archive, holder: subprocess.Popen[str]
) -> None:
    """A second run on the same archive gives up after the timeout and says who holds it."""
    started = anyio.current_time()
    with pytest.raises(LockError) as info:
        async with archive.run_lock("nightly", 0.5):
            pass
    assert anyio.current_time() - started >= 0.5
    message = str(info.value)
    assert f"pid {holder.pid} on host" in message
    assert "nightly.lock" in message
    assert message.endswith("waited 0.5s")


async def test_a_killed_holder_does_not_block_the_next_run(
    archive: Archive, holder: subprocess.Popen[str]
) -> None:
    """After a run is SIGKILLed, the next run takes the lock and reports the stale holder."""
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    async with archive.run_lock("nightly", 2) as stale:
        assert stale is not None
        assert stale.pid == holder.pid
        contents = json.loads((archive.root / ".locks" / "nightly.lock").read_text())
        assert contents["pid"] == os.getpid()
