"""Open N live inspector pages' feeds against a running gateway, for a harness run.

    python -m bench.inspector_load --admin-url http://127.0.0.1:8081 --pages 10 [--seconds 60]

Each page is one `GET /v1/inspector/feed` (Server-Sent Events) with the admin token
(`--admin-token`, `GATEWAY_ADMIN_TOKEN`, else `<--data-dir>/admin-token`), read until
`--seconds` pass or Ctrl-C; then one line per page: the rows and stats events it received,
the rows the feed said it left out (sampled), and whether it was disconnected (and why).
`open_pages` is the part `bench/run.py` can call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import aiohttp
import msgspec

from gateway.control import token as tokens


@dataclasses.dataclass(slots=True)
class PageResult:
    """What one open page received."""

    rows: int = 0
    stats: int = 0
    left_out: int = 0
    """Rows that matched but the feed did not send (its sampling), from its stats events."""
    disconnected: str | None = None
    """Why the feed ended before it was stopped; None if it stayed open."""

    def line(self, number: int) -> str:
        """One line for the terminal."""
        state = f"disconnected: {self.disconnected}" if self.disconnected else "stayed open"
        return (
            f"page {number}: {self.rows} rows, {self.stats} stats events, "
            f"{self.left_out} left out (sampled), {state}"
        )


async def _read(session: aiohttp.ClientSession, url: str, result: PageResult) -> None:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                result.disconnected = f"HTTP {response.status}"
                return
            name = ""
            async for line in response.content:
                if line.startswith(b"event: "):
                    name = line[7:].strip().decode()
                elif line.startswith(b"data: "):
                    if name == "row":
                        result.rows += 1
                    elif name == "stats":
                        result.stats += 1
                        stats = msgspec.json.decode(line[6:])
                        result.left_out += stats["matched"] - stats["shown"]
            result.disconnected = "the gateway ended the feed"
    except (aiohttp.ClientError, OSError) as exc:
        result.disconnected = str(exc) or type(exc).__name__


async def open_pages(
    admin_url: str, token: str, pages: int, seconds: float | None, query: str = ""
) -> list[PageResult]:
    """Keep `pages` feeds open for `seconds` (until cancelled when None); what each got."""
    results = [PageResult() for _ in range(pages)]
    await _keep_open(results, admin_url, token, seconds, query)
    return results


async def _keep_open(
    results: list[PageResult], admin_url: str, token: str, seconds: float | None, query: str
) -> None:
    url = admin_url.rstrip("/") + "/v1/inspector/feed" + (f"?{query}" if query else "")
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        readers = [asyncio.create_task(_read(session, url, r)) for r in results]
        try:
            await asyncio.wait(readers, timeout=seconds)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)


def _token(options: argparse.Namespace) -> str:
    if options.admin_token:
        return str(options.admin_token)
    return tokens.read(Path(options.data_dir) / tokens.TOKEN_FILE)


def main(argv: list[str] | None = None) -> int:
    """Open the pages, print what each received; exit 1 if any was disconnected."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--admin-url", default=os.environ.get("GATEWAY_ADMIN_URL", "http://127.0.0.1:8081")
    )
    parser.add_argument("--admin-token", default=os.environ.get("GATEWAY_ADMIN_TOKEN"))
    parser.add_argument("--data-dir", default=os.environ.get("GATEWAY_DATA_DIR", "gateway-data"))
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=None, help="default: until Ctrl-C")
    parser.add_argument("--query", default="", help="filters, as the page's URL has them")
    options = parser.parse_args(argv)
    token = _token(options)
    # Filled as the pages read, so that Ctrl-C still prints what they received.
    results = [PageResult() for _ in range(options.pages)]
    opened = _keep_open(results, options.admin_url, token, options.seconds, options.query)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(opened)
    for number, result in enumerate(results, 1):
        print(result.line(number))
    return 1 if any(r.disconnected for r in results) or not results else 0


if __name__ == "__main__":
    sys.exit(main())
