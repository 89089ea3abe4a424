"""A small Chrome DevTools Protocol client: load a page in real headless Chromium and look at it.

Test support only (the browser checks of the timeline page and its bench): Debian's
``chromium`` is started with ``--remote-debugging-port=0``; the port it picked is read from
the ``DevToolsActivePort`` file in its fresh user-data-dir, and the page target is driven over
a websocket with aiohttp (already a dependency). Console errors, uncaught exceptions and
``Log`` errors are collected while the page runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.polling import DEADLINE, eventually

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """The Chromium binary, if installed (Debian's ``chromium`` package)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@dataclass
class Page:
    """One page target: send commands, keep events, remember every error the page reported."""

    ws: aiohttp.ClientWebSocketResponse
    errors: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._waiting.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
                continue
            self.events.append(data)
            self._note_error(data)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("DevTools connection closed"))

    def _note_error(self, data: dict[str, Any]) -> None:
        method, params = data.get("method"), data.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append(f"console.{params['type']}: {' '.join(args)}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (exceptions become errors here too)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate {expression!r}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = DEADLINE) -> Any:
        """Poll ``expression`` until it is truthy; its value, or AssertionError at the deadline."""
        return await eventually(
            lambda: self.evaluate(expression),
            what=f"the page to satisfy {expression!r}",
            timeout=timeout,
            every=0.05,
        )

    async def wait_event(self, method: str, timeout: float = DEADLINE) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            return next((ev for ev in self.events if ev.get("method") == method), None)

        return await eventually(seen, what=f"a {method} event", timeout=timeout, every=0.02)

    async def load(
        self, url: str, *, width: int = 1400, height: int = 900, timeout: float = DEADLINE
    ) -> None:
        """Navigate to ``url`` at the given viewport size and wait for its load event."""
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        reply = await self.send("Page.navigate", url=url)
        if reply.get("errorText"):
            raise RuntimeError(f"navigate {url}: {reply['errorText']}")
        await self.wait_event("Page.loadEventFired", timeout)

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (the whole scrollable height with ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = await self.send("Page.captureScreenshot", timeout=60.0, **params)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@contextlib.asynccontextmanager
async def open_page(binary: str, *, startup_timeout: float = DEADLINE) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own temporary profile) and its blank page; both gone on exit."""
    profile = Path(tempfile.mkdtemp(prefix="cdp-profile-"))
    proc = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        await eventually(
            lambda: port_file.exists() and port_file.read_text().count("\n") >= 1,
            what="chromium to start",
            timeout=startup_timeout,
            every=0.05,
            stop=lambda: None if proc.returncode is None else f"it exited ({proc.returncode})",
        )
        port = int(port_file.read_text().split("\n", 1)[0])
        async with aiohttp.ClientSession() as http:

            async def page_target() -> str:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), "")

            page_ws = await eventually(page_target, what="chromium's page target", timeout=startup_timeout)
            async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                page = Page(ws)
                page.start()
                try:
                    yield page
                finally:
                    if page._reader is not None:
                        page._reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await page._reader
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
