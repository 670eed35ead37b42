"""A headless Chromium driven over the DevTools protocol, with aiohttp's websocket client.

Just what the browser tests need: open a page, wait for its load, evaluate JavaScript
(awaiting promises). No browser download and no driver package: it runs the Chromium the
system has (Debian's `chromium`), or the one `GATEWAY_TEST_CHROMIUM` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

INSTALL_HINT = (
    "Chromium is not installed: `apt-get update && apt-get install -y chromium` (Debian, Ubuntu),"
    " or set GATEWAY_TEST_CHROMIUM to a Chromium or Chrome binary"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
TIMEOUT = 60.0
"""Bound on any one wait (start, a command, a page load): a hang fails instead of blocking."""

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_binary() -> str | None:
    """The Chromium to run, or None."""
    configured = os.environ.get("GATEWAY_TEST_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium did not start, or a command failed."""


class Page:
    """One tab: navigate, evaluate, what its console said (for failure messages), and every
    URL it requested (the browser's own network log)."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self._browser = browser
        self.session_id = session_id
        self.console: list[str] = []
        self.requests: list[str] = []
        self._loaded = asyncio.Event()

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._browser.send(method, params, self.session_id)

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._loaded.clear()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        async with asyncio.timeout(TIMEOUT):
            await self._loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        """The value of `expression`, a promise's awaited; a JavaScript exception raises."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript failed: {text}\nconsole:\n" + "\n".join(self.console))
        return result["result"].get("value")

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append(
                f"exception: {details.get('exception', {}).get('description', details['text'])}"
            )
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(f"{entry['level']}: {entry['text']} {entry.get('url', '')}")


class Chromium:
    """A running headless Chromium; use `launch()`."""

    def __init__(self, process: asyncio.subprocess.Process, ws: aiohttp.ClientWebSocketResponse):
        self._process = process
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its result."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._ws.send_json(message)
        async with asyncio.timeout(TIMEOUT):
            return await future

    async def new_page(self) -> Page:
        """A new blank tab with its events on."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        return page

    async def _read(self) -> None:
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = frame.json()
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(BrowserError(str(message["error"])))
                else:
                    future.set_result(message.get("result", {}))
            elif message.get("sessionId") in self._pages:
                self._pages[message["sessionId"]]._event(message["method"], message["params"])
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("Chromium closed the DevTools connection"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        try:
            async with asyncio.timeout(10):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


@contextlib.asynccontextmanager
async def launch(binary: str, profile: Path) -> AsyncIterator[Chromium]:
    """Start Chromium with a fresh profile in `profile`; stop it on exit."""
    process = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    said: deque[str] = deque(maxlen=50)
    url = None
    try:
        async with asyncio.timeout(TIMEOUT):
            while url is None:
                line = await process.stderr.readline()
                if not line:
                    raise BrowserError(f"{binary} exited:\n" + "".join(said))
                said.append(line.decode(errors="replace"))
                found = _LISTENING.search(said[-1])
                url = found.group(1) if found else None
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    # Chromium keeps writing to stderr: drain it, or a full pipe would stall the browser.
    drain = asyncio.create_task(_drain(process.stderr, said))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, max_msg_size=0)
        browser = Chromium(process, ws)
        try:
            yield browser
        finally:
            await browser.close()
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


async def _drain(stream: asyncio.StreamReader, said: deque[str]) -> None:
    while line := await stream.readline():
        said.append(line.decode(errors="replace"))
