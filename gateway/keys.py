"""Typed keys of the objects an application shares with its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.committer import Committer
from gateway.ingest import Ingest
from gateway.metrics import Metrics
from gateway.ratelimit import RateLimiter
from gateway.redis_client import AnyRedis
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
INGEST = web.AppKey("ingest", Ingest)
REDIS: web.AppKey[AnyRedis] = web.AppKey("redis")
COMMITTER = web.AppKey("committer", Committer)
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", RateLimiter)
