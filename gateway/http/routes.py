"""The route table: every path the gateway answers, and the tolerant lookup behind it.

Routing never redirects (a CORS preflight cannot follow a redirect, and a redirected POST
becomes a GET): a path with a trailing or doubled slash reaches the same handler directly.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import (
    analytics_js,
    apidocs,
    commanders_act,
    cors,
    handlers,
    health,
    intilery,
    observe,
    pixel,
    rudderstack_config,
    scrape,
    sdk_metrics,
    sdk_settings,
    webhook,
)
from gateway.http.answering import answering
from gateway.http.app_keys import METRICS
from gateway.http.handlers import Routes


def table(metrics: bool = False) -> Routes:
    """Every route of the public listener; `/metrics` only when asked (`--public-metrics`:
    it belongs on the admin listener)."""
    routes = handlers.routes()
    routes.update(pixel.Pixels().routes())
    routes.update(webhook.routes())
    routes.update(commanders_act.routes())
    routes.update(intilery.routes())
    routes.update(sdk_settings.routes())
    routes.update(analytics_js.routes())
    routes.update(rudderstack_config.routes())
    routes.update(sdk_metrics.routes())
    routes.update(health.routes())
    if metrics:
        routes["/metrics"] = {"GET": scrape.metrics}
    routes.update(apidocs.routes())
    return cors.with_preflight(routes)


def add_routes(app: web.Application, routes: Routes) -> None:
    """Register `routes` exactly, and a fallback that finds them under untidy paths.

    Every handler answers through `answering.answering` (JSON errors, CORS); inside that,
    each answer is counted and has a request id (`gateway.http.observe`). A path may have
    `{name}` segments (aiohttp's syntax): each matches one path segment.
    """
    tally = app[METRICS].tally
    templates = [(_template(path), methods) for path, methods in routes.items() if "{" in path]
    for path, methods in routes.items():
        for method, handler in methods.items():
            app.router.add_route(method, path, answering(observe.wrap(handler, tally, path)))

    async def fallback(request: web.Request) -> web.StreamResponse:
        path = normalize(request.path)
        methods = routes.get(path) or next((m for t, m in templates if t.fullmatch(path)), None)
        if methods is None:
            raise ApiError(404, "No such route", f"{request.method} {request.path}")
        handler = methods.get(request.method)
        if handler is None:
            raise ApiError(
                405,
                f"{request.method} is not allowed here",
                f"allowed: {', '.join(methods)}",
                {"Allow": ", ".join(methods)},
            )
        return await handler(request)

    observed = observe.wrap(fallback, tally, None, routes, normalize)
    app.router.add_route("*", "/{tail:.*}", answering(observed))


_SLASHES = re.compile(r"/{2,}")


def normalize(path: str) -> str:
    """`//v1//track/` -> `/v1/track`."""
    return _SLASHES.sub("/", path).rstrip("/") or "/"


def _template(path: str) -> re.Pattern[str]:
    """`/track/{clientId}/v1` as a pattern whose `{...}` match one path segment each."""
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))
