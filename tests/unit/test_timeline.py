"""The timeline page as text: self-contained, hostile log text kept inert, lanes in a sensible order."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

from harvester.logs.model import Role, RoleSpan
from harvester.logs.timeline import build_payload, render_html, script_json
from tests.timeline_data import DAY, HOSTILE, known_set, source

GENERATED = datetime(2024, 3, 16, 8, 30, tzinfo=UTC)
DATA_BLOCK = re.compile(r'<script type="application/json" id="timeline-data">(.*?)</script>', re.S)


def _page(title: str = "Incident timeline") -> str:
    events, spans, _ = known_set()
    return render_html(events, spans, title=title, generated_at=GENERATED, time_note="Times are UTC.")


def test_data_block_round_trips_hostile_text_exactly() -> None:
    """The embedded JSON parses back to the very strings the logs held, script tags and surrogates too."""
    page = _page()
    data = json.loads(DATA_BLOCK.search(page)[1])  # type: ignore[index]
    summaries = [row[5] for row in data["events"]]
    assert HOSTILE in summaries
    assert len(data["lanes"]) == 6
    assert len(data["events"]) == 12
    assert len(data["spans"]) == 12


def test_nothing_in_the_logs_can_close_the_script_or_add_markup() -> None:
    """Only the page's own two scripts close; no tag, entity or URL from the log text reaches the HTML."""
    page = _page(title='<img src=x onerror="alert(1)"> & \ud800 title')
    assert page.count("</script>") == 2
    assert "<img" not in page
    assert "<b>bold" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; ? title" in page
    page.encode("utf-8")  # no lone surrogate left anywhere: the file can be written
    assert "\u2028" not in DATA_BLOCK.search(page)[1]  # type: ignore[index]


def test_page_needs_no_network() -> None:
    """No external script, style, font or image; a CSP forbids fetching anything."""
    page = _page()
    assert "default-src 'none'" in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_lanes_sorted_by_instance_then_shard_then_replica_numerically() -> None:
    """group-10 comes after group-2, and 10.0.0.9 before 10.0.0.10."""
    spans = [
        RoleSpan(source("b-inst", "group-10", "10.0.0.1"), Role.MASTER, DAY, DAY),
        RoleSpan(source("b-inst", "group-2", "10.0.0.10"), Role.MASTER, DAY, DAY),
        RoleSpan(source("b-inst", "group-2", "10.0.0.9"), Role.REPLICA, DAY, DAY),
        RoleSpan(source("a-inst", "group-0", "10.0.1.1"), Role.MASTER, DAY, DAY),
    ]
    lanes = build_payload([], spans)["lanes"]
    assert [(x["inst"], x["shard"], x["label"]) for x in lanes] == [
        ("a-inst", "group-0", "10.0.1.1"),
        ("b-inst", "group-2", "10.0.0.9"),
        ("b-inst", "group-2", "10.0.0.10"),
        ("b-inst", "group-10", "10.0.0.1"),
    ]


def test_bare_file_lane_is_named_after_the_file_and_long_lines_are_clipped() -> None:
    """A file with no replica IP gets a lane labelled by its file name; a huge summary is clipped."""
    events, _, lanes = known_set()
    bare = replace(lanes[0], path="/tmp/logs/redis-6379.log", replica="", shard="", instance="redis-6379")
    big = replace(events[0], source=bare, summary="x" * 5_000_000)
    payload = build_payload([big], [])
    assert payload["lanes"] == [
        {"inst": "redis-6379", "iid": bare.instance_id, "shard": "", "label": "redis-6379.log"}
    ]
    assert len(payload["events"][0][5]) == 600


def test_empty_window_still_renders_a_page() -> None:
    """No events and no spans: a valid page that says so, not an error."""
    page = render_html([], [], title="Nothing", generated_at=GENERATED, time_note="UTC")
    assert "no data in the window" in page
    assert json.loads(DATA_BLOCK.search(page)[1])["lanes"] == []  # type: ignore[index]


def test_script_json_escapes_markup_characters() -> None:
    """<, > and & never appear raw in the embedded JSON."""
    assert script_json({"s": "</script>&<!--"}) == '{"s":"\\u003c/script\\u003e\\u0026\\u003c!--"}'
