"""Which log files to read, and whose they are: archive roots, bundles, plain files.

Accepted, in any mix:

* a dated archive root (``<root>/<YYYY-MM-DD>/<project>/<instance>-<id8>/<group>/<file>``):
  only the date folders that can hold the ``since``/``until`` window are opened (a day's
  file holds that UTC day, give or take one day for a clock in another zone);
* one date folder, an incident bundle (``<root>/incidents/<stamp>-<label>/``) or the
  ``incidents`` folder itself (every bundle in it);
* plain files, or any other folder (every ``*.log`` / ``*.log.gz`` below it).

Each folder's ``manifest.jsonl`` says whose a file is (instance name and id, shard, replica,
day). A file the manifest does not list is still read, with what its path says, and a note
says so; a listed file that is gone is noted too. Outside an archive, the replica and day
come from the DCS file name ``redis_<ip>_<day>.log``. Nothing here reads a log's content.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from harvester.archive.manifest import ManifestEntry
from harvester.archive.paths import INCIDENTS, MANIFEST_NAME
from harvester.errors import UsageError
from harvester.logs.model import LogSource

__all__ = ["Discovery", "discover", "source_from_name"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DCS_NAME = re.compile(r"redis_(?P<ip>.+?)_(?P<day>\d{4}-\d{2}-\d{2})\.log(?:\.gz)?")
_INSTANCE_DIR = re.compile(r"(?P<name>.+)-(?P<id8>[0-9A-Za-z]{8})")
_LOG_SUFFIXES = (".log", ".log.gz")
#: A day's file may hold lines of the days beside it (a clock in another zone, late rotation).
DAY_MARGIN = timedelta(days=1)


@dataclass(slots=True)
class Discovery:
    """What :func:`discover` found beside the sources: notes a reader should see."""

    notes: list[str] = field(default_factory=list)
    duplicates: int = 0
    known_instances: set[str] = field(default_factory=set)  # for "no file matches" messages


def _is_date(name: str) -> date | None:
    if not _DATE.fullmatch(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def _is_log_name(name: str) -> bool:
    return not name.startswith(".") and name.endswith(_LOG_SUFFIXES)


def source_from_name(path: Path) -> LogSource:
    """A bare file: replica and day from ``redis_<ip>_<day>.log``, else the name is the replica."""
    m = _DCS_NAME.fullmatch(path.name)
    if m is None:
        stem = path.name.removesuffix(".gz").removesuffix(".log")
        return LogSource(path=str(path), instance="", replica=stem or path.name)
    return LogSource(path=str(path), instance="", replica=m.group("ip"), day=_is_date(m.group("day")))


def _from_layout(path: Path, relparts: Sequence[str], day: date | None) -> LogSource:
    """``<project>/<instance>-<id8>/<group>/<file>`` relative to a manifest folder."""
    base = source_from_name(path)
    project = instance = id8 = shard = ""
    if len(relparts) >= 4:
        project, instance_dir, shard = relparts[-4], relparts[-3], relparts[-2]
        m = _INSTANCE_DIR.fullmatch(instance_dir)
        instance, id8 = (m.group("name"), m.group("id8")) if m else (instance_dir, "")
    elif len(relparts) == 3:  # a single-node layout without a group level
        project, instance_dir = relparts[0], relparts[1]
        m = _INSTANCE_DIR.fullmatch(instance_dir)
        instance, id8 = (m.group("name"), m.group("id8")) if m else (instance_dir, "")
    return LogSource(
        path=str(path),
        instance=instance,
        instance_id=id8,
        project=project,
        shard=shard,
        replica=base.replica,
        day=base.day or day,
    )


def _from_entry(path: Path, entry: ManifestEntry, day: date | None) -> LogSource:
    try:
        log_day: date | None = date.fromisoformat(entry.log_date)
    except ValueError:
        log_day = day
    return LogSource(
        path=str(path),
        instance=entry.instance_name or entry.instance_id,
        instance_id=entry.instance_id,
        project=entry.project,
        shard=entry.group_name,
        replica=entry.replication_ip or source_from_name(path).replica,
        day=log_day,
    )


class _Finder:
    def __init__(self, since: datetime | None, until: datetime | None) -> None:
        self.first_day = (since - DAY_MARGIN).date() if since is not None else None
        self.last_day = (until + DAY_MARGIN).date() if until is not None else None
        self.found: list[tuple[LogSource, str]] = []  # (source, sha256 or "")
        self.info = Discovery()
        self.manifests: dict[Path, dict[str, ManifestEntry]] = {}

    def day_wanted(self, day: date | None) -> bool:
        if day is None:
            return True
        if self.first_day is not None and day < self.first_day:
            return False
        return not (self.last_day is not None and day > self.last_day)

    def manifest(self, folder: Path) -> dict[str, ManifestEntry]:
        """The folder's entries by path, the later line winning; bad lines noted, not fatal."""
        cached = self.manifests.get(folder)
        if cached is not None:
            return cached
        entries: dict[str, ManifestEntry] = {}
        bad = 0
        try:
            with open(folder / MANIFEST_NAME, "rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n") or not raw.strip():
                        continue  # a torn last line, as a crash mid-append leaves
                    try:
                        entry = ManifestEntry.from_json(raw)
                    except ValueError:
                        bad += 1
                        continue
                    entries[entry.path] = entry
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.info.notes.append(f"{folder / MANIFEST_NAME}: cannot read ({exc.strerror or exc})")
        if bad:
            self.info.notes.append(f"{folder / MANIFEST_NAME}: {bad} unreadable line(s) ignored")
        self.manifests[folder] = entries
        return entries

    def add(self, source: LogSource, sha: str = "") -> None:
        self.found.append((source, sha))

    def manifest_folder(self, folder: Path, day: date | None) -> None:
        """Every log in one date folder or bundle, described by its manifest when it can be."""
        entries = self.manifest(folder)
        on_disk: set[str] = set()
        for path in _walk_logs(folder):
            rel = path.relative_to(folder).as_posix()
            on_disk.add(rel)
            entry = entries.get(rel)
            if entry is not None:
                self.add(_from_entry(path, entry, day), entry.sha256)
            else:
                if entries or (folder / MANIFEST_NAME).exists():
                    self.info.notes.append(f"{path}: not in the manifest; read with what its path says")
                self.add(_from_layout(path, rel.split("/"), day))
        for rel, entry in entries.items():
            if entry.log_id and rel not in on_disk and _is_log_name(rel.rsplit("/", 1)[-1]):
                self.info.notes.append(f"{folder / rel}: listed in the manifest but missing")

    def archive_root(self, root: Path) -> None:
        for child in sorted(root.iterdir()):
            day = _is_date(child.name)
            if day is not None and child.is_dir() and self.day_wanted(day):
                self.manifest_folder(child, day)

    def bare_file(self, path: Path) -> None:
        """A file named on the command line; if it sits in a manifest folder, use its entry."""
        for folder in list(path.parents)[:6]:
            if (folder / MANIFEST_NAME).is_file():
                rel = path.relative_to(folder).as_posix()
                entry = self.manifest(folder).get(rel)
                day = _is_date(folder.name)
                if entry is not None:
                    self.add(_from_entry(path, entry, day), entry.sha256)
                else:
                    self.add(_from_layout(path, rel.split("/"), day))
                return
        self.add(source_from_name(path))

    def folder(self, path: Path) -> None:
        day = _is_date(path.name)
        if (path / MANIFEST_NAME).is_file() or (day is not None and _has_subdirs(path)):
            self.manifest_folder(path, day)
            return
        children = sorted(p for p in path.iterdir() if p.is_dir())
        if any(_is_date(c.name) for c in children):
            self.archive_root(path)  # bundles only when named: they repeat the archive's days
            return
        if (path / INCIDENTS).is_dir():
            self.info.notes.append(f"{path}: no date folders; reading its incident bundles")
            self.folder(path / INCIDENTS)
            return
        bundles = [c for c in children if (c / MANIFEST_NAME).is_file()]
        if bundles:  # the incidents folder: every bundle in it
            for bundle in bundles:
                self.manifest_folder(bundle, None)
            return
        for file in _walk_logs(path):
            self.bare_file(file)


def _has_subdirs(path: Path) -> bool:
    try:
        return any(p.is_dir() for p in path.iterdir())
    except OSError:
        return False


def _walk_logs(top: Path) -> list[Path]:
    """Every ``*.log`` / ``*.log.gz`` below ``top``, hidden files and folders skipped, sorted."""
    out: list[Path] = []
    for dirpath, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(dirpath, n) for n in names if _is_log_name(n))
    return sorted(out)


def _instance_matches(source: LogSource, wanted: Iterable[str]) -> bool:
    for value in wanted:
        if value in (source.instance, source.instance_id):
            return True
        if (
            source.instance_id
            and len(value) >= 8
            and (source.instance_id.startswith(value) or value.startswith(source.instance_id))
        ):
            return True
        if source.instance and value == f"{source.instance}-{source.instance_id[:8]}":
            return True
    return False


def discover(
    paths: Sequence[Path],
    *,
    instances: Sequence[str] = (),
    replica: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    info: Discovery | None = None,
) -> list[LogSource]:
    """The log files under ``paths`` that match the filters, sorted by lane then day.

    ``instances`` match a name, an id, an id prefix of 8+ characters or the archive's
    ``<name>-<id8>`` folder; ``replica`` is an IP. A path that does not exist is a
    :class:`UsageError`. The same file reached twice, or the same bytes (by the manifests'
    sha256) in an archive and a bundle, is read once. ``info`` collects notes and counts.
    """
    finder = _Finder(since, until)
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            finder.folder(path)
        else:
            finder.bare_file(path)
    result: list[LogSource] = []
    seen_paths: set[str] = set()
    seen_bytes: set[tuple[tuple[str, str, str], str]] = set()
    report = info if info is not None else Discovery()
    report.notes.extend(finder.info.notes)
    for source, sha in finder.found:
        report.known_instances.add(source.instance or source.instance_id or "(no instance)")
        if instances and not _instance_matches(source, instances):
            continue
        if replica is not None and source.replica != replica:
            continue
        if not finder.day_wanted(source.day):
            continue
        real = os.path.realpath(source.path)
        if real in seen_paths:
            continue
        seen_paths.add(real)
        if sha:
            if (source.lane, sha) in seen_bytes:
                report.duplicates += 1
                continue
            seen_bytes.add((source.lane, sha))
        result.append(source)
    result.sort(key=lambda s: (s.lane, s.day or date.min, s.path))
    return result
