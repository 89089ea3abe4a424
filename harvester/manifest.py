"""What the archive holds: manifest entries, their sha256 list, and the checks over both.

Each manifest folder (a date folder ``YYYY-MM-DD`` or an incident bundle
``incidents/<stamp>-<label>``) holds:

``manifest.jsonl``
    one JSON object per archived file, appended under an flock with ``O_APPEND`` + fsync.
    The file is append-only, so when the same ``path`` appears twice **the later line wins**
    (it describes the file that replaced the earlier one). A torn last line (a crash mid-append)
    is ignored by readers and cut off by the next writer before it appends.
``manifest-sha256.txt``
    ``<hex>  <path>`` lines for ``sha256sum -c``, sorted by path. It is never edited: every
    :meth:`ManifestWriter.record` regenerates it *from* ``manifest.jsonl`` and renames it into
    place, so it can lag the jsonl (after a crash between the two steps) but never disagree
    with the files on disk. :meth:`ManifestWriter.reconcile_all` closes that lag at start-up.

Crash rule: an entry is recorded only after its file was renamed into place. A crash between
the rename and the record leaves a complete file that no manifest lists. Rather than adopt it
(its link, log id and attempts are unknown by then), the next run does not find its key in the
manifest, downloads it again and atomically replaces the file; the manifest then lists it once.
Until then :func:`verify` reports it under ``extra``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.to_thread

from harvester.errors import StorageError
from harvester.models import ArchivedFile, ArchiveKey, LogFile, Replica, SignedLink, Target
from harvester.storage import MARKER_NAME, Archive, is_date_name

__all__ = [
    "MANIFEST_NAME",
    "SHA_LIST_NAME",
    "EmptyDays",
    "ManifestEntry",
    "ManifestWriter",
    "VerifyReport",
    "archived_keys",
    "manifest_folders",
    "read_entries",
    "verify",
]

_log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
SHA_LIST_NAME = "manifest-sha256.txt"
LOCK_NAME = ".manifest.lock"
INCIDENTS = "incidents"
_EMPTY_DAYS = ".state/empty-days.jsonl"
_EMPTY_DAYS_LOCK = ".state/.empty-days.lock"
_CHUNK = 1 << 20
# Files that live in manifest folders but are metadata written by write_json_atomic, not
# payloads: verify() does not call them extra.
_METADATA_NAMES = frozenset({MANIFEST_NAME, SHA_LIST_NAME, LOCK_NAME, "instance.json", "summary.json"})
_INTERNAL_TOP = frozenset({".state", ".locks", "runs"})
_INTERNAL_FILES = frozenset({MARKER_NAME})

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
        cls, target: Target, archived: ArchivedFile, *, run_id: str, written_at: datetime
    ) -> ManifestEntry:
        """An entry for a file we wrote ourselves (instance.json, slowlog.jsonl): no log, no link."""
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
class _Parsed:
    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unparseable lines


def _parse_lines(data: bytes, parsed: _Parsed, first_line: int = 1) -> int:
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


def _load(manifest: Path) -> _Parsed:
    parsed = _Parsed()
    try:
        data = manifest.read_bytes()
    except FileNotFoundError:
        return parsed
    _parse_lines(data, parsed)
    if parsed.bad_lines:
        _log.warning("manifest.lines_unreadable", extra={"path": str(manifest), "lines": parsed.bad_lines})
    return parsed


def read_entries(root: Path, folder: str) -> list[ManifestEntry]:
    """Entries of one manifest folder, the last line per path winning; a torn tail is ignored."""
    return list(_load(Archive(root).folder(folder) / MANIFEST_NAME).entries.values())


def _sha_line(path: str, digest: str) -> str:
    if "\\" in path or "\n" in path:  # GNU sha256sum's escaping of awkward names
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {path}\n"


def _sha_list(digests: dict[str, str]) -> bytes:
    """In manifest order (first appearance), so recording a new file only appends a line."""
    return "".join(_sha_line(path, digest) for path, digest in digests.items()).encode()


def _payload(folder_path: Path, relpath: str) -> Path | None:
    """The file a manifest path names, or None if that path could leave its folder."""
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or not pure.parts or any(p in ("..", ".") for p in pure.parts):
        return None
    return folder_path.joinpath(*pure.parts)


def manifest_folders(root: Path, *, include_incidents: bool = True) -> list[str]:
    """Names of the manifest folders present: date folders, then incident bundles, sorted."""
    names: list[str] = []
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return names  # no archive yet: nothing is archived
    for item in top:
        if _is_date_name(item.name) and item.is_dir(follow_symlinks=False):
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


_is_date_name = is_date_name


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
        for entry in _load(folder_path / MANIFEST_NAME).entries.values():
            path = _payload(folder_path, entry.path)
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
    size, digest = _sha256_file(path)
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


# --- writing -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Digests:
    """What this process already parsed of one manifest.jsonl, so a record reads only new lines.

    ``tail`` (the last complete line parsed) guards against a recreated file that reuses the
    inode number: if the bytes before ``offset`` are not that line any more, we start over.
    """

    device: int
    inode: int
    offset: int
    tail: bytes
    parsed: _Parsed


class ManifestWriter:
    """Appends entries and keeps each folder's sha256 list derived from its manifest.jsonl.

    Safe across tasks (an anyio lock per folder keeps them from parking threads on the flock)
    and across processes sharing the root (the flock on ``<folder>/.manifest.lock``).
    """

    def __init__(self, archive: Archive) -> None:
        self._archive = archive
        self._locks: dict[str, anyio.Lock] = {}
        self._cache: dict[str, _Digests] = {}

    def _task_lock(self, folder: str) -> anyio.Lock:
        lock = self._locks.get(folder)
        if lock is None:
            lock = self._locks[folder] = anyio.Lock()
        return lock

    async def record(self, folder: str, entry: ManifestEntry) -> None:
        """Record a file that is already final on disk (see the crash rule above)."""
        self._archive.folder(folder)  # validate before any thread or lock
        async with self._task_lock(folder):
            await anyio.to_thread.run_sync(self._record_sync, folder, entry)

    def _record_sync(self, folder: str, entry: ManifestEntry) -> None:
        """Append the entry, then its sha256 line; rewrite the list only when a path repeats.

        Rewriting the whole list per file made a night quadratic in files per day folder. Every
        writer (all shards) appends both lines under the folder's flock, so the list stays the
        manifest's paths in first-appearance order; a crash between the two appends leaves the
        list one line behind (still ``sha256sum -c`` clean), and start-up ``reconcile`` fixes it.
        When the sha256 step fails (disk full), the manifest line is taken back too, so the two
        files agree and the error reaches the caller: the file is not archived, and the next run
        fetches it again (the crash rule's case).
        """
        with self._archive.exclusive(f"{folder}/{LOCK_NAME}"):
            entry = self._with_mtime(folder, entry)
            path = entry.path
            line = (entry.to_json() + "\n").encode()
            exists = (self._archive.folder(folder) / MANIFEST_NAME).exists()
            known = exists and path in self._refresh(folder)
            before = self._archive.append_durably(f"{folder}/{MANIFEST_NAME}", line)
            try:
                entries = self._refresh(folder)
                if known:
                    sha_path = self._archive.folder(folder) / SHA_LIST_NAME
                    self._archive.write_bytes_atomic(
                        sha_path, _sha_list({p: e.sha256 for p, e in entries.items()})
                    )
                else:
                    sha_line = _sha_line(path, entries[path].sha256).encode()
                    self._archive.append_durably(f"{folder}/{SHA_LIST_NAME}", sha_line)
            except StorageError:
                self._cache.pop(folder, None)
                try:
                    self._archive.truncate_to(f"{folder}/{MANIFEST_NAME}", before)
                except StorageError as undo:  # the list lags one line; start-up reconcile fixes it
                    _log.warning(
                        "manifest.line_not_rolled_back", extra={"folder": folder, "error": str(undo)}
                    )
                raise

    def _with_mtime(self, folder: str, entry: ManifestEntry) -> ManifestEntry:
        """The entry with the file's mtime, so later runs notice when the file was touched."""
        if entry.mtime_ns is not None:
            return entry
        path = _payload(self._archive.folder(folder), entry.path)
        if path is None:
            return entry
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return entry
        if st.st_size != entry.size:
            return entry  # not the file this entry describes: leave mtime out, size decides
        return dataclasses.replace(entry, mtime_ns=st.st_mtime_ns)

    def _refresh(self, folder: str) -> Mapping[str, ManifestEntry]:
        """Bring the cached parse of ``folder``'s manifest up to date; call under its flock."""
        manifest = self._archive.folder(folder) / MANIFEST_NAME
        try:
            with open(manifest, "rb") as fh:
                st = os.fstat(fh.fileno())
                cached = self._cache.get(folder)
                if cached is not None and (
                    (cached.device, cached.inode) != (st.st_dev, st.st_ino)
                    or st.st_size < cached.offset
                    or os.pread(fh.fileno(), len(cached.tail), cached.offset - len(cached.tail))
                    != cached.tail
                ):
                    cached = None
                if cached is None:
                    cached = _Digests(st.st_dev, st.st_ino, 0, b"", _Parsed())
                fh.seek(cached.offset)
                data = fh.read()
        except OSError as exc:
            raise StorageError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
        used = _parse_lines(data, cached.parsed)
        if used:
            cached.offset += used
            cached.tail = data[data.rfind(b"\n", 0, used - 1) + 1 : used]
        self._cache[folder] = cached
        return cached.parsed.entries  # read-only view of the cache: no O(n) copy per record

    async def reconcile(self, folder: str) -> bool:
        """Cut a torn tail and regenerate a lagging sha256 list; True if anything changed."""
        self._archive.folder(folder)
        async with self._task_lock(folder):
            return await anyio.to_thread.run_sync(self._reconcile_sync, folder)

    def _reconcile_sync(self, folder: str) -> bool:
        base = self._archive.folder(folder)
        manifest = base / MANIFEST_NAME
        if not manifest.exists():
            return False
        # Read-only first: an intact folder (the usual case) needs no lock file, so a folder
        # made read-only after its night costs nothing and is never written to.
        if _intact(base):
            return False
        with self._archive.exclusive(f"{folder}/{LOCK_NAME}"):
            changed = self._archive.repair_tail(f"{folder}/{MANIFEST_NAME}") > 0
            expected = _sha_list({p: e.sha256 for p, e in _load(manifest).entries.items()})
            try:
                current: bytes | None = (base / SHA_LIST_NAME).read_bytes()
            except FileNotFoundError:
                current = None
            if current != expected:
                self._archive.write_bytes_atomic(base / SHA_LIST_NAME, expected)
                _log.warning("manifest.sha_list_regenerated", extra={"folder": folder})
                changed = True
        return changed

    async def reconcile_all(self) -> list[str]:
        """Run :meth:`reconcile` over every manifest folder; call it once at start-up.

        A folder that cannot be repaired (read-only, say) is logged as a warning and left as
        it is: readers ignore a torn tail, and it must not stop tonight's new days.
        """
        folders = await anyio.to_thread.run_sync(manifest_folders, self._archive.root)
        changed: list[str] = []
        for folder in folders:
            try:
                if await self.reconcile(folder):
                    changed.append(folder)
            except StorageError as exc:
                _log.warning("manifest.folder_not_reconciled", extra={"folder": folder, "error": str(exc)})
        return changed


def _intact(base: Path) -> bool:
    """Whether a folder's manifest ends on a whole line and its sha256 list agrees with it."""
    try:
        data = (base / MANIFEST_NAME).read_bytes()
        current = (base / SHA_LIST_NAME).read_bytes()
    except OSError:
        return False
    if data and not data.endswith(b"\n"):
        return False
    parsed = _Parsed()
    _parse_lines(data, parsed)
    return current == _sha_list({p: e.sha256 for p, e in parsed.entries.items()})


# --- verification --------------------------------------------------------------------------


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


def _sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def _check_payload(path: Path, entry: ManifestEntry, shown: str) -> tuple[str, str] | None:
    """None when the file matches its entry, else (kind, the line verify prints)."""
    try:
        if path.is_symlink():
            return "symlink", f"{shown} (is a symlink)"
        size, digest = _sha256_file(path)
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
        parsed = _load(manifest)
        report.corrupt.extend(
            f"{name}/{MANIFEST_NAME} (line {n} is not a valid entry)" for n in parsed.bad_lines
        )
        for entry in parsed.entries.values():
            shown = f"{name}/{entry.path}"
            path = _payload(base, entry.path)
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
            if kind != "symlink" and _is_date_name(name):
                with contextlib.suppress(ValueError):
                    report.damaged[text] = entry.key
        _check_sha_list(name, base, manifest, parsed, report)

    top_level: list[Path] = []
    try:
        top_level = sorted(Path(e.path) for e in os.scandir(root))
    except FileNotFoundError:
        return report
    for item in top_level:
        if item.name in _INTERNAL_TOP and item.is_dir() and not item.is_symlink():
            continue
        if item.name in _INTERNAL_FILES and item.is_file() and not item.is_symlink():
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
    if len(parts) >= 2 and _is_date_name(parts[0]):
        return parts[0]
    if len(parts) >= 3 and parts[0] == INCIDENTS:
        return f"{INCIDENTS}/{parts[1]}"
    return None


def _check_sha_list(name: str, base: Path, manifest: Path, parsed: _Parsed, report: VerifyReport) -> None:
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
    elif current != _sha_list({p: e.sha256 for p, e in parsed.entries.items()}):
        report.corrupt.append(f"{name}/{SHA_LIST_NAME} (disagrees with manifest.jsonl)")


# --- quiet days ----------------------------------------------------------------------------


class EmptyDays:
    """The quiet-day file of earlier versions (one night's guess each, never collected again).

    Only read now, by :mod:`harvester.daystate`, which counts each entry as one night of
    evidence in the pending-day state.
    """

    def __init__(self, root: Path) -> None:
        self._archive = Archive(root)
        self._path = Path(root) / _EMPTY_DAYS

    def load(self) -> set[ArchiveKey]:
        keys: set[ArchiveKey] = set()
        try:
            data = self._path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return keys
        for raw in data[: data.rfind(b"\n") + 1].split(b"\n"):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                keys.add(
                    ArchiveKey(
                        str(item["project_id"]),
                        str(item["instance_id"]),
                        str(item["group_name"]),
                        str(item["replication_ip"]),
                        date.fromisoformat(item["day"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                _log.warning("manifest.empty_day_unreadable", extra={"path": str(self._path)})
        return keys

    async def add(self, keys: Iterable[ArchiveKey]) -> None:
        data = "".join(
            json.dumps(
                {
                    "project_id": k.project_id,
                    "instance_id": k.instance_id,
                    "group_name": k.group_name,
                    "replication_ip": k.replication_ip,
                    "day": k.day.isoformat(),
                },
                separators=(",", ":"),
            )
            + "\n"
            for k in keys
        ).encode()
        if data:
            await anyio.to_thread.run_sync(self._add_sync, data)

    def _add_sync(self, data: bytes) -> None:
        with self._archive.exclusive(_EMPTY_DAYS_LOCK):
            self._archive.append_durably(_EMPTY_DAYS, data)
