"""What is archived: the archive keys a nightly run may skip, and when to distrust one.

A key counts as archived when a date folder's manifest lists its file and the file is on disk
as the manifest recorded it. The trust rule (:func:`archived_keys`) costs one ``stat`` per file
and re-hashes only files whose mtime moved since they were recorded, so a damaged file is
fetched again while DCS still has its day, and an untouched archive costs no reading.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

from harvester.archive.files import sha256_file
from harvester.archive.manifest import ManifestEntry, load, manifest_folders
from harvester.archive.paths import MANIFEST_NAME, listed_path
from harvester.models import ArchiveKey

__all__ = ["archived_keys"]

_log = logging.getLogger(__name__)


def archived_keys(root: Path, *, recheck_since: date | None = None) -> set[ArchiveKey]:
    """Keys whose file is in a date folder's manifest and on disk as the manifest recorded it.

    "As recorded" costs one ``stat`` per file: the size must match, and when the line carries
    ``mtime_ns`` and the file's mtime has moved since, the file is re-hashed; a file whose
    sha256 no longer matches (same-size corruption, an edit) is logged as
    ``manifest.archived_file_changed`` and is *not* archived, so the run downloads it again
    while DCS still has it (the new file replaces the damaged one atomically). A change that
    keeps both size and mtime (a flipped bit, an edit with the mtime put back) is not seen
    here; ``harvester verify`` finds it and ``verify --repair`` repairs it. Lines written before
    ``mtime_ns`` existed are trusted on size alone, as before: re-hashing every such file every
    night would cost more than the run. Only days from ``recheck_since`` on are re-hashed (older
    days can no longer be fetched, so their keys are returned on size alone).

    Incident bundles do not count: an incident copy does not make the nightly archive complete.
    Nor does a copy downloaded on the day it covers (``--include-today``): that log was still
    growing, so the next run replaces it with the complete one.
    """
    keys: set[ArchiveKey] = set()
    for name in manifest_folders(root, include_incidents=False):
        folder_path = root / name
        for entry in load(folder_path / MANIFEST_NAME).entries.values():
            path = listed_path(folder_path, entry.path)
            if path is None:
                continue
            try:
                key = entry.key
                st = os.stat(path, follow_symlinks=False)
                if st.st_size != entry.size or entry.downloaded_at[:10] <= entry.log_date:
                    continue  # changed size, or a partial snapshot of a day that was not over yet
                if (
                    entry.mtime_ns is not None
                    and st.st_mtime_ns != entry.mtime_ns
                    and (recheck_since is None or key.day >= recheck_since)
                    and not _still_intact(path, entry, f"{name}/{entry.path}")
                ):
                    continue
                keys.add(key)
            except (OSError, ValueError):
                continue
    return keys


def _still_intact(path: Path, entry: ManifestEntry, shown: str) -> bool:
    """Re-hash a file whose mtime moved; False (and a warning) when its bytes changed."""
    size, digest = sha256_file(path)
    if size == entry.size and digest == entry.sha256:
        _log.info("manifest.archived_file_rehashed", extra={"path": shown})
        return True
    _log.warning(
        "manifest.archived_file_changed",
        extra={
            "path": shown,
            "reason": "its sha256 no longer matches the manifest; it is fetched again while DCS has it",
        },
    )
    return False
