"""What the archive holds: the manifest entries of each folder and their sha256 list.

Each manifest folder (a date folder ``YYYY-MM-DD`` or an incident bundle
``incidents/<stamp>-<label>``) holds:

``manifest.jsonl``
    one JSON object per archived file, appended under an flock with ``O_APPEND`` + fsync.
    The file is append-only, so when the same ``path`` appears twice **the later line wins**
    (it describes the file that replaced the earlier one). A torn last line (a crash mid-append)
    is ignored by readers and cut off by the next writer before it appends.
``manifest-sha256.txt``
    ``<hex>  <path>`` lines for ``sha256sum -c``, in manifest order. It is derived from
    ``manifest.jsonl`` and never disagrees with the files on disk, though it can lag the jsonl
    by a line after a crash between the two appends; start-up reconciliation closes that lag.

This module is the format: the entry, reading a folder's entries, and the sha256 list's lines.
Writing is :mod:`~harvester.archive.manifest_writer`; trusting entries is
:mod:`~harvester.archive.index`; checking them is :mod:`~harvester.archive.verify`.

Crash rule: an entry is recorded only after its file was renamed into place. A crash between
the rename and the record leaves a complete file that no manifest lists. Rather than adopt it
(its link, log id and attempts are unknown by then), the next run does not find its key in the
manifest, downloads it again and atomically replaces the file; the manifest then lists it once.
Until then :func:`~harvester.archive.verify.verify` reports it under ``extra``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from harvester.archive.paths import INCIDENTS, MANIFEST_NAME, folder_parts, is_date_name
from harvester.models import ArchivedFile, ArchiveKey, LogFile, Replica, SignedLink, Target

__all__ = [
    "ManifestEntry",
    "Parsed",
    "load",
    "manifest_folders",
    "parse_lines",
    "read_entries",
    "sha_line",
    "sha_list",
]

_log = logging.getLogger(__name__)

_INT_FIELDS = frozenset({"size", "attempts"})
_OPTIONAL_FIELDS = frozenset({"replication_id"})
# Fields newer writers add (int or null); a line without them is still valid.
_ABSENT_OK = frozenset({"mtime_ns"})


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One archived file, as a line of ``manifest.jsonl`` (keys in this order)."""

    path: str  # relative to the manifest folder, POSIX separators
    size: int
    sha256: str
    project: str
    project_id: str
    region: str
    instance_id: str
    instance_name: str
    group_name: str
    replication_ip: str
    replication_id: str | None
    log_id: str
    log_date: str  # ISO date
    file_name: str
    downloaded_at: str  # ISO 8601, UTC
    link_expires_at: str  # ISO 8601, UTC
    attempts: int
    run_id: str
    # The file's st_mtime_ns right after it was recorded; None on lines older writers wrote.
    # A file whose mtime moved since is re-hashed before a run trusts it (archived_keys).
    mtime_ns: int | None = None

    @classmethod
    def for_metadata(
        cls, target: Target | None, archived: ArchivedFile, *, run_id: str, written_at: datetime
    ) -> ManifestEntry:
        """An entry for a file we wrote ourselves (instance.json, slowlog.jsonl): no log, no link.

        ``target`` None: a file about the whole bundle (events.jsonl, timeline.html), whose
        instance fields stay empty.
        """
        if target is None:
            target = Target(project="", project_id="", region="", instance_id="", instance_name="")
        return cls.for_file(
            LogFile(
                Replica(target, "", "", None), "", PurePosixPath(archived.relpath).name, written_at.date(), ""
            ),
            archived,
            None,
            attempts=1,
            run_id=run_id,
            downloaded_at=written_at,
        )

    @classmethod
    def for_file(
        cls,
        log: LogFile,
        archived: ArchivedFile,
        link: SignedLink | None,
        *,
        attempts: int,
        run_id: str,
        downloaded_at: datetime,
    ) -> ManifestEntry:
        """Build the entry from the pipeline's records, so no caller spells out 18 fields."""
        target = log.replica.target
        return cls(
            path=archived.relpath,
            size=archived.size,
            sha256=archived.sha256,
            project=target.project,
            project_id=target.project_id,
            region=target.region,
            instance_id=target.instance_id,
            instance_name=target.instance_name,
            group_name=log.replica.group_name,
            replication_ip=log.replica.replication_ip,
            replication_id=log.replica.replication_id,
            log_id=log.log_id,
            log_date=log.day.isoformat(),
            file_name=log.file_name,
            downloaded_at=downloaded_at.isoformat(),
            link_expires_at=link.expires_at.isoformat() if link is not None else "",
            attempts=attempts,
            run_id=run_id,
        )

    @property
    def key(self) -> ArchiveKey:
        """The archive key; raises ValueError when ``log_date`` is not an ISO date."""
        return ArchiveKey(
            self.project_id,
            self.instance_id,
            self.group_name,
            self.replication_ip,
            date.fromisoformat(self.log_date),
        )

    def to_json(self) -> str:
        return json.dumps(
            {f.name: getattr(self, f.name) for f in fields(self)},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> ManifestEntry:
        """Parse one line; unknown keys are ignored so newer writers do not break older readers."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("a manifest line must be a JSON object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in _ABSENT_OK:
                    continue
                raise ValueError(f"manifest line lacks {f.name!r}")
            value = data[f.name]
            if f.name in _ABSENT_OK:
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            elif f.name in _INT_FIELDS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str) or (value is None and f.name in _OPTIONAL_FIELDS)
            if not ok:
                raise ValueError(f"manifest key {f.name!r} has the wrong type")
            values[f.name] = value
        return cls(**values)


# --- reading -------------------------------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    """What a manifest's complete lines say: the entry per path (the later line wins)."""

    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unparseable lines


def parse_lines(data: bytes, parsed: Parsed, first_line: int = 1) -> int:
    """Parse the complete lines of ``data``; returns how many bytes they span (the rest is torn)."""
    end = data.rfind(b"\n") + 1
    for number, raw in enumerate(data[:end].split(b"\n")[:-1], start=first_line):
        if not raw.strip():
            continue
        try:
            entry = ManifestEntry.from_json(raw)
        except ValueError:
            parsed.bad_lines.append(number)
            continue
        parsed.entries[entry.path] = entry  # the later line wins; dicts keep first position
    return end


def load(manifest: Path) -> Parsed:
    """Parse a manifest.jsonl; a missing file is empty, unreadable lines are logged and counted."""
    parsed = Parsed()
    try:
        data = manifest.read_bytes()
    except FileNotFoundError:
        return parsed
    parse_lines(data, parsed)
    if parsed.bad_lines:
        _log.warning("manifest.lines_unreadable", extra={"path": str(manifest), "lines": parsed.bad_lines})
    return parsed


def read_entries(root: Path, folder: str) -> list[ManifestEntry]:
    """Entries of one manifest folder, the last line per path winning; a torn tail is ignored."""
    return list(load(root.joinpath(*folder_parts(folder), MANIFEST_NAME)).entries.values())


def sha_line(path: str, digest: str) -> str:
    """One line of the sha256 list, in the form ``sha256sum -c`` reads."""
    if "\\" in path or "\n" in path:  # GNU sha256sum's escaping of awkward names
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {path}\n"


def sha_list(entries: Mapping[str, ManifestEntry]) -> bytes:
    """The sha256 list of ``entries``, in manifest order (first appearance), so recording a new
    file only appends a line."""
    return "".join(sha_line(path, entry.sha256) for path, entry in entries.items()).encode()


def manifest_folders(root: Path, *, include_incidents: bool = True) -> list[str]:
    """Names of the manifest folders present: date folders, then incident bundles, sorted."""
    names: list[str] = []
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return names  # no archive yet: nothing is archived
    for item in top:
        if is_date_name(item.name) and item.is_dir(follow_symlinks=False):
            names.append(item.name)
    if include_incidents:
        try:
            bundles = sorted(os.scandir(root / INCIDENTS), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            bundles = []
        names.extend(
            f"{INCIDENTS}/{b.name}"
            for b in bundles
            if b.is_dir(follow_symlinks=False) and not b.name.startswith(".")
        )
    return names
