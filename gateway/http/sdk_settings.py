"""`GET /v1/projects/{writeKey}/settings`: the settings analytics.js fetches before it sends.

analytics-next (`@segment/analytics-next`, `src/browser/index.ts`, `loadCDNSettings`) reads
them from `{cdnURL}/v1/projects/{writeKey}/settings`, by default on Segment's CDN. The answer
here makes it send everything to this gateway and nowhere else:

- `integrations` holds `Segment.io` alone: any other key makes it load destination code
  from Segment's CDN (`hasLegacyDestinations`). `apiKey` is the writeKey it sends as Basic
  auth and body `writeKey`; `apiHost` (host and `/v1`, no scheme) and `protocol` are where
  it posts (`src/plugins/segmentio/index.ts`).
- `metrics.sampleRate: 0`: its usage metrics stay off (`src/core/stats/remote-metrics.ts`
  posts them to `metrics.host`, Segment's by default, unless the rate is 0); `host` points
  here in case a page raises the rate.
- `remotePlugins: []`, `enabledMiddleware: {}`: nothing further to fetch.
- `plan` and `consentSettings`: the source's own, from the sources file.

The mobile SDKs ask their `cdn-settings` host for `/projects/{writeKey}/settings`: the same
answer. An unknown or disabled writeKey (sources mode) is a 404, which analytics-next reports
on the console as a load failure, and then sends nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import JSON, ApiError
from gateway.http import auth
from gateway.http.app_keys import INGEST
from gateway.http.handlers import Handler
from gateway.ingest.sources import Source

PATHS = ("/v1/projects/{writeKey}/settings", "/projects/{writeKey}/settings")
MAX_AGE = 60
"""Seconds a browser or CDN may keep the settings: a changed source shows within a minute."""
UNKNOWN_WRITE_KEY = "Unknown or disabled writeKey"


def source_of(request: web.Request, write_key: str | None) -> Source:
    """The enabled source of `write_key`; a 404 when there is none (sources mode)."""
    source = request.app[INGEST].sources.resolve(write_key)
    if source is None:
        raise ApiError(404, UNKNOWN_WRITE_KEY, "no enabled source has this writeKey")
    return source


def origin_of(request: web.Request) -> tuple[str, str]:
    """The scheme and host browsers reach this gateway at (see `auth.public_origin`)."""
    settings = request.app[INGEST].settings
    origin = auth.public_origin(request, settings.public_url, settings.trusted_proxies)
    if origin is None:
        raise ApiError(400, "Invalid Host", "the request's Host is not a host name")
    return origin


def settings_document(write_key: str, source: Source, scheme: str, host: str) -> dict[str, Any]:
    """The settings of `source` for analytics-next, pointing it at `scheme://host/v1`."""
    api_host = f"{host}/v1"
    document: dict[str, Any] = {
        "integrations": {
            "Segment.io": {"apiKey": write_key, "apiHost": api_host, "protocol": scheme},
        },
        "metrics": {"sampleRate": 0, "host": api_host},
        "remotePlugins": [],
        "enabledMiddleware": {},
        "plan": source.plan or {},
    }
    if source.consent_settings is not None:
        document["consentSettings"] = source.consent_settings
    return document


def cached_json(request: web.Request, document: object) -> web.StreamResponse:
    """`document` as JSON a browser or CDN may keep `MAX_AGE` seconds, with an ETag."""
    body = msgspec.json.encode(document)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"Cache-Control": f"public, max-age={MAX_AGE}", "ETag": etag}
    settings = request.app[INGEST].settings
    if settings.public_url is None:
        # Derived from these headers: a shared cache must not hand one host's answer to another.
        headers["Vary"] = "X-Forwarded-Host, X-Forwarded-Proto"
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=JSON, headers=headers)


async def project_settings(request: web.Request) -> web.StreamResponse:
    """The settings analytics-next needs to send everything to this gateway."""
    # From the path itself: the tolerant fallback (`//v1/projects/WK/settings/`) matches none.
    write_key = [part for part in request.path.split("/") if part][-2]
    source = source_of(request, write_key)
    scheme, host = origin_of(request)
    return cached_json(request, settings_document(write_key, source, scheme, host))


def routes() -> dict[str, dict[str, Handler]]:
    """Path -> method -> handler of the settings routes."""
    return {path: {"GET": project_settings} for path in PATHS}
