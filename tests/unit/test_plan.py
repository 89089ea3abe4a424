"""Planning decisions: days, query_time, file selection, shards, links, instances."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from harvester import plan
from harvester.config.schema import InstanceRef
from harvester.errors import UsageError
from harvester.models import Instance, LogFile, Replica, Target

TODAY = date(2025, 3, 10)
PID = "0524e839a54847039e9b2b46e8aa788a"


def day(n: int) -> date:
    """The day n days before TODAY."""
    return TODAY - timedelta(days=n)


TARGET = Target(
    project="prod",
    project_id=PID,
    region="eu-de",
    instance_id="5560df16-cebf-4473-95c4-d1b573c16e79",
    instance_name="orders",
)


def log(
    d: date, log_id: str = "x", status: str = "succeed", *, group: str = "group-0", ip: str = "10.0.0.1"
) -> LogFile:
    replica = Replica(TARGET, group, ip, "r-1")
    return LogFile(replica, log_id, f"redis_{ip}_{d}.log", d, status)


# --------------------------------------------------------------------------- days


def test_complete_days_are_the_seven_before_today_newest_first() -> None:
    """Today is never complete; the 7 kept days are offered newest first."""
    assert plan.complete_days(TODAY) == [day(n) for n in range(1, 8)]


def test_missing_days_skip_archived_and_known_empty() -> None:
    """Days already archived or known to have no log are not collected again."""
    assert plan.missing_days(TODAY, {day(1), day(3)}, {day(7)}) == [day(2), day(4), day(5), day(6)]


def test_missing_days_put_today_first_when_asked() -> None:
    """include_today adds today, even if an earlier run found it empty (the day is not over)."""
    got = plan.missing_days(TODAY, set(plan.complete_days(TODAY)), {TODAY}, include_today=True)
    assert got == [TODAY]
    assert plan.missing_days(TODAY, {TODAY}, set(), include_today=True)[0] == day(1)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([day(1)], 1),
        ([day(2)], 3),
        ([day(1), day(3)], 3),
        ([day(4)], 7),
        ([day(7), day(1)], 7),
        ([TODAY], 0),
        ([TODAY, day(2)], 3),
        ([], None),
        ([day(8)], None),
        ([TODAY + timedelta(days=1)], None),
        ([day(9), day(1)], 1),
    ],
)
def test_query_time_is_the_smallest_covering_window(days: list[date], expected: int | None) -> None:
    """The smallest of 1/3/7 covering every wanted day; 0 for today only; days out of reach ignored."""
    assert plan.query_time_for(TODAY, days) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([day(3), day(2)], (3,)),
        ([TODAY, day(3)], (0, 3)),
        ([TODAY], (0,)),
        ([day(5)], (7,)),
        ([], ()),
    ],
)
def test_collection_requests(days: list[date], expected: tuple[int, ...]) -> None:
    """Today is collected by its own query_time=0 request beside the past window."""
    assert plan.collection_requests(TODAY, days) == expected


def test_today_utc_and_log_day() -> None:
    """Today is the UTC date; the API's yyyy-MM-dd parses to a date."""
    late_evening_berlin = datetime(2025, 3, 10, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert plan.today_utc(late_evening_berlin) == date(2025, 3, 9)
    assert plan.parse_log_day("2021-04-16") == date(2021, 4, 16)
    with pytest.raises(ValueError):
        plan.today_utc(datetime(2025, 3, 10))  # naive on purpose


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeed", "ready"),
        ("SUCCEED", "ready"),
        ("failed", "failed"),
        ("creating", "pending"),
        ("", "pending"),
        ("something-new", "pending"),
    ],
)
def test_classify_status(status: str, expected: str) -> None:
    """Only succeed is downloadable, failed is final, unknown values mean "not yet"."""
    assert plan.classify_status(status) == expected


def test_select_downloads_filters_status_days_and_archive() -> None:
    """Only ready files of finished days that are not archived are fetched."""
    archived_one = log(day(2))
    listed = [
        log(day(1), "ok"),
        log(day(3), "bad", "failed"),
        log(day(4), "pending", "creating"),
        log(TODAY, "today"),
        log(TODAY + timedelta(days=1), "future"),
        archived_one,
    ]
    chosen = plan.select_downloads(listed, {archived_one.key}, TODAY)
    assert [f.log_id for f in chosen] == ["ok"]
    with_today = plan.select_downloads(listed, {archived_one.key}, TODAY, include_today=True)
    assert [f.log_id for f in with_today] == ["ok", "today"]


def test_select_downloads_respects_wanted_days() -> None:
    """wanted_days narrows the selection to those days."""
    listed = [log(day(1), "a"), log(day(2), "b")]
    assert [f.log_id for f in plan.select_downloads(listed, set(), TODAY, wanted_days={day(2)})] == ["b"]


def test_select_downloads_keeps_the_last_listed_collection_per_key() -> None:
    """Several collections of one replica-day yield one download: the one listed last."""
    listed = [log(day(1), "first"), log(day(1), "second"), log(day(1), "third-failed", "failed")]
    assert [f.log_id for f in plan.select_downloads(listed, set(), TODAY)] == ["second"]


def test_select_downloads_orders_oldest_day_first_then_replica() -> None:
    """The files closest to falling out of retention come first, in a stable order."""
    listed = [
        log(day(1), "y1", ip="10.0.0.2"),
        log(day(1), "y0", ip="10.0.0.1"),
        log(day(6), "old", group="group-1"),
        log(day(6), "old0", group="group-0"),
    ]
    assert [f.log_id for f in plan.select_downloads(listed, set(), TODAY)] == ["old0", "old", "y0", "y1"]
    assert plan.select_downloads(list(reversed(listed)), set(), TODAY) == plan.select_downloads(
        listed, set(), TODAY
    )


# --------------------------------------------------------------------------- shards

IDS = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(600)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_shards_cover_every_instance_exactly_once(n: int) -> None:
    """N shard runs together harvest each instance once, and no shard is empty."""
    owners = {i: [k for k in range(n) if plan.in_shard(PID, i, k, n)] for i in IDS}
    assert all(len(v) == 1 for v in owners.values())
    assert {v[0] for v in owners.values()} == set(range(n))


def test_adding_instances_moves_no_other_instance() -> None:
    """A new instance does not reshuffle which machine harvests the existing ones."""
    before = {i: next(k for k in range(4) if plan.in_shard(PID, i, k, 4)) for i in IDS[:300]}
    after = {i: next(k for k in range(4) if plan.in_shard(PID, i, k, 4)) for i in IDS}
    assert all(after[i] == k for i, k in before.items())


def test_shard_depends_on_project_too() -> None:
    """The same instance id in another project is hashed independently (stable across runs)."""
    assert plan.in_shard(PID, IDS[0], 0, 1)
    with pytest.raises(ValueError):
        plan.in_shard(PID, IDS[0], 2, 2)


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), (" 2 / 4 ", (2, 4)), ("6/7", (6, 7))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    """K/N is accepted with spaces around the parts."""
    assert plan.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "a/b", "-1/3", "1", "", "1/2/3"])
def test_parse_shard_rejects_bad_values(text: str) -> None:
    """A shard outside 0 <= K < N is a usage error that shows what was given."""
    with pytest.raises(UsageError, match="shard"):
        plan.parse_shard(text)


# --------------------------------------------------------------------------- links

OBTAINED = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def obs(query: str) -> str:
    return f"https://bucket.obs.eu-de.otc.t-systems.com:443/logs/a.log?{query}"


def test_link_expiry_read_from_expires() -> None:
    """The link's own Expires parameter is believed when it is plausible."""
    expires = int((OBTAINED + timedelta(hours=23)).timestamp())
    url = obs(f"AWSAccessKeyId=AK&Expires={expires}&Signature=abc%3D")
    assert plan.link_expires_at(url, OBTAINED) == OBTAINED + timedelta(hours=23)


@pytest.mark.parametrize(
    "query",
    [
        "AWSAccessKeyId=AK&Signature=x",
        "Expires=soon",
        "Expires=0",
        f"Expires={int((OBTAINED - timedelta(minutes=1)).timestamp())}",
        f"Expires={int((OBTAINED + timedelta(days=30)).timestamp())}",
        "Expires=99999999999999999999",
    ],
)
def test_link_expiry_falls_back_to_24_hours(query: str) -> None:
    """Missing or implausible Expires means the documented 24 hours."""
    assert plan.link_expires_at(obs(query), OBTAINED) == OBTAINED + timedelta(hours=24)


def test_link_expiry_understands_v4_and_returns_utc() -> None:
    """V4 links (X-Amz-Date + X-Amz-Expires) work, and the result is in UTC."""
    local = OBTAINED.astimezone(timezone(timedelta(hours=2)))
    got = plan.link_expires_at(obs("X-Amz-Date=20250310T120000Z&X-Amz-Expires=3600"), local)
    assert got == OBTAINED + timedelta(hours=1)
    assert got.tzinfo == UTC
    with pytest.raises(ValueError):
        plan.link_expires_at(obs(""), datetime(2025, 3, 10))  # naive on purpose


def test_a_held_link_must_outlive_margin_plus_transfer_time() -> None:
    """A held link is renewed unless it outlives the skew margin plus the download at 1 MiB/s."""
    expires = OBTAINED + timedelta(seconds=100)
    mib = 1 << 20
    assert plan.link_still_usable(expires, OBTAINED, expected_bytes=0, margin=30)
    assert plan.link_still_usable(expires, OBTAINED, expected_bytes=69 * mib, margin=30)
    assert not plan.link_still_usable(expires, OBTAINED, expected_bytes=70 * mib, margin=30)
    assert not plan.link_still_usable(expires, OBTAINED + timedelta(seconds=71), expected_bytes=0, margin=30)
    assert not plan.link_still_usable(expires, OBTAINED + timedelta(hours=1), expected_bytes=0, margin=0)


# --------------------------------------------------------------------------- instances

LISTING = [
    Instance("11111111-0000-4000-8000-000000000001", "orders", "RUNNING", "6.0"),
    Instance("11111111-0000-4000-8000-000000000002", "sessions", "RUNNING", "5.0"),
    Instance("11111111-0000-4000-8000-000000000003", "sessions", "RUNNING", "5.0"),
    Instance("11111111-0000-4000-8000-000000000004", "orders-eu", "RUNNING", "7.0"),
]


def test_match_by_id_and_exact_name() -> None:
    """Ids (any case) and unique names resolve to their instance, in config order."""
    refs = [InstanceRef(name="orders"), InstanceRef(id="11111111-0000-4000-8000-000000000004".upper())]
    got = plan.match_instances(refs, LISTING)
    assert [m.instance for m in got] == [LISTING[0], LISTING[3]]
    assert all(m.error is None for m in got)


def test_match_ambiguous_name_lists_ids() -> None:
    """A name two instances share is refused, listing both ids."""
    (m,) = plan.match_instances([InstanceRef(name="sessions")], LISTING, project="prod")
    assert m.instance is None
    assert m.error is not None
    assert str(m.error).startswith("project prod: instance name 'sessions' is ambiguous: 2 instances")
    assert "-000000000002" in str(m.error)
    assert "-000000000003" in str(m.error)


def test_match_near_miss_suggests_candidates() -> None:
    """A name that only nearly matches is not guessed; candidates are suggested."""
    (m,) = plan.match_instances([InstanceRef(name="Orders")], LISTING)
    assert m.instance is None
    assert str(m.error).startswith("no instance named 'Orders'; did you mean: orders (")
    assert "orders-eu" in str(m.error)


def test_match_unknown_id_and_name() -> None:
    """Ids and names that do not exist are reported with the size of the listing."""
    got = plan.match_instances(
        [InstanceRef(id="ffffffff-0000-4000-8000-000000000000"), InstanceRef(name="zz")], LISTING
    )
    assert [str(m.error) for m in got] == [
        "no instance with id ffffffff-0000-4000-8000-000000000000 (4 instances listed)",
        "no instance named 'zz'; 4 instances listed",
    ]


@pytest.mark.parametrize(
    ("status", "engine", "reason"),
    [
        ("RUNNING", "5.0", None),
        ("running", "4.0", None),
        ("RUNNING", "", None),
        ("RUNNING", "weird", None),
        ("CREATING", "5.0", "status is CREATING (only RUNNING instances are harvested)"),
        ("", "5.0", "status is unknown (only RUNNING instances are harvested)"),
        ("RUNNING", "3.0", "engine 3.0 does not support run logs (needs Redis >= 4.0)"),
        ("RUNNING", "2.8", "engine 2.8 does not support run logs (needs Redis >= 4.0)"),
    ],
)
def test_should_harvest(status: str, engine: str, reason: str | None) -> None:
    """Only RUNNING instances on Redis 4.0 or later are harvested; others say why."""
    assert plan.should_harvest(status, engine) == reason
