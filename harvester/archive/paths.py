"""Names in the archive: where each file goes, and what a path below the root may be.

Pure (no I/O), so the writer (:mod:`~harvester.archive.store`) and every reader (manifest,
index, verify, prune, the orphan sweep) agree on one set of rules:

* the layout ``<day>/<project>/<instance name>-<id[:8]>/<group>/<file>``, built from names the
  API provides, each made into exactly one harmless component (:func:`safe_component`);
* the names the harvester keeps for itself (the marker, the manifest files, ``.state/``,
  ``.locks/``, ``runs/``), which no payload may take;
* the names of interrupted writes (``.<name>.harvester.part``, ``*.harvester-tmp``), which the
  orphan sweep may delete, and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from datetime import date
from pathlib import Path, PurePosixPath

from harvester.errors import StorageError
from harvester.models import Target

__all__ = [
    "INCIDENTS",
    "LEGACY_PART_SUFFIX",
    "MANIFEST_LOCK",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "PART_SUFFIX",
    "RESERVED_TOP",
    "SHA_LIST_NAME",
    "TMP_SUFFIX",
    "archive_relpath",
    "date_folder",
    "folder_parts",
    "instance_dir",
    "is_date_name",
    "is_leftover",
    "listed_path",
    "part_name",
    "payload_parts",
    "relparts",
    "safe_component",
]

#: A payload in progress is ``.<final name>.harvester.part``: hidden, and unmistakably ours.
PART_SUFFIX = ".harvester.part"
#: What an earlier version called it (``<final name>.part``); swept only in manifest folders.
LEGACY_PART_SUFFIX = ".part"
#: A small file in progress is ``.<name>.<token>.harvester-tmp``.
TMP_SUFFIX = ".harvester-tmp"
#: The file that says "this folder is a harvester archive" (written on first use).
MARKER_NAME = ".harvester-archive"
MANIFEST_NAME = "manifest.jsonl"
SHA_LIST_NAME = "manifest-sha256.txt"
#: The flock file that serialises the writers of one manifest folder.
MANIFEST_LOCK = ".manifest.lock"
#: The folder of incident bundles (``incidents/<stamp>-<label>``).
INCIDENTS = "incidents"
#: Top-level names that belong to the harvester itself, never to a manifest folder.
RESERVED_TOP = frozenset({".state", ".locks", "runs"})
# Names a payload may not take: they would collide with a manifest folder's own files or be
# mistaken for leftovers by the orphan sweep.
_RESERVED_NAMES = frozenset({MANIFEST_NAME, SHA_LIST_NAME, MANIFEST_LOCK})
_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


# --------------------------------------------------------------------------- folders


def date_folder(day: date) -> str:
    """The archive's top-level folder for a day: ISO ``YYYY-MM-DD`` sorts chronologically."""
    return day.isoformat()


def is_date_name(name: str) -> bool:
    """Whether ``name`` is a date folder's name (``YYYY-MM-DD``, a real date)."""
    if not _DATE_NAME.fullmatch(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def relparts(relpath: PurePosixPath | str) -> tuple[str, ...]:
    """The components of a path below the root; StorageError for anything that could escape."""
    pure = PurePosixPath(relpath)
    if pure.is_absolute():
        raise StorageError(f"refusing absolute archive path {str(relpath)!r}")
    if not pure.parts:
        raise StorageError(f"refusing empty archive path {str(relpath)!r}")
    for part in pure.parts:
        if part in ("", ".", "..") or "\\" in part or any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise StorageError(f"refusing archive path {str(relpath)!r}: component {part!r} is not allowed")
    return pure.parts


@functools.lru_cache(maxsize=256)
def folder_parts(name: str) -> tuple[str, ...]:
    """The components of a manifest folder (``2025-01-02`` or ``incidents/<stamp>-<label>``).

    Remembered: a night names the same few folders for every one of its files (twice each:
    the payload, its manifest line), and the answer depends on the name alone."""
    parts = relparts(name)
    if parts[0] in RESERVED_TOP or any(p.startswith(".") for p in parts):
        raise StorageError(f"{name!r} cannot be a manifest folder: the name is reserved")
    if parts[0] == INCIDENTS and len(parts) != 2:
        raise StorageError(f"{name!r} cannot be a manifest folder: bundles are incidents/<name>")
    return parts


def payload_parts(relpath: PurePosixPath | str) -> tuple[str, ...]:
    """The components of a payload's path inside its manifest folder; its name is not ours."""
    parts = relparts(relpath)
    name = parts[-1]
    if name in _RESERVED_NAMES or name.endswith((LEGACY_PART_SUFFIX, TMP_SUFFIX)):
        raise StorageError(f"refusing archive path {str(relpath)!r}: {name!r} is a reserved name")
    return parts


def listed_path(folder: Path, relpath: str) -> Path | None:
    """The file a manifest line names, or None if that path could leave its folder.

    Lenient where :func:`payload_parts` is strict: a reader must still find a file an older
    writer recorded, but never follow a line out of its folder.
    """
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or not pure.parts or any(p in ("..", ".") for p in pure.parts):
        return None
    return folder.joinpath(*pure.parts)


def part_name(final: str) -> str:
    """The hidden name a payload has while it is written."""
    return f".{final}{PART_SUFFIX}"


def is_leftover(name: str, *, legacy: bool) -> bool:
    """Whether ``name`` is one an interrupted write of ours leaves behind.

    ``legacy``: also the ``<name>.part`` of earlier versions (only in manifest folders, where
    no payload may end in ``.part``).
    """
    if name.endswith(TMP_SUFFIX) or (name.startswith(".") and name.endswith(PART_SUFFIX)):
        return True
    return legacy and name.endswith(LEGACY_PART_SUFFIX)


# --------------------------------------------------------------------------- names from the API

# Characters that would split a path, end a C string, or hide/reorder text in a terminal.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_HASH_LEN = 12
_MAX_EXT = 16


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def safe_component(name: str, *, max_len: int = 120, mark_changes: bool = True) -> str:
    """Turn a name that came from the API into exactly one harmless path component.

    Separators, NUL and control/format characters become ``_``; a leading run of dots or
    dashes becomes underscores (no ``.``/``..``, no hidden files, nothing a shell tool reads as
    an option). ``max_len`` counts UTF-8 bytes, as file systems do. A name that had to be
    changed, or cut to fit, gets ``~`` plus a hash of the original (keeping a short extension),
    so ``a/b`` and ``a_b``, or two long names sharing a prefix, still land in different files;
    a name that was already safe is kept as it is. ``mark_changes=False`` skips the hash for a
    changed name that fits (for labels people type, where uniqueness is ensured elsewhere).
    """
    if max_len < _HASH_LEN + _MAX_EXT + 8:
        raise ValueError(f"max_len must be at least {_HASH_LEN + _MAX_EXT + 8}")
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in _BAD_CATEGORIES else ch for ch in name
    ).strip()
    lead = len(cleaned) - len(cleaned.lstrip(".-"))
    cleaned = "_" * lead + cleaned[lead:]
    if not cleaned:
        cleaned = "_"
    if (cleaned == name or not mark_changes) and len(cleaned.encode("utf-8")) <= max_len:
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH_LEN]
    stem, dot, ext = cleaned.rpartition(".")
    keep_ext = bool(dot and stem and ext and len(ext.encode("utf-8")) <= _MAX_EXT)
    suffix = f"~{digest}" + (f".{ext}" if keep_ext else "")
    head = _truncate_utf8(stem if keep_ext else cleaned, max_len - len(suffix.encode("utf-8")))
    return head + suffix


def archive_relpath(
    target: Target, group_name: str, file_name: str, replication_ip: str = ""
) -> PurePosixPath:
    """``<project>/<instance name>-<id[:8]>/<group>/<file>``, relative to the day's folder.

    The id prefix keeps two instances that share a name apart; every part is made safe on its
    own, so no API-provided value can climb out of the archive or nest deeper. DCS names files
    ``redis_<replica ip>_<day>.log``; a name that does not carry its replica's IP gets it as a
    prefix, so two replicas of one shard can never write the same path.
    """
    if replication_ip and replication_ip not in file_name:
        file_name = f"{replication_ip}_{file_name}"
    return instance_dir(target) / safe_component(group_name) / safe_component(file_name)


def instance_dir(target: Target) -> PurePosixPath:
    """``<project>/<instance name>-<id[:8]>``: where an instance's files and metadata live."""
    instance = (
        f"{safe_component(target.instance_name or 'instance', max_len=100)}"
        f"-{safe_component(target.instance_id[:8] or 'unknown')}"
    )
    return PurePosixPath(safe_component(target.project), instance)
