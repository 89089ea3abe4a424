"""What is archived: the archive keys a nightly run may skip, and when to distrust one.

A key counts as archived when a date folder's manifest lists its file and the file is on disk
as the manifest recorded it. The trust rule (:func:`trusted_keys`) costs one ``stat`` per file
and re-hashes only files whose mtime moved since they were recorded, so a damaged file is
fetched again while DCS still has its day, and an untouched archive costs no reading.

Two readers apply that rule. :func:`archived_keys` reads every date folder into one set (what
``verify`` and the tests compare against). :class:`ArchiveIndex` is what a nightly run plans
with: it reads only the date folders the run can act on (DCS keeps 7 days, so a year of archive
costs the same as a week) and answers each per-replica question with a dictionary lookup, so
planning grows with the night's work, not with the archive's age.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Set
from datetime import date
from pathlib import Path

from harvester.archive.files import sha256_file
from harvester.archive.manifest import ManifestEntry, load, manifest_folders
from harvester.archive.paths import MANIFEST_NAME, listed_path
from harvester.models import ArchiveKey, Replica

__all__ = ["ArchiveIndex", "archived_keys", "trusted_keys"]

_log = logging.getLogger(__name__)

_NO_DAYS: frozenset[date] = frozenset()


def archived_keys(root: Path, *, recheck_since: date | None = None) -> set[ArchiveKey]:
    """Keys of every date folder whose file is in the manifest and on disk as it recorded it.

    The rule is :func:`trusted_keys`'s. This reads the whole archive: a nightly run plans with
    :class:`ArchiveIndex`, which reads only the days it can act on.
    """
    keys: set[ArchiveKey] = set()
    for name in manifest_folders(root, include_incidents=False):
        keys.update(trusted_keys(root, name, recheck_since=recheck_since))
    return keys


def trusted_keys(root: Path, folder: str, *, recheck_since: date | None = None) -> Iterator[ArchiveKey]:
    """The keys of one date folder whose file is on disk as its manifest recorded it.

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
    folder_path = root / folder
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
                and not _still_intact(path, entry, f"{folder}/{entry.path}")
            ):
                continue
        except (OSError, ValueError):
            continue
        yield key


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


# --------------------------------------------------------------------------- the run's index

_Instance = tuple[str, str]  # (project_id, instance_id)
_ReplicaId = tuple[str, str]  # (group_name, replication_ip)


class ArchiveIndex:
    """The archived keys of the days a run can act on, keyed for per-replica lookups.

    ``(project_id, instance_id) -> (group_name, replication_ip) -> {day}``: every question the
    planner asks about one replica or one instance is a dictionary lookup, where scanning a set
    of every archived key costs the size of the archive per replica.

    Which days it holds: :meth:`build` reads the date folders of the ``days`` it is given (the
    retention window and today, plus the days of any pending-day records), because those are
    the only days a run can collect, download or report on. A lookup of another day reads that
    one folder when first asked (:meth:`__contains__`, :meth:`keys_of_instance`), so an answer
    is never "not archived" merely because a folder was not read; :meth:`days_of` and
    :meth:`instance_days` answer for the days read so far. Which date folders exist is listed
    once, at build: like :func:`archived_keys`, the index is a snapshot taken when the run
    starts, and a folder the run creates later is not read into it.

    The trust rule is :func:`trusted_keys`'s, applied folder by folder. Keys are filed under
    their own day (a manifest line's ``log_date``), wherever the line is; the layout puts every
    file in the folder of its day.

    Build it in a worker thread (it stats every file of the days it reads, and may re-hash);
    afterwards it is used from the event loop only and is not thread-safe.
    """

    __slots__ = ("_by_instance", "_loaded", "_present", "_removed", "_root", "recheck_since")

    def __init__(self, root: Path, *, recheck_since: date | None = None) -> None:
        self._root = root
        self.recheck_since = recheck_since
        self._by_instance: dict[_Instance, dict[_ReplicaId, set[date]]] = {}
        self._present: dict[date, str] = {}  # date folders on disk, listed at build
        self._loaded: set[date] = set()
        self._removed: set[ArchiveKey] = set()

    @classmethod
    def build(
        cls, root: Path, *, days: Iterable[date] | None = None, recheck_since: date | None = None
    ) -> ArchiveIndex:
        """List the date folders, then read those of ``days`` (``None``: every date folder).

        Blocking: call it through ``anyio.to_thread.run_sync``.
        """
        index = cls(root, recheck_since=recheck_since)
        for name in manifest_folders(root, include_incidents=False):
            index._present[date.fromisoformat(name)] = name
        index.load(index._present if days is None else days)
        return index

    def load(self, days: Iterable[date]) -> None:
        """Read the date folders of ``days`` not read yet; a day without a folder holds nothing.

        Blocking; :meth:`build` calls it, and so does a lookup of a day not read yet.
        """
        for day in days:
            if day in self._loaded:
                continue
            self._loaded.add(day)
            name = self._present.get(day)
            if name is None:
                continue
            for key in trusted_keys(self._root, name, recheck_since=self.recheck_since):
                if key not in self._removed:
                    self._add(key)

    def _add(self, key: ArchiveKey) -> None:
        replicas = self._by_instance.setdefault((key.project_id, key.instance_id), {})
        replicas.setdefault((key.group_name, key.replication_ip), set()).add(key.day)

    @property
    def loaded_days(self) -> frozenset[date]:
        """The days whose folders were read (or found absent)."""
        return frozenset(self._loaded)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is archived; reads its day's folder first if that was not read yet."""
        if not isinstance(key, ArchiveKey):
            return False
        if key.day not in self._loaded:
            self.load((key.day,))
        replicas = self._by_instance.get((key.project_id, key.instance_id))
        if replicas is None:
            return False
        return key.day in replicas.get((key.group_name, key.replication_ip), _NO_DAYS)

    def __len__(self) -> int:
        """How many keys the days read so far hold."""
        return sum(len(days) for reps in self._by_instance.values() for days in reps.values())

    def days_of(self, project_id: str, instance_id: str, group_name: str, replication_ip: str) -> Set[date]:
        """The archived days of one replica (read-only view), among the days read so far."""
        replicas = self._by_instance.get((project_id, instance_id))
        if replicas is None:
            return _NO_DAYS
        return replicas.get((group_name, replication_ip), _NO_DAYS)

    def instance_days(self, project_id: str, instance_id: str) -> set[date]:
        """The days on which any replica of the instance has a file archived (days read so far)."""
        replicas = self._by_instance.get((project_id, instance_id))
        if not replicas:
            return set()
        return set().union(*replicas.values())

    def instance_has_day(self, project_id: str, instance_id: str, day: date) -> bool:
        """Whether any replica of the instance has a file of ``day`` archived (a single node's
        pending record names no replica); reads the day's folder first if that was not read yet."""
        if day not in self._loaded:
            self.load((day,))
        replicas = self._by_instance.get((project_id, instance_id))
        return replicas is not None and any(day in held for held in replicas.values())

    def days_for(self, replica: Replica) -> Set[date]:
        """The archived days of the keys ``replica`` owns (:meth:`Replica.owns`): a single node
        owns every file of its instance, a replica of a cluster or HA pair its group and IP's."""
        t = replica.target
        if replica.replication_id is None:
            return self.instance_days(t.project_id, t.instance_id)
        return self.days_of(t.project_id, t.instance_id, replica.group_name, replica.replication_ip)

    def keys_of_instance(
        self, project_id: str, instance_id: str, days: Iterable[date] | None = None
    ) -> list[ArchiveKey]:
        """The instance's archived keys, of ``days`` (read first if needed) or of every day read,
        oldest day first, then by group and replica IP."""
        wanted: Set[date] | None = None
        if days is not None:
            wanted = set(days)
            self.load(wanted)
        replicas = self._by_instance.get((project_id, instance_id))
        if not replicas:
            return []
        keys = [
            ArchiveKey(project_id, instance_id, group, ip, day)
            for (group, ip), held in replicas.items()
            for day in held
            if wanted is None or day in wanted
        ]
        keys.sort(key=lambda k: (k.day, k.group_name, k.replication_ip))
        return keys

    def discard(self, keys: Iterable[ArchiveKey]) -> None:
        """Treat ``keys`` as not archived (``verify --repair`` fetches them again), also on days
        read later."""
        for key in keys:
            self._removed.add(key)
            replicas = self._by_instance.get((key.project_id, key.instance_id))
            if replicas is not None:
                replicas.get((key.group_name, key.replication_ip), set()).discard(key.day)

    def __isub__(self, keys: Iterable[ArchiveKey]) -> ArchiveIndex:
        """``index -= keys``: :meth:`discard`, the spelling the planner used on a set."""
        self.discard(keys)
        return self
