"""Typed keys of what the admin app shares with its handlers, and the shape of a route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.control.inspector_tail import Tail
from gateway.control.live import LiveSources
from gateway.control.lookup import Lookup
from gateway.control.suppression_live import LiveSuppression
from gateway.ingest.pipeline import Ingest
from gateway.store.committer import Committer

LIVE = web.AppKey("live", LiveSources)
"""This process's sources table and the admin API's records (`gateway.control.live`)."""
TOKEN = web.AppKey("admin_token", str)
SUPPRESSION = web.AppKey("suppression", LiveSuppression)
"""This process's suppressed subjects and the regulations' store
(`gateway.control.suppression_live`)."""
ACCESS_TTL = web.AppKey("access_ttl", float)
"""Seconds an ACCESS regulation's zip stays downloadable (`--access-ttl`)."""
LOOKUP = web.AppKey("lookup", Lookup)
"""Redis and the streams, for `/v1/events` and `/v1/deliveries` (`gateway.control.lookup`)."""
TAIL = web.AppKey("inspector_tail", Tail)
"""The live inspector's reader of the streams (`gateway.control.inspector_tail`)."""
INGEST = web.AppKey("inspector_ingest", Ingest)
COMMITTER = web.AppKey("inspector_committer", Committer)
"""The public app's, for the inspector's test event: it goes the way a real one does."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Routes = dict[str, dict[str, Handler]]
"""Path -> method -> handler, as each family of admin routes lists its routes."""
