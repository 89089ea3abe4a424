"""Make a folder refuse writes for a test, as root too (where permission bits do not bind).

Without root, ``chmod a-w`` is enough. As root (CI containers often are), the folder and its
files are also made immutable with ``chattr +i``, which binds root as well. The helper checks
that a write really is refused and skips the test when neither works here (a file system
without immutable flags), so no test silently passes without the condition it needs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _chattr(flag: str, path: Path) -> bool:
    tool = shutil.which("chattr")
    if tool is None:
        return False
    done = subprocess.run([tool, "-R", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


def _refuses_writes(folder: Path) -> bool:
    probe = folder / ".write-probe-of-the-test"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return True
    probe.unlink()
    return False


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Within the block, nothing can be created, changed or removed in ``folder`` (recursively)."""
    modes: dict[Path, int] = {}
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        modes[path] = stat.S_IMODE(mode)
        os.chmod(path, stat.S_IMODE(mode) & ~0o222)
    immutable = os.geteuid() == 0 and _chattr("+i", folder)
    try:
        if not _refuses_writes(folder):
            pytest.skip("cannot make a folder read-only here (root without chattr +i support)")
        yield
    finally:
        if immutable:
            _chattr("-i", folder)
        for path, mode in modes.items():
            os.chmod(path, mode)
