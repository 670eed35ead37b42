"""Typed keys of what the admin app shares with its handlers, and the shape of a route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.control.live import LiveSources

LIVE = web.AppKey("live", LiveSources)
"""This process's sources table and the admin API's records (`gateway.control.live`)."""
TOKEN = web.AppKey("admin_token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Routes = dict[str, dict[str, Handler]]
"""Path -> method -> handler, as each family of admin routes lists its routes."""
