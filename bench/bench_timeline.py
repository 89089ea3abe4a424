"""How large a window the timeline page can draw, and how long it takes, in real headless Chromium.

For each event count it builds 50 replicas x 7 days of events and role spans (mostly routine
events, some warnings, rare critical ones, an outage on one lane in seven each day), renders
the page in Python, loads it from a ``file://`` URL and reads the page's own timings:

- ``py``: ``render_html`` in Python; ``size``: the HTML file;
- ``load``: from navigation to the page being drawn (what a user waits for), measured outside;
- ``first``: the first render of all lanes and markers in the page; ``setup``: JSON parse and
  indexes; ``table``: the table of warnings; ``layout``: the browser's layout after drawing;
- ``day``/``hour``: re-rendering after zooming to one day / one hour (a zoom or pan step);
- ``markers``: SVG markers in the DOM at the full view (events are binned per lane and 7 px).

    python bench/bench_timeline.py                         # 10k, 50k, 100k, 200k events
    python bench/bench_timeline.py --events 20000 --screenshots /tmp/tl

Never run by the test suite; needs Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harvester.logs.timeline import render_html  # noqa: E402
from tests.cdp import find_chromium, open_page  # noqa: E402
from tests.timeline_data import large_window  # noqa: E402

READY = "window.__timeline && window.__timeline.ready && window.__timeline"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=50)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--events", default="10000,50000,100000,200000", help="comma-separated totals")
    p.add_argument("--width", type=int, default=1400, help="viewport width in CSS pixels")
    p.add_argument("--screenshots", type=Path, help="write one PNG per size here")
    return p.parse_args(argv)


async def measure(total: int, args: argparse.Namespace, binary: str, folder: Path) -> dict[str, Any]:
    per = max(1, total // (args.replicas * args.days))
    events, spans = large_window(replicas=args.replicas, days=args.days, per_replica_day=per)
    t0 = time.perf_counter()
    page_html = render_html(
        events, spans, title=f"bench {len(events)}", generated_at=datetime.now(UTC), time_note="UTC"
    )
    py = time.perf_counter() - t0
    path = folder / f"timeline-{len(events)}.html"
    path.write_text(page_html, encoding="utf-8")
    async with open_page(binary) as page:
        t0 = time.perf_counter()
        await page.load(path.as_uri(), width=args.width, height=900, timeout=300)
        stats = await page.wait_for(READY, timeout=300)
        load = time.perf_counter() - t0
        start = stats["view"][0] + 86_400_000 * (args.days // 2)
        day = await page.evaluate(
            f"window.__timeline.setView({start}, {start + 86_400_000}) && window.__timeline"
        )
        hour = await page.evaluate(
            f"window.__timeline.setView({start}, {start + 3_600_000}) && window.__timeline"
        )
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            await page.evaluate(f"window.__timeline.setView({stats['view'][0]}, {stats['view'][1]})")
            await page.screenshot(args.screenshots / f"timeline-{len(events)}.png", full_page=False)
        errors = list(page.errors)
    return {
        "events": len(events),
        "py": py,
        "size": path.stat().st_size,
        "load": load,
        "first": stats["firstRenderMs"],
        "setup": stats["setupMs"],
        "table": stats["tableMs"],
        "layout": stats["layoutMs"],
        "day": day["renderMs"],
        "hour": hour["renderMs"],
        "markers": stats["markers"],
        "drawn": stats["markerEvents"],
        "errors": len(errors),
    }


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binary = find_chromium()
    if binary is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    print(f"{args.replicas} replicas x {args.days} days, viewport {args.width} px, {binary}")
    print(
        f"{'events':>8} {'py s':>6} {'MiB':>6} {'load s':>7} {'first ms':>9} {'setup':>6} {'table':>6} "
        f"{'layout':>7} {'day ms':>7} {'hour ms':>8} {'markers':>8} {'drawn':>8} {'errors':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        for total in (int(x) for x in args.events.split(",")):
            r = await measure(total, args, binary, Path(tmp))
            print(
                f"{r['events']:>8} {r['py']:>6.2f} {r['size'] / 2**20:>6.1f} {r['load']:>7.2f} "
                f"{r['first']:>9.0f} {r['setup']:>6.0f} {r['table']:>6.0f} {r['layout']:>7.0f} "
                f"{r['day']:>7.0f} {r['hour']:>8.0f} {r['markers']:>8} {r['drawn']:>8} {r['errors']:>6}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
