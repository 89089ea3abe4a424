"""Deterministic log content: byte-exact ranges, growth as a prefix, and Redis-like text."""

from __future__ import annotations

import re
from datetime import date

import pytest

from harvester.emulator import LogSpec
from harvester.emulator import logs as emulator_logs
from harvester.emulator.logs import BLOCK_SIZE

DAY = date(2021, 4, 16)


def _spec(size: int, full: int | None = None) -> LogSpec:
    return LogSpec(seed=1, ip="192.168.0.142", day=DAY, size=size, full_size=full or size, role="slave")


def test_same_inputs_same_bytes_and_exact_size() -> None:
    """The bytes depend only on the spec, and the length is exactly ``size``."""
    a, b = _spec(200_000).read_all(), _spec(200_000).read_all()
    assert a == b
    assert len(a) == 200_000
    assert a.endswith(b"\n")
    assert _spec(200_000).read_all() != LogSpec(2, "192.168.0.142", DAY, 200_000, 200_000).read_all()


def test_any_range_equals_slice_of_whole() -> None:
    """Ranges across block boundaries give the same bytes as slicing the whole file."""
    spec = _spec(3 * BLOCK_SIZE + 123)
    whole = spec.read_all()
    for first, last in ((0, 0), (10, 99), (BLOCK_SIZE - 5, BLOCK_SIZE + 5), (len(whole) - 7, len(whole) - 1)):
        assert b"".join(spec.iter_range(first, last)) == whole[first : last + 1]


def test_partial_day_is_prefix_of_full_day() -> None:
    """Today's file is the start of what the complete day becomes (bar its final newline)."""
    full = _spec(500_000).read_all()
    part = _spec(120_000, full=500_000).read_all()
    assert part[:-1] == full[: len(part) - 1]
    assert part.endswith(b"\n")


def test_content_looks_like_a_redis_log_of_that_day() -> None:
    """Banner, BGSAVE, replica sync and warnings appear, stamped with the file's day."""
    text = _spec(400_000).read_all().decode()
    for needle in (
        "Redis is starting",
        "Background saving started by pid",
        "DB saved on disk",
        "MASTER <-> REPLICA sync",
        "# WARNING",
        "Background append only file rewriting",
    ):
        assert needle in text
    line = re.compile(r"\d+:[CMS] 16 Apr 2021 \d\d:\d\d:\d\d\.\d{3} [*#] .*")
    lines = text.splitlines()
    assert all(line.fullmatch(x.rstrip()) for x in lines)


def test_end_of_huge_file_without_generating_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last bytes of a 2 GiB file come back in milliseconds, one block of work."""
    rendered: list[int] = []
    render = emulator_logs._render_block

    def counting(spec: LogSpec, k: int, length: int) -> bytes:
        rendered.append(k)
        return render(spec, k, length)

    monkeypatch.setattr(emulator_logs, "_render_block", counting)
    spec = _spec(2 * 1024**3)
    tail = b"".join(spec.iter_range(spec.size - 100, spec.size - 1))
    assert len(tail) == 100
    assert tail.endswith(b"\n")
    assert rendered == [(spec.size - 1) // BLOCK_SIZE]  # the last block alone, not the 32,767 before it


def test_streamed_in_block_sized_chunks() -> None:
    """Streaming yields chunks no larger than a block, so memory stays flat."""
    chunks = list(_spec(5 * BLOCK_SIZE).iter_range())
    assert max(len(c) for c in chunks) <= BLOCK_SIZE
    assert sum(len(c) for c in chunks) == 5 * BLOCK_SIZE
