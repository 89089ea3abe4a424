"""The collector settings a run leaves behind (harvester/heap.py).

A run that owns its process freezes the heap it started with and spaces young collections out;
a run called from inside another program (argv given to ``cli.main``) must leave that program's
collector as it found it, or the caller's garbage could stay frozen for ever. Each case runs in
a child interpreter, against the embedded emulator, so pytest's own collector is not touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harvester import heap

SCRIPT = """
import gc, json, sys
from harvester.cli import main
config = sys.argv[1]
before = {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
argv = ["run", "--config", config, "--no-progress"]
if sys.argv[2] == "console":
    sys.argv = ["harvester", *argv]
    code = main()
else:
    code = main(argv)
after = {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
print(json.dumps({"code": code, "before": before, "after": after}))
"""


def _run(tmp_path: Path, how: str) -> dict[str, object]:
    config = tmp_path / "harvester.yaml"
    config.write_text(
        "archive: {root: " + json.dumps(str(tmp_path / "archive")) + "}\n"
        "emulator: {instances: 2, seed: 1, collect_delay: 0.05, log_size: 2048}\n"
        "collect: {poll_interval: 0.05, wait_timeout: 20}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_run_that_owns_its_process_freezes_its_start_up_heap(tmp_path: Path) -> None:
    result = _run(tmp_path, "console")
    assert result["code"] == 0
    after = result["after"]
    assert isinstance(after, dict)
    assert after["frozen"] > 10_000, "the start-up heap (modules, config, index) was not frozen"
    assert after["threshold"] == [heap.YOUNG_THRESHOLD, heap.OLDER_RATIO, heap.OLDER_RATIO]


def test_a_run_inside_another_program_leaves_its_collector_alone(tmp_path: Path) -> None:
    result = _run(tmp_path, "embedded")
    assert result["code"] == 0
    assert result["after"] == result["before"]
