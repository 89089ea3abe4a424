"""The bytes one group-committed manifest batch appends (pure: no disk, no event loop)."""

from __future__ import annotations

import hashlib
import json

from harvester.archive.manifest_writer import batch_lines
from tests.unit.test_manifest import entry


def test_a_batch_of_new_paths_appends_both_files_in_one_order() -> None:
    """New paths give one manifest line and one sha256 line each, in the same order."""
    batch = [entry("b.log", b"b"), entry("a.log", b"a"), entry("c/d.log", b"d")]
    lines, sha = batch_lines(batch, set())
    assert [json.loads(line)["path"] for line in lines.splitlines()] == ["b.log", "a.log", "c/d.log"]
    assert (
        sha
        == (
            f"{hashlib.sha256(b'b').hexdigest()}  b.log\n"
            f"{hashlib.sha256(b'a').hexdigest()}  a.log\n"
            f"{hashlib.sha256(b'd').hexdigest()}  c/d.log\n"
        ).encode()
    )


def test_a_path_recorded_before_asks_for_the_list_to_be_regenerated() -> None:
    """A batch naming a path already in the manifest appends its line but no sha256 lines."""
    lines, sha = batch_lines([entry("b.log", b"b"), entry("a.log", b"new")], {hash("a.log")})
    assert len(lines.splitlines()) == 2
    assert sha is None


def test_a_path_twice_in_one_batch_asks_for_the_list_to_be_regenerated() -> None:
    """The later line wins, so appending both sha256 lines would list the path twice."""
    lines, sha = batch_lines([entry("a.log", b"1"), entry("a.log", b"2")], set())
    assert [json.loads(line)["sha256"] for line in lines.splitlines()] == [
        hashlib.sha256(b"1").hexdigest(),
        hashlib.sha256(b"2").hexdigest(),
    ]
    assert sha is None


def test_awkward_names_are_escaped_as_sha256sum_reads_them() -> None:
    """A backslash in a name gets GNU sha256sum's escaped form in the appended list."""
    _, sha = batch_lines([entry("a\\b.log", b"x")], set())
    assert sha == f"\\{hashlib.sha256(b'x').hexdigest()}  a\\\\b.log\n".encode()
