"""Pure decisions of ``harvester collect``: which replicas, which slow-log window, which bundle name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harvester.commands.collect import SLOWLOG_MAX_AGE, bundle_name, pick_replicas, slowlog_window
from harvester.errors import UsageError
from harvester.models import Replica, Target

NOW = datetime(2025, 3, 12, 15, 30, 45, tzinfo=UTC)
MIDNIGHT = datetime(2025, 3, 12, tzinfo=UTC)
CLUSTER = Target("p", "0" * 32, "eu-de", "c1", "cache", cache_mode="cluster")
SINGLE = Target("p", "0" * 32, "eu-de", "s1", "solo", cache_mode="single")
M0 = Replica(CLUSTER, "group-0", "10.0.0.1", "rid-m0", "master")
S0 = Replica(CLUSTER, "group-0", "10.0.0.2", "rid-s0", "slave")
M1 = Replica(CLUSTER, "group-1", "10.0.0.3", "rid-m1", "master")
S1 = Replica(CLUSTER, "group-1", "10.0.0.4", "rid-s1", "slave")
REPLICAS = [M0, S0, M1, S1]
NODE = Replica(SINGLE, "", "", None, "master")


# --------------------------------------------------------------------------- pick_replicas


def test_all_selects_every_replica_in_order() -> None:
    """``--replica all`` collects from every replica of every shard."""
    assert pick_replicas(REPLICAS, "all") == REPLICAS


def test_master_selects_the_master_of_each_shard() -> None:
    """``--replica master`` collects from each shard's master only."""
    assert pick_replicas(REPLICAS, "master") == [M0, M1]


def test_ip_selects_that_replica() -> None:
    """``--replica <IP>`` collects from the one replica with that address."""
    assert pick_replicas(REPLICAS, "10.0.0.4") == [S1]


def test_replication_id_selects_that_replica() -> None:
    """``--replica <REPLICATION_ID>`` collects from the one replica with that id."""
    assert pick_replicas(REPLICAS, "rid-s0") == [S0]


def test_unknown_selector_selects_nothing() -> None:
    """A selector that names no replica selects none (the caller reports it)."""
    assert pick_replicas(REPLICAS, "10.9.9.9") == []
    assert pick_replicas(REPLICAS, "slave") == []


def test_ip_prefix_is_not_a_match() -> None:
    """An IP matches whole addresses only: 10.0.0.1 does not pick 10.0.0.10."""
    ten = Replica(CLUSTER, "group-2", "10.0.0.10", "rid-10", "master")
    assert pick_replicas([*REPLICAS, ten], "10.0.0.1") == [M0]


@pytest.mark.parametrize("selector", ["all", "master", "10.9.9.9", "rid-x"])
def test_single_node_ignores_the_selector(selector: str) -> None:
    """A single-node instance has one node, which is collected whatever ``--replica`` says."""
    assert pick_replicas([NODE], selector) == [NODE]


def test_no_replicas_gives_nothing() -> None:
    """An instance without replicas yields an empty selection, not an error."""
    assert pick_replicas([], "all") == []
    assert pick_replicas([], "master") == []


# --------------------------------------------------------------------------- slowlog_window


def test_window_defaults_to_today() -> None:
    """With ``--days 0`` the slow log covers today from midnight UTC until now."""
    assert slowlog_window(NOW, 0, None, None) == (MIDNIGHT, NOW)


@pytest.mark.parametrize("days", [1, 3])
def test_window_follows_the_log_days(days: int) -> None:
    """With ``--days N`` the slow log starts at midnight N days ago, like the run logs."""
    assert slowlog_window(NOW, days, None, None) == (MIDNIGHT - timedelta(days=days), NOW)


def test_window_of_seven_days_is_capped() -> None:
    """``--days 7`` would start beyond the API's 7-day limit; the start is moved inside it."""
    start, end = slowlog_window(NOW, 7, None, None)
    assert end == NOW
    assert start == NOW - SLOWLOG_MAX_AGE
    assert NOW - timedelta(days=7) < start < NOW - timedelta(days=6)


def test_old_since_is_capped_to_seven_days() -> None:
    """A ``--since`` older than 7 days is moved forward instead of being refused by DCS (DCS.4030)."""
    start, _ = slowlog_window(NOW, 0, NOW - timedelta(days=30), None)
    assert start == NOW - SLOWLOG_MAX_AGE
    assert start > NOW - timedelta(days=7)


def test_since_and_until_are_kept() -> None:
    """An explicit ``--since``/``--until`` inside the last 7 days is used as given."""
    since, until = NOW - timedelta(days=2), NOW - timedelta(hours=3)
    assert slowlog_window(NOW, 0, since, until) == (since, until)


def test_since_overrides_days() -> None:
    """``--since`` wins over the window ``--days`` implies."""
    since = NOW - timedelta(hours=1)
    assert slowlog_window(NOW, 7, since, None) == (since, NOW)


def test_until_in_the_future_is_now() -> None:
    """An ``--until`` in the future ends the window now (the API refuses future times)."""
    assert slowlog_window(NOW, 0, None, NOW + timedelta(days=1)) == (MIDNIGHT, NOW)


def test_since_after_until_is_a_usage_error() -> None:
    """``--since`` after ``--until`` is refused with a usage error naming the empty window."""
    with pytest.raises(UsageError, match="empty"):
        slowlog_window(NOW, 0, NOW - timedelta(hours=1), NOW - timedelta(hours=2))


def test_since_equal_to_until_is_a_usage_error() -> None:
    """An empty window (``--since`` == ``--until``) is refused too."""
    when = NOW - timedelta(hours=1)
    with pytest.raises(UsageError):
        slowlog_window(NOW, 0, when, when)


def test_window_is_timezone_aware() -> None:
    """Both ends are aware UTC-comparable datetimes (the API takes epoch milliseconds)."""
    start, end = slowlog_window(NOW, 1, None, None)
    assert start.tzinfo is not None
    assert end.tzinfo is not None


# --------------------------------------------------------------------------- bundle_name


def test_bundle_name_is_timestamp_and_label() -> None:
    """A bundle lives at ``incidents/<UTC timestamp>-<label>``."""
    assert bundle_name(NOW, "incident") == "incidents/20250312T153045Z-incident"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("db/outage", "db_outage"),
        ("../../etc", "___.._etc"),
        ("a\\b", "a_b"),
        ("line\nbreak", "line_break"),
        ("nul\x00byte", "nul_byte"),
        ("", "_"),
        ("   ", "_"),
        ("..", "__"),
        ("-rf", "_rf"),
        ("Störung 42", "Störung 42"),
    ],
)
def test_label_is_one_harmless_path_component(label: str, expected: str) -> None:
    """Separators, control characters, and leading dots or dashes in ``--label`` become ``_``."""
    name = bundle_name(NOW, label)
    assert name == f"incidents/20250312T153045Z-{expected}"
    assert name.count("/") == 1


def test_long_label_is_cut_with_a_hash() -> None:
    """A very long ``--label`` is cut to 60 bytes and keeps a hash, so two long labels still differ."""
    a = bundle_name(NOW, "x" * 200 + "a")
    b = bundle_name(NOW, "x" * 200 + "b")
    label_a = a.split("-", 1)[1]
    assert len(label_a.encode()) <= 60
    assert "~" in label_a
    assert a != b


def test_long_multibyte_label_stays_valid_utf8() -> None:
    """A long non-ASCII label is cut on a character boundary."""
    label = bundle_name(NOW, "ü" * 100).split("-", 1)[1]
    assert len(label.encode("utf-8")) <= 60
    label.encode("utf-8").decode("utf-8")
