"""`POST /v1/m`: analytics-next's usage metrics, taken and counted, never stored as events.

With `apiHost` pointing here, analytics-next posts `{"series": [...]}` to `{apiHost}/m`
every 30 s (`src/core/stats/remote-metrics.ts`) unless its settings' `metrics.sampleRate` is 0,
as this gateway's are. A page that sets its own settings may still send them: each series
counts once in `gateway_sdk_metrics_total` (docs/metrics.md).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import bad_request, success
from gateway.http.app_keys import INGEST, METRICS
from gateway.http.body import read_body
from gateway.http.handlers import Handler

PATH = "/v1/m"


class _Metrics(msgspec.Struct):
    series: list[Any] = []


_decode = msgspec.json.Decoder(_Metrics).decode


async def usage_metrics(request: web.Request) -> web.StreamResponse:
    """Count the series; answer 200 as Segment's API does."""
    body = await read_body(request, request.app[INGEST].settings.max_message_bytes, "The body")
    try:
        series = _decode(body).series
    except msgspec.DecodeError as exc:
        raise bad_request("Invalid JSON", str(exc)) from None
    request.app[METRICS].tally.sdk_metrics += len(series)
    return success()


def routes() -> dict[str, dict[str, Handler]]:
    """Path -> method -> handler."""
    return {PATH: {"POST": usage_metrics}}
