"""The timeline page in real headless Chromium: it loads clean, draws what it should, and reacts to input.

Chromium missing: skipped locally, a failure when ``CI=true`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harvester.logs.timeline import render_html
from tests.cdp import Page, find_chromium, open_page
from tests.timeline_data import HOSTILE, known_set, large_window

GENERATED = datetime(2024, 3, 16, 8, 30, tzinfo=UTC)
STATS = "window.__timeline && window.__timeline.ready && window.__timeline"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "chromium is not installed (apt-get install chromium); the CI must run the browser checks"
            )
        pytest.skip("chromium is not installed")
    return binary


def _write(tmp_path: Path, events: list[Any], spans: list[Any], title: str = "Incident timeline") -> Path:
    page = tmp_path / "timeline.html"
    page.write_text(
        render_html(events, spans, title=title, generated_at=GENERATED, time_note="Times are UTC."),
        encoding="utf-8",
    )
    return page


async def _center(page: Page, selector: str) -> tuple[float, float]:
    box = await page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return float(box[0]), float(box[1])


async def _mouse(page: Page, kind: str, x: float, y: float, **extra: Any) -> None:
    await page.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)


async def test_known_events_draw_their_lanes_and_markers_without_console_errors(
    chromium: str, tmp_path: Path
) -> None:
    """Six replicas give six lanes under two instance rows; twelve spread events give twelve markers."""
    events, spans, _ = known_set()
    html = _write(tmp_path, events, spans)
    async with open_page(chromium) as page:
        await page.load(html.as_uri())
        stats = await page.wait_for(STATS)
        drawn = await page.evaluate(
            "[document.querySelectorAll('#lanes .lane-label').length,"
            " document.querySelectorAll('#lanes .inst-label').length,"
            " document.querySelectorAll('#lanes .marker').length,"
            " [...document.querySelectorAll('#lanes .marker')].reduce((n, m) => n + +m.dataset.n, 0),"
            " document.querySelectorAll('#lanes .band').length,"
            " document.querySelectorAll('#lanes .band.down').length,"
            " document.querySelectorAll('#notable tbody tr').length]"
        )
        shot = await page.screenshot(tmp_path / "timeline.png")
        assert page.errors == []
    assert drawn == [6, 2, 12, 12, 12, 1, 7]
    assert (stats["lanes"], stats["events"], stats["markers"]) == (6, 12, 12)
    assert shot.read_bytes().startswith(PNG)


async def test_hostile_log_text_is_shown_as_text_and_never_runs(chromium: str, tmp_path: Path) -> None:
    """A summary with </script>, an onerror handler and tags appears verbatim in tooltip and details."""
    events, spans, _ = known_set()
    html = _write(tmp_path, events, spans, title=HOSTILE)
    async with open_page(chromium) as page:
        await page.load(html.as_uri())
        await page.wait_for(STATS)
        # Find the hostile event's marker through the embedded data, then hover and click it.
        hostile = await page.evaluate(
            "JSON.parse(document.getElementById('timeline-data').textContent).events"
            ".findIndex(e => e[5].startsWith('</script>'))"
        )
        x, y = await _center(page, f"#lanes .marker[data-e='{hostile}']")
        await _mouse(page, "mouseMoved", x, y)
        tip = await page.wait_for(
            "(t => t.style.display === 'block' && t.textContent)(document.getElementById('tip'))"
        )
        await _mouse(page, "mousePressed", x, y, button="left", clickCount=1)
        await _mouse(page, "mouseReleased", x, y, button="left", clickCount=1)
        details = await page.wait_for("document.getElementById('details').textContent")
        inert = await page.evaluate(
            "[window.__pwned === undefined, document.querySelectorAll('img').length,"
            " document.querySelectorAll('#details b, #tip b').length, document.title]"
        )
        assert page.errors == []
    visible = HOSTILE.replace("\ud800", "\ufffd")
    assert visible.split("\u2028")[0] in tip
    assert visible.split("\u2028")[0] in details
    assert inert[:3] == [True, 0, 0]
    assert inert[3].startswith("</script><img src=x")


async def test_wheel_drag_buttons_and_reset_move_the_time_axis(chromium: str, tmp_path: Path) -> None:
    """Wheel on the axis zooms around the cursor, dragging pans, + halves the span and Reset restores it."""
    events, spans, _ = known_set()
    html = _write(tmp_path, events, spans)
    async with open_page(chromium) as page:
        await page.load(html.as_uri())
        full = (await page.wait_for(STATS))["view"]
        ax, ay = await _center(page, "#axis")
        await _mouse(page, "mouseWheel", ax, ay, deltaX=0, deltaY=-400)
        zoomed = await page.wait_for(
            f"window.__timeline.view[1] - window.__timeline.view[0] < {full[1] - full[0]}"
        )
        zoomed = await page.evaluate("window.__timeline.view")
        lx, ly = await _center(page, "#lanes .plot-bg")
        await _mouse(page, "mousePressed", lx, ly, button="left", clickCount=1)
        await _mouse(page, "mouseMoved", lx - 300, ly, button="left", buttons=1)
        await _mouse(page, "mouseReleased", lx - 300, ly, button="left", clickCount=1)
        panned = await page.wait_for(f"window.__timeline.view[0] > {zoomed[0]} && window.__timeline.view")
        await page.evaluate("document.getElementById('reset').click()")
        reset = await page.wait_for(f"window.__timeline.view[0] === {full[0]} && window.__timeline.view")
        await page.evaluate("document.getElementById('zoom-in').click()")
        halved = await page.wait_for(f"window.__timeline.view[0] !== {full[0]} && window.__timeline.view")
        assert page.errors == []
    span = full[1] - full[0]
    assert zoomed[1] - zoomed[0] < span * 0.7
    assert panned[1] - panned[0] == pytest.approx(zoomed[1] - zoomed[0])
    assert reset == full
    assert halved[1] - halved[0] == pytest.approx(span / 2)


async def test_large_window_fifty_replicas_seven_days_stays_bounded(chromium: str, tmp_path: Path) -> None:
    """50 replicas x 7 days, 21,000 events: every event drawn (binned), the DOM stays small, no error."""
    events, spans = large_window(replicas=50, days=7, per_replica_day=60)
    html = _write(tmp_path, events, spans)
    async with open_page(chromium) as page:
        await page.load(html.as_uri())
        stats = await page.wait_for(STATS)
        day3 = stats["view"][0] + 3 * 86_400_000
        hour = await page.evaluate(
            f"window.__timeline.setView({day3}, {day3 + 3_600_000}) && window.__timeline"
        )
        await page.screenshot(tmp_path / "large.png", full_page=False)
        assert page.errors == []
    assert stats["lanes"] == 50
    assert stats["markerEvents"] == len(events) == 21_000
    width = 1400 - 260 - 16
    assert stats["markers"] <= 50 * (width // 7 + 1)
    assert 0 < hour["markerEvents"] < len(events)
    print(
        f"\nlarge window: {len(events)} events, {stats['markers']} markers, first render "
        f"{stats['firstRenderMs']:.0f} ms, 1-hour zoom {hour['renderMs']:.0f} ms, "
        f"page {html.stat().st_size} bytes"
    )
