"""First-party analytics.js: the build the operator installed, under Segment's CDN paths.

`--analytics-js DIR` names the `dist/umd` folder of the `@segment/analytics-next` npm package.
Its `standalone.js` is what Segment's snippet loads as
`{cdn}/analytics.js/v1/{writeKey}/analytics.min.js`; that script then loads its chunks from
`{cdn}/analytics-next/bundles/{name}` (`src/browser/standalone.ts` sets webpack's public path
from `getCDN()`), and its settings from `{cdn}/v1/projects/{writeKey}/settings`. `getCDN()`
(`src/lib/parse-cdn.ts`) is `analytics._cdn` when the page sets it, else the origin of a
script whose URL has the shape above and is https: a snippet with only its host changed
loads everything from here.

Files are served as they are on disk, with the `.gz` beside each (the npm package ships them)
when the browser accepts gzip, an ETag and `Last-Modified`. The chunks' names carry a hash of
their content, so they may be cached for good; the script's name does not.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import ApiError
from gateway.http.app_keys import INGEST
from gateway.http.handlers import Handler
from gateway.http.sdk_settings import source_of

SCRIPT_PATH = "/analytics.js/v1/{writeKey}/analytics.min.js"
BUNDLES_PATH = "/analytics-next/bundles/{name}"
SCRIPT = "standalone.js"
SCRIPT_CACHE = "public, max-age=300"
"""Five minutes: a new build reaches browsers soon after a deploy."""
BUNDLE_CACHE = "public, max-age=31536000, immutable"
_BUNDLE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.js(\.map)?")
"""A chunk's file name: no directory, nothing that is not JavaScript or its source map."""


def _file(request: web.Request, name: str, cache: str) -> web.StreamResponse:
    directory = request.app[INGEST].settings.analytics_js
    if directory is None:
        raise ApiError(
            404, "No analytics.js here", "the gateway serves one with --analytics-js DIR"
        )
    path = directory / name
    if not path.is_file():
        raise ApiError(404, "No such file", f"{name} is not in the analytics.js build")
    return web.FileResponse(path, headers={"Cache-Control": cache})


async def script(request: web.Request) -> web.StreamResponse:
    """analytics.js for a writeKey (404 for an unknown or disabled one, in sources mode)."""
    source_of(request, [part for part in request.path.split("/") if part][-2])
    return _file(request, SCRIPT, SCRIPT_CACHE)


async def bundle(request: web.Request) -> web.StreamResponse:
    """A chunk the script loads later."""
    name = request.path.rstrip("/").rsplit("/", 1)[-1]
    if not _BUNDLE.fullmatch(name):
        raise ApiError(404, "No such file", "not a chunk of analytics.js")
    return _file(request, name, BUNDLE_CACHE)


def routes() -> dict[str, dict[str, Handler]]:
    """Path -> method -> handler of the analytics.js files."""
    return {
        SCRIPT_PATH: {"GET": script, "HEAD": script},
        BUNDLES_PATH: {"GET": bundle, "HEAD": bundle},
    }
