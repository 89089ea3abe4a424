"""Checking the archive against its manifests, and what of the damage DCS can deliver again.

:func:`verify` re-hashes every file every manifest lists and looks for files no manifest
lists; it only reads. :func:`repair_plan` (pure) splits what it found into the archive keys
``verify --repair`` may fetch again (days DCS still keeps) and the rest, each with the reason
an operator needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from harvester import plan
from harvester.archive.files import sha256_file
from harvester.archive.manifest import ManifestEntry, Parsed, load, manifest_folders, sha_list
from harvester.archive.paths import (
    INCIDENTS,
    MANIFEST_LOCK,
    MANIFEST_NAME,
    MARKER_NAME,
    RESERVED_TOP,
    SHA_LIST_NAME,
    is_date_name,
    listed_path,
)
from harvester.models import ArchiveKey

__all__ = ["VerifyReport", "repair_plan", "verify"]

# Files that live in manifest folders but are metadata written by write_json_atomic, not
# payloads: verify() does not call them extra.
_METADATA_NAMES = frozenset({MANIFEST_NAME, SHA_LIST_NAME, MANIFEST_LOCK, "instance.json", "summary.json"})


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify` found; paths are relative to the archive root."""

    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    #: Missing or corrupt payloads of date folders, by their ``missing``/``corrupt`` text: the
    #: archive keys ``verify --repair`` can fetch again (while DCS still has them).
    damaged: dict[str, ArchiveKey] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.corrupt or self.extra)


def _check_payload(path: Path, entry: ManifestEntry, shown: str) -> tuple[str, str] | None:
    """None when the file matches its entry, else (kind, the line verify prints)."""
    try:
        if path.is_symlink():
            return "symlink", f"{shown} (is a symlink)"
        size, digest = sha256_file(path)
    except FileNotFoundError:
        return "missing", shown
    except OSError as exc:
        return "corrupt", f"{shown} (unreadable: {exc.strerror or exc})"
    if size != entry.size or digest != entry.sha256:
        return "corrupt", shown
    return None


def _walk_files(top: Path) -> Iterator[Path]:
    """Every non-directory below ``top``, without following symlinks."""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            yield Path(dirpath, name)


def verify(root: Path, *, include_incidents: bool = True) -> VerifyReport:
    """Re-hash every file of every manifest and look for files no manifest lists.

    ``.part`` and temporary leftovers count as extra (``remove_orphans`` deletes them), as does
    any file outside a manifest folder other than the harvester's own ``runs/``, ``.state/``
    and ``.locks/``.
    """
    report = VerifyReport()
    listed: set[Path] = set()
    folders = manifest_folders(root, include_incidents=include_incidents)
    for name in folders:
        base = root / name
        manifest = base / MANIFEST_NAME
        parsed = load(manifest)
        report.corrupt.extend(
            f"{name}/{MANIFEST_NAME} (line {n} is not a valid entry)" for n in parsed.bad_lines
        )
        for entry in parsed.entries.values():
            shown = f"{name}/{entry.path}"
            path = listed_path(base, entry.path)
            report.checked += 1
            if path is None:
                report.corrupt.append(f"{shown} (path leaves its folder)")
                continue
            listed.add(path)
            problem = _check_payload(path, entry, shown)
            if problem is None:
                report.ok += 1
                continue
            kind, text = problem
            (report.missing if kind == "missing" else report.corrupt).append(text)
            if kind != "symlink" and is_date_name(name):
                with contextlib.suppress(ValueError):
                    report.damaged[text] = entry.key
        _check_sha_list(name, base, manifest, parsed, report)

    top_level: list[Path] = []
    try:
        top_level = sorted(Path(e.path) for e in os.scandir(root))
    except FileNotFoundError:
        return report
    for item in top_level:
        if item.name in RESERVED_TOP and item.is_dir() and not item.is_symlink():
            continue
        if item.name == MARKER_NAME and item.is_file() and not item.is_symlink():
            continue
        if item.name == INCIDENTS and not include_incidents:
            continue
        candidates = _walk_files(item) if item.is_dir() and not item.is_symlink() else iter([item])
        for path in candidates:
            if path in listed:
                continue
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if path.name in _METADATA_NAMES and _folder_of(rel) in folders:
                continue
            if _is_bundle_tarball(rel, folders):
                continue
            report.extra.append(path.relative_to(root).as_posix())
    report.extra.sort()
    return report


def _is_bundle_tarball(rel: PurePosixPath, folders: set[str] | list[str]) -> bool:
    """``collect --tar`` puts ``<bundle>.tar.gz`` beside its bundle: a copy, not an extra."""
    name = rel.name
    if len(rel.parts) != 2 or rel.parts[0] != INCIDENTS or not name.endswith(".tar.gz"):
        return False
    return f"{INCIDENTS}/{name.removesuffix('.tar.gz')}" in folders


def _folder_of(rel: PurePosixPath) -> str | None:
    """The manifest folder a root-relative path lies in, if any."""
    parts = rel.parts
    if len(parts) >= 2 and is_date_name(parts[0]):
        return parts[0]
    if len(parts) >= 3 and parts[0] == INCIDENTS:
        return f"{INCIDENTS}/{parts[1]}"
    return None


def _check_sha_list(name: str, base: Path, manifest: Path, parsed: Parsed, report: VerifyReport) -> None:
    sha_path = base / SHA_LIST_NAME
    try:
        current: bytes | None = sha_path.read_bytes()
    except FileNotFoundError:
        current = None
    has_manifest = manifest.exists()
    if current is None and not has_manifest:
        return
    if current is None:
        report.corrupt.append(f"{name}/{SHA_LIST_NAME} (missing; manifest.jsonl exists)")
    elif not has_manifest:
        report.corrupt.append(f"{name}/{SHA_LIST_NAME} (no manifest.jsonl to agree with)")
    elif current != sha_list(parsed.entries):
        report.corrupt.append(f"{name}/{SHA_LIST_NAME} (disagrees with manifest.jsonl)")


# --- repair ---------------------------------------------------------------------------------


def repair_plan(report: VerifyReport, today: datetime) -> tuple[dict[str, ArchiveKey], dict[str, str]]:
    """Split verify's damage into what DCS may still have and what it cannot (with the reason).

    Pure: ``today`` is passed in. Damage in incident bundles or in manifest files themselves is
    not a nightly key, so it is left to the operator, with what to do.
    """
    window = set(plan.complete_days(plan.today_utc(today)))
    fetchable: dict[str, ArchiveKey] = {}
    hopeless: dict[str, str] = {}
    for shown in [*report.missing, *report.corrupt]:
        key = report.damaged.get(shown)
        if key is None:
            hopeless[shown] = _why_not(shown)
        elif key.day not in window:
            hopeless[shown] = f"DCS keeps run logs for {plan.RETENTION_DAYS} days; {key.day} is older"
        else:
            fetchable[shown] = key
    return fetchable, hopeless


def _why_not(shown: str) -> str:
    """Why damage that is not a nightly log file is left to the operator."""
    if SHA_LIST_NAME in shown:
        return "the next run regenerates it from manifest.jsonl"
    if MANIFEST_NAME in shown:
        return "a manifest line that is not a valid entry: fix or remove it by hand"
    if shown.startswith(f"{INCIDENTS}/"):
        return "an incident bundle's copy: run harvester collect again if it is still needed"
    return "not a file DCS can deliver again: remove it"
