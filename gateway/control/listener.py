"""The admin listener's app: its route table, made of families, behind the token guard.

A family is a module's `routes()` (path -> method -> handler) and `paths()` (their OpenAPI
path items). To add admin routes: write a module with both, add its `Family` to
`FAMILIES`; the guard, JSON errors and the OpenAPI document come with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from aiohttp import web

from gateway.control import (
    events_api,
    events_doc,
    inspector_api,
    inspector_doc,
    openapi,
    plans_api,
    plans_doc,
    regulations_api,
    regulations_doc,
    sources_api,
    sources_doc,
)
from gateway.control.app_keys import LIVE, TOKEN, Routes
from gateway.control.auth import guard
from gateway.control.live import LiveSources
from gateway.control.openapi import PathItems, operation


class Family(NamedTuple):
    """A set of admin routes and their OpenAPI paths."""

    routes: Callable[[], Routes]
    paths: Callable[[], PathItems]


def _no_routes() -> Routes:
    return {}  # `create` serves the document itself


def _document_paths() -> PathItems:
    return {
        "/openapi.json": {
            "get": operation("openapi", "This document", {200: ("The document.", {})})
        },
    }


def _metrics_paths() -> PathItems:
    text = {"schema": {"type": "string"}}
    answer = operation(
        "get_metrics",
        "Prometheus metrics",
        {200: ("The metrics.", None)},
        description="The gateway's counts (every process's, summed), and the spool, streams "
        "and consumer-group lag read at scrape time (docs/metrics.md). OpenMetrics when "
        "asked for in Accept.",
    )
    answer["responses"]["200"]["content"] = {
        "text/plain": text,
        "application/openmetrics-text": text,
    }
    return {"/metrics": {"get": answer}}


FAMILIES: tuple[Family, ...] = (
    Family(_no_routes, _document_paths),
    Family(inspector_api.routes, inspector_doc.paths),
    Family(sources_api.routes, sources_doc.paths),
    Family(regulations_api.routes, regulations_doc.paths),
    Family(events_api.routes, events_doc.paths),
    Family(plans_api.routes, plans_doc.paths),
)


def metrics_family(routes: Routes) -> Family:
    """`/metrics`, whose handler the top level passes in (it reads the public app's counts)."""
    return Family(lambda: routes, _metrics_paths)


def create(token: str, live: LiveSources, extra: Iterable[Family] = ()) -> web.Application:
    """The admin app: `FAMILIES` and `extra`, each call checked against `token`."""
    families = (*FAMILIES, *extra)
    app = web.Application(middlewares=[guard])
    app[TOKEN] = token
    app[LIVE] = live
    table: Routes = {"/openapi.json": {"GET": openapi.handler(tuple(f.paths for f in families))}}
    for family in families:
        table.update(family.routes())
    for path, methods in table.items():
        for method, handle in methods.items():
            app.router.add_route(method, path, handle)
    return app
