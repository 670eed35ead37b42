"""The route table: every path the gateway answers, and the tolerant lookup behind it.

Routing never redirects (a CORS preflight cannot follow a redirect, and a redirected POST
becomes a GET): a path with a trailing or doubled slash reaches the same handler directly.
"""

from __future__ import annotations

import re
from collections.abc import Collection

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
from gateway.http.address_budget import admission
from gateway.http.answering import answering
from gateway.http.app_keys import ADDRESS_BUDGET, METRICS, SETTINGS
from gateway.http.handlers import Routes


def tables(metrics: bool = False) -> tuple[Routes, Routes]:
    """The tracking routes (browsers' SDKs call them: credentials allowed), and the others
    of the public listener; `/metrics` only when asked (`--public-metrics`: it belongs on
    the admin listener)."""
    tracking = handlers.routes()
    tracking.update(pixel.Pixels().routes())
    tracking.update(commanders_act.routes())
    tracking.update(intilery.routes())
    tracking.update(sdk_settings.routes())
    tracking.update(analytics_js.routes())
    tracking.update(rudderstack_config.routes())
    tracking.update(sdk_metrics.routes())
    others = webhook.routes()
    others.update(health.routes())
    if metrics:
        others["/metrics"] = {"GET": scrape.metrics}
    others.update(apidocs.routes())
    return cors.with_preflight(tracking), cors.with_preflight(others)


def table(metrics: bool = False) -> Routes:
    """Every route of the public listener."""
    tracking, others = tables(metrics)
    return {**tracking, **others}


def add_all(app: web.Application, metrics: bool = False) -> None:
    """Register every route of the public listener on `app` (see `add_routes`)."""
    tracking, others = tables(metrics)
    add_routes(app, {**tracking, **others}, frozenset(tracking))


def add_routes(
    app: web.Application, routes: Routes, credentialed: Collection[str] = frozenset()
) -> None:
    """Register `routes` exactly, and a fallback that finds them under untidy paths.

    Every handler answers through `answering.answering` (JSON errors, CORS: credentials on
    the paths in `credentialed`); inside that, each answer is counted, has a request id and
    is within its address's budget (`gateway.http.observe`). A path may have `{name}`
    segments (aiohttp's syntax): each matches one path segment.
    """
    tally = app[METRICS].tally
    admit = admission(app[ADDRESS_BUDGET], app[SETTINGS].trusted_proxies)
    templates = [(_template(path), path) for path in routes if "{" in path]
    for path, methods in routes.items():
        for method, handler in methods.items():
            observed = observe.wrap(handler, tally, path, admit=admit)
            app.router.add_route(method, path, answering(observed, path in credentialed))

    def find(request: web.Request) -> str | None:
        """The route the request's path is an untidy spelling of, if any."""
        path = normalize(request.path)
        if path in routes:
            return path
        return next((route for t, route in templates if t.fullmatch(path)), None)

    async def fallback(request: web.Request) -> web.StreamResponse:
        route = find(request)
        if route is None:
            raise ApiError(404, "No such route", f"{request.method} {request.path}")
        methods = routes[route]
        handler = methods.get(request.method)
        if handler is None:
            raise ApiError(
                405,
                f"{request.method} is not allowed here",
                f"allowed: {', '.join(methods)}",
                {"Allow": ", ".join(methods)},
            )
        return await handler(request)

    def tracking(request: web.Request) -> bool:
        return find(request) in credentialed

    observed = observe.wrap(fallback, tally, None, routes, normalize, admit=admit)
    # Any character, a newline (`%0A`) included: every path gets the JSON 404 and CORS.
    app.router.add_route("*", r"/{tail:[\s\S]*}", answering(observed, tracking))


_SLASHES = re.compile(r"/{2,}")


def normalize(path: str) -> str:
    """`//v1//track/` -> `/v1/track`."""
    return _SLASHES.sub("/", path).rstrip("/") or "/"


def _template(path: str) -> re.Pattern[str]:
    """`/track/{clientId}/v1` as a pattern whose `{...}` match one path segment each."""
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))
