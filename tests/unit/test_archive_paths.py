"""Safe archive paths: names from the API become harmless components, in a fixed layout."""

from __future__ import annotations

import os
from datetime import date
from pathlib import PurePosixPath

import pytest

from harvester.archive import paths
from harvester.models import Target
from tests.unit.test_plan import PID, TARGET


def assert_one_safe_component(name: str) -> None:
    assert name
    assert PurePosixPath(name).parts == (name,)
    assert "/" not in name
    assert "\\" not in name
    assert "\0" not in name
    assert name not in (".", "..")
    assert not name.startswith((".", "-"))
    assert all(ch.isprintable() for ch in name)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        ".hidden",
        "---",
        "-rf",
        "a\0b",
        "a\nb\rc\x1b[31m",
        "C:\\Windows\\system32",
        "evil\u202etxt.exe",
        "",
        "   ",
        "\u2028",
    ],
)
def test_safe_component_neutralises_hostile_names(name: str) -> None:
    """Names from the API can never split, climb, hide or be read as an option."""
    assert_one_safe_component(paths.safe_component(name))


@pytest.mark.parametrize(
    "name", ["redis_192.168.0.142_2021-04-16.log", "group-0", "redis-prod-orders-01", "a.b"]
)
def test_safe_names_are_kept_as_they_are(name: str) -> None:
    """Ordinary names from the API land on disk unchanged."""
    assert paths.safe_component(name) == name


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("../x", "___x~"), ("/abs", "_abs~"), ("a\0b", "a_b~"), ("..", "__~"), ("", "_~")],
)
def test_changed_names_get_a_hash_of_the_original(name: str, prefix: str) -> None:
    """Hostile parts become underscores, and a hash keeps a/b and a_b from colliding."""
    assert paths.safe_component(name).startswith(prefix)
    assert paths.safe_component("a/b") != paths.safe_component("a_b")


def test_long_names_are_capped_with_a_hash_and_stay_distinct() -> None:
    """300-character names fit the limit, keep their extension, and do not collide."""
    a = paths.safe_component("a" * 300 + "1.log")
    b = paths.safe_component("a" * 300 + "2.log")
    assert len(a.encode()) <= 120
    assert len(b.encode()) <= 120
    assert a != b
    assert a.endswith(".log")
    assert paths.safe_component("a" * 300 + "1.log") == a


def test_long_multibyte_names_are_cut_on_character_boundaries() -> None:
    """The limit counts UTF-8 bytes and never splits a character."""
    out = paths.safe_component("é" * 300, max_len=100)
    assert len(out.encode("utf-8")) <= 100
    out.encode("utf-8").decode("utf-8")
    assert_one_safe_component(out)


def test_archive_relpath_layout() -> None:
    """Files land at <project>/<instance>-<id8>/<group>/<file> under the day folder."""
    got = paths.archive_relpath(TARGET, "group-0", "redis_10.0.0.1_2025-03-09.log")
    assert got == PurePosixPath("prod/orders-5560df16/group-0/redis_10.0.0.1_2025-03-09.log")
    assert paths.date_folder(date(2025, 3, 9)) == "2025-03-09"


def test_archive_relpath_cannot_escape_the_day_folder() -> None:
    """Hostile project, instance, group and file names stay four levels below the day folder."""
    target = Target("../..", PID, "eu-de", "../../../x", "/etc")
    rel = paths.archive_relpath(target, "../../..", "/etc/passwd\0.log")
    assert len(rel.parts) == 4
    assert not rel.is_absolute()
    assert ".." not in rel.parts
    root = "/archive/2025-03-09"
    assert os.path.normpath(f"{root}/{rel}").startswith(root + "/")


def test_archive_relpath_with_empty_and_long_names() -> None:
    """An unnamed instance and a 300-character group still give valid components."""
    target = Target("prod", PID, "eu-de", "5560df16-cebf", "")
    rel = paths.archive_relpath(target, "g" * 300, "f")
    assert rel.parts[1] == "instance-5560df16"
    assert all(len(p.encode()) <= 120 for p in rel.parts)
