"""Typed keys of the objects an application shares with its handlers, and that its
resources share with each other while they start (`gateway.app`)."""

from __future__ import annotations

from aiohttp import web

from gateway.http.address_budget import AddressBudget
from gateway.http.body_limits import BodyLimits
from gateway.ingest.pipeline import Ingest
from gateway.ops.metrics import Metrics
from gateway.settings import Settings
from gateway.store.committer import Committer
from gateway.store.first_contact import FirstContact
from gateway.store.ratelimit import RateLimiter
from gateway.store.redis_client import AnyRedis
from gateway.store.refusals import Refusals
from gateway.store.spool import Spool
from gateway.store.writers import EntryWriter

SETTINGS = web.AppKey("settings", Settings)
INGEST = web.AppKey("ingest", Ingest)
REDIS: web.AppKey[AnyRedis] = web.AppKey("redis")
COMMITTER = web.AppKey("committer", Committer)
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", RateLimiter)
WRITER: web.AppKey[EntryWriter] = web.AppKey("writer")
SPOOL = web.AppKey("spool", Spool)
FIRST_CONTACT = web.AppKey("first_contact", FirstContact)
BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
ADDRESS_BUDGET = web.AppKey("address_budget", AddressBudget)
REFUSALS = web.AppKey("refusals", Refusals)
"""Refused messages not yet written to Redis (`gateway.store.refusals`)."""
