"""What the archive remembers between runs: pending days, and the retention watermark.

**Pending days.** ``<root>/.state/pending-days.json`` holds one record
(:class:`~harvester.plan.PendingDay`) per replica-day that a run needed and could not archive:
since when, how many collections of ours covered it, the nights on which it looked quiet, and
whether it was already reported as "no log produced". The decisions about a record live in
:mod:`harvester.plan`; :class:`PendingDays` only reads and writes the file. Several shards share
one archive root, so :meth:`PendingDays.save` re-reads the file under an exclusive lock and
replaces only the records of the instances this run worked on, then writes the whole file
atomically: a crash leaves the old or the new state, never half of one.

Migration: versions before pending days wrote ``.state/empty-days.jsonl`` (:class:`EmptyDays`)
and never collected those days again, on the strength of one night's timing. Each of its
entries now counts as ONE night of evidence (dated by the file's last change), so such a day is
collected again and becomes final only if another night agrees.

**The retention watermark.** ``.state/retention.json``: every day up to ``pruned_through`` was
deleted by ``harvester prune`` on purpose, and the nightly run never collects such a day again
(:func:`harvester.plan.after_watermark`). It is written before the first deletion, so a prune
that dies midway cannot invite the next run to download what it already removed, and it never
moves back: deleting the file is the one way to let runs collect those days again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from harvester.archive.store import Archive
from harvester.models import ArchiveKey
from harvester.plan import PendingDay

__all__ = [
    "RETENTION_STATE",
    "STATE_PATH",
    "EmptyDays",
    "InstanceKey",
    "PendingDays",
    "instance_of",
    "pruned_through",
    "record_watermark",
]

_log = logging.getLogger(__name__)

STATE_PATH = ".state/pending-days.json"
_LOCK_PATH = ".state/.pending-days.lock"
_LEGACY_PATH = ".state/empty-days.jsonl"
_LEGACY_LOCK = ".state/.empty-days.lock"
#: Where the retention watermark lives, relative to the archive root.
RETENTION_STATE = ".state/retention.json"
_VERSION = 1
# Records of days this old are dropped at the next save even if no run touched their instance
# (an instance removed from the config): DCS forgot those days long ago.
_FORGET_AFTER = timedelta(days=45)
_LEGACY_REASON = "taken as quiet by an earlier version (one night of evidence)"

InstanceKey = tuple[str, str]  # (project_id, instance_id)
Records = Mapping[InstanceKey, Mapping[ArchiveKey, PendingDay]]


def instance_of(key: ArchiveKey) -> InstanceKey:
    return (key.project_id, key.instance_id)


def _key_json(k: ArchiveKey) -> dict[str, Any]:
    return {
        "project_id": k.project_id,
        "instance_id": k.instance_id,
        "group_name": k.group_name,
        "replication_ip": k.replication_ip,
        "day": k.day.isoformat(),
    }


def _key_from_json(item: Mapping[str, Any]) -> ArchiveKey:
    return ArchiveKey(
        str(item["project_id"]),
        str(item["instance_id"]),
        str(item["group_name"]),
        str(item["replication_ip"]),
        date.fromisoformat(str(item["day"])),
    )


def _to_json(record: PendingDay) -> dict[str, Any]:
    return {
        **_key_json(record.key),
        "since": record.since.isoformat(),
        "collections": record.collections,
        "evidence": sorted(d.isoformat() for d in record.evidence),
        "final": record.final,
        "reason": record.reason,
    }


def _from_json(item: Mapping[str, Any]) -> PendingDay:
    key = _key_from_json(item)
    evidence = item.get("evidence", [])
    if not isinstance(evidence, list):
        raise TypeError("evidence must be a list")
    return PendingDay(
        key,
        since=date.fromisoformat(str(item.get("since", key.day.isoformat()))),
        collections=int(item.get("collections", 0)),
        evidence=frozenset(date.fromisoformat(str(d)) for d in evidence),
        final=bool(item.get("final", False)),
        reason=str(item.get("reason", "")),
    )


class PendingDays:
    """Read and write the pending-day state of one archive."""

    def __init__(self, archive: Archive) -> None:
        self._archive = archive
        self._path = Path(archive.root) / STATE_PATH

    def load(self) -> dict[ArchiveKey, PendingDay]:
        """Every record, with the legacy quiet-day file migrated in (in memory only)."""
        records, migrated = self._read()
        if not migrated:
            self._migrate(records)
        return records

    async def save(self, instances: Records, today: date) -> None:
        """Replace the records of ``instances`` (the ones this run worked on), keep the others."""
        if not instances:
            return
        await anyio.to_thread.run_sync(self.save_sync, instances, today)

    def save_sync(self, instances: Records, today: date) -> None:
        """:meth:`save`, blocking (call it from a worker thread)."""
        with self._archive.exclusive(_LOCK_PATH):
            # The records of the instances we replace are not even built: at fleet scale that is
            # most of the file (13,000 records: ~9 MiB of objects).
            records, migrated = self._read(skip=instances)
            if not migrated:
                self._migrate(records)
            kept = {k: r for k, r in records.items() if instance_of(k) not in instances}
            for ours in instances.values():
                kept.update(ours)
            oldest = today - _FORGET_AFTER
            del records  # what is kept is in ``kept``; the rest may go before the write
            self._archive.write_chunks_atomic(STATE_PATH, _document(kept, oldest))

    def _read(self, skip: Container[InstanceKey] = ()) -> tuple[dict[ArchiveKey, PendingDay], bool]:
        """The file's records, except those of the instances in ``skip``; and its migrated flag."""
        try:
            text = self._path.read_bytes().decode()
        except (FileNotFoundError, NotADirectoryError):
            return {}, False
        except (OSError, ValueError) as exc:
            # Losing this memory is safe: days are collected again and need fresh evidence.
            _log.warning("state.pending_days_unreadable", extra={"path": str(self._path), "error": str(exc)})
            return {}, False
        records: dict[ArchiveKey, PendingDay] = {}
        try:
            migrated = _parse(text, records, self._path, skip)
        except (ValueError, TypeError) as exc:
            _log.warning("state.pending_days_unreadable", extra={"path": str(self._path), "error": str(exc)})
            return {}, False
        return records, migrated

    def _migrate(self, records: dict[ArchiveKey, PendingDay]) -> None:
        legacy = Path(self._archive.root) / _LEGACY_PATH
        try:
            night = datetime.fromtimestamp(legacy.stat().st_mtime, UTC).date()
        except OSError:
            return
        for key in EmptyDays(self._archive.root).load():
            if key not in records:
                records[key] = PendingDay(
                    key, since=night, collections=1, evidence=frozenset({night}), reason=_LEGACY_REASON
                )


_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


def _parse(
    text: str, records: dict[ArchiveKey, PendingDay], path: Path, skip: Container[InstanceKey]
) -> bool:
    """Read the state document into ``records``, one day at a time; returns ``migrated_legacy``.

    Any valid JSON spelling of the document is read (indented, as earlier versions wrote it,
    or one record per line), but the ``days`` list is never built: each item becomes its
    :class:`PendingDay` as it is decoded, so reading 13,000 records does not hold 13,000 dicts
    as well, and the days of the instances in ``skip`` (the ones a save replaces) are not
    turned into records at all. A record that cannot be read is skipped with a warning, as
    before; a document that is not an object with a ``days`` list raises ValueError.
    """
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _skip(text, pos + 1)
    migrated = False
    seen_days = False
    while text[pos : pos + 1] != "}":
        name, pos = _DECODER.raw_decode(text, pos)
        if not isinstance(name, str):
            raise ValueError("not a JSON object")
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError("expected ':'")
        pos = _skip(text, pos + 1)
        if name == "days" and text[pos : pos + 1] == "[":
            seen_days = True
            pos = _skip(text, pos + 1)
            while text[pos : pos + 1] != "]":
                item, pos = _DECODER.raw_decode(text, pos)
                if not isinstance(item, dict):
                    _log.warning("state.pending_day_unreadable", extra={"path": str(path)})
                elif (str(item.get("project_id")), str(item.get("instance_id"))) not in skip:
                    try:
                        record = _from_json(item)
                    except (ValueError, KeyError, TypeError):
                        _log.warning("state.pending_day_unreadable", extra={"path": str(path)})
                    else:
                        records[record.key] = record
                pos = _skip(text, pos)
                if text[pos : pos + 1] == ",":
                    pos = _skip(text, pos + 1)
                elif text[pos : pos + 1] != "]":
                    raise ValueError("expected ',' or ']'")
            pos += 1
        else:
            value, pos = _DECODER.raw_decode(text, pos)
            if name == "migrated_legacy":
                migrated = bool(value)
            elif name == "days":
                raise ValueError("days is not a list")
        pos = _skip(text, pos)
        if text[pos : pos + 1] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos : pos + 1] != "}":
            raise ValueError("expected ',' or '}'")
    if _skip(text, pos + 1) != len(text):
        raise ValueError("extra data after the document")
    if not seen_days:
        raise ValueError("no days list")
    return migrated


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _document(records: Mapping[ArchiveKey, PendingDay], oldest: date) -> Iterator[bytes]:
    """The state file, one record at a time (the format every version reads).

    The same JSON document as ever (``{"version", "migrated_legacy", "days": [...]}``), but
    compact and one record per line, produced as it is written: at fleet scale (13,000 records
    for 100,000 files) building every record's dict, then one indented string, then its bytes
    made the run's memory jump by ~20 MiB at its very end.
    """
    yield b'{"version": %d, "migrated_legacy": true, "days": [' % _VERSION
    sep = b"\n"
    for key in sorted(records, key=_key_order):
        if key.day < oldest:
            continue
        yield sep + json.dumps(_to_json(records[key]), ensure_ascii=False, separators=(",", ":")).encode()
        sep = b",\n"
    yield b"\n]}\n"


def _key_order(k: ArchiveKey) -> tuple[str, str, str, str, date]:
    return (k.project_id, k.instance_id, k.group_name, k.replication_ip, k.day)


# --- the quiet-day file of earlier versions --------------------------------------------


class EmptyDays:
    """The quiet-day file of earlier versions (one night's guess each, never collected again).

    Only read now, by :meth:`PendingDays.load`, which counts each entry as one night of
    evidence (``add`` remains to write such a file, as those versions did).
    """

    def __init__(self, root: Path) -> None:
        self._archive = Archive(root)
        self._path = Path(root) / _LEGACY_PATH

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
                keys.add(_key_from_json(json.loads(raw)))
            except (ValueError, KeyError, TypeError):
                _log.warning("manifest.empty_day_unreadable", extra={"path": str(self._path)})
        return keys

    async def add(self, keys: Iterable[ArchiveKey]) -> None:
        data = "".join(json.dumps(_key_json(k), separators=(",", ":")) + "\n" for k in keys).encode()
        if data:
            await anyio.to_thread.run_sync(self._add_sync, data)

    def _add_sync(self, data: bytes) -> None:
        with self._archive.exclusive(_LEGACY_LOCK):
            self._archive.append_durably(_LEGACY_PATH, data)


# --- the retention watermark ---------------------------------------------------------------


def pruned_through(root: Path) -> date | None:
    """The retention watermark: the newest day pruned on purpose, or None (never pruned).

    An unreadable file is reported and ignored: the cost is re-collecting a pruned day (which
    the next prune removes again), never losing one that was wanted.
    """
    path = Path(root) / RETENTION_STATE
    try:
        data = json.loads(path.read_bytes())
        return date.fromisoformat(data["pruned_through"])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("prune.watermark_unreadable", extra={"path": str(path), "error": str(exc)})
        return None


def record_watermark(root: Path, through: date, *, keep_days: int, now: datetime) -> date:
    """Raise the watermark to ``through`` (never lower it); returns the watermark now in force.

    Call it holding the fleet lock, before deleting anything.
    """
    current = pruned_through(root)
    watermark = through if current is None else max(current, through)
    Archive(root).write_json_atomic(
        RETENTION_STATE,
        {
            "pruned_through": watermark.isoformat(),
            "keep_days": keep_days,
            "updated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
            "meaning": "days up to pruned_through were pruned on purpose; runs do not collect them",
        },
    )
    return watermark
