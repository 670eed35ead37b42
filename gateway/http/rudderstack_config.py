"""`GET /sourceConfig`: the source configuration RudderStack's browser SDKs ask for first.

With `load(writeKey, dataPlaneUrl, {configUrl})` the v3 SDK (`@rudderstack/analytics-js`)
fetches `{configUrl}/sourceConfig/?p=npm&v=...&writeKey=...` with `Authorization: Basic`
(`getSourceConfigURL` in `src/components/configManager/util/commonUtil.ts`), and starts only
when the answer passes `isValidSourceConfig` (`util/validate.ts`): `source` an object with an
`id`, `config` an object and `destinations` an array; `enabled: false` stops it
(`ConfigManager.processConfig`). The v2 SDK (`rudder-sdk-js`) needs `destinations` too.

The answer comes from the sources table: no device-mode destinations (so no destination code
is loaded from RudderStack's CDN), and error and metrics reporting off
(`config.statsCollection`), so the SDK talks to nobody but the data plane, this gateway.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.http import auth
from gateway.http.handlers import Handler
from gateway.http.sdk_settings import cached_json, source_of
from gateway.ingest.sources import Source

PATH = "/sourceConfig"


def source_config(write_key: str, source: Source) -> dict[str, Any]:
    """What RudderStack's control plane would answer for `source`, minus its destinations."""
    off = {"enabled": False}
    return {
        "isHosted": False,
        "source": {
            "id": source.id,
            "name": source.id,
            "writeKey": write_key,
            "enabled": True,
            "workspaceId": "",
            "config": {"statsCollection": {"errors": off, "metrics": off}},
            "destinations": [],
        },
    }


async def get_source_config(request: web.Request) -> web.StreamResponse:
    """The source of the writeKey in the query (or the Basic username); 404 if none."""
    write_key = auth.query_key(request) or auth.basic_username(request)
    source = source_of(request, write_key)
    return cached_json(request, source_config(write_key or "", source))


def routes() -> dict[str, dict[str, Handler]]:
    """Path -> method -> handler (`/sourceConfig/` reaches it too: routing is tolerant)."""
    return {PATH: {"GET": get_source_config}}
