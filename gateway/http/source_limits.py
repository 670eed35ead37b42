"""Per-source rate limits, on every route that stores messages (`handlers.commit`).

A source's `[source.rate_limit]` (`gateway.ingest.policy.RateLimit`) counts messages, not
requests, in the token buckets Intilery's tokens use (`gateway.store.ratelimit`): shared by
every process and every gateway on the Redis, spent from a process's lease without a round
trip when the limit is fast (200/s and more), else checked in groups (one script call per
bucket per turn of the event loop). A request takes its messages' tokens all or none:

- `over_limit = "refuse"`: the whole request is answered 429 with `Retry-After`, and the
  client sends it again later (analytics.js and the server SDKs do); a pixel still gets its
  GIF (`gateway.http.pixel` counts the refusal).
- `over_limit = "drop"`: the messages over the limit are not stored, the request is
  answered as if they were, and `gateway_messages_policy_dropped{source}` counts them; for
  clients that must never retry (pixels, Commanders Act tags).

The per-address budget (`gateway.http.address_budget`) is separate and still applies.
Sources without a limit cost one empty-dict test per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import msgspec
from aiohttp import web

from gateway.errors import ApiError
from gateway.http.app_keys import INGEST, LIMITER, METRICS
from gateway.ingest.policy import RateLimit
from gateway.store.entry import Entry
from gateway.store.ratelimit import Decision, Limit

RATE_LIMITED = "Rate limit exceeded"


class _User(msgspec.Struct):
    userId: object = None
    anonymousId: object = None


_user = msgspec.json.Decoder(_User)


def bucket(source: str, limit: RateLimit, data: bytes) -> str:
    """The bucket an entry of `source` draws from: the source's, or its user's."""
    if not limit.per_user:
        return f"source:{source}"
    user = _user.decode(data)
    who = user.userId if user.userId not in (None, "") else user.anonymousId
    return f"source:{source}:user:{who}"


_SOURCE_BUCKETS: dict[str, tuple[RateLimit, str, Limit]] = {}
"""Per source: its limit, its bucket's name and the limiter's `Limit` for it, made once per
limit rather than per request (a changed limit is a new object, and replaces them)."""


def _source_bucket(source: str, limit: RateLimit) -> tuple[str, Limit]:
    """The bucket of a source without per-user limits, and its `Limit`."""
    made = _SOURCE_BUCKETS.get(source)
    if made is None or made[0] is not limit:
        if len(_SOURCE_BUCKETS) >= 10_000:  # sources come from the table: only a bound
            _SOURCE_BUCKETS.clear()
        made = _SOURCE_BUCKETS[source] = (limit, f"source:{source}", Limit(limit.rate, limit.size))
    return made[1], made[2]


def _one_source(limits: Mapping[str, RateLimit], entries: Sequence[Entry]) -> RateLimit | None:
    """The limit of the entries' one source when they have one (most requests) and it is
    not per user; else None."""
    first = entries[0].source
    limit = limits.get(first)
    if limit is None or limit.per_user:
        return None
    if len(entries) > 1 and not all(entry.source == first for entry in entries):
        return None
    return limit


def _groups(
    limits: Mapping[str, RateLimit], entries: Sequence[Entry]
) -> Mapping[str, tuple[RateLimit, Sequence[Entry]]]:
    """The entries by the bucket they draw from, with its limit; entries of sources without
    a limit are in none."""
    groups: dict[str, tuple[RateLimit, list[Entry]]] = {}
    for entry in entries:
        limit = limits.get(entry.source)
        if limit is not None:
            name = bucket(entry.source, limit, entry.data)
            groups.setdefault(name, (limit, []))[1].append(entry)
    return groups


async def admit(request: web.Request, entries: Sequence[Entry]) -> Sequence[Entry]:
    """The entries to store: all, or those within their source's limit (`drop`); a 429
    when a `refuse` source is over its limit."""
    limits = request.app[INGEST].sources.limits
    if not limits or not entries:
        return entries
    limiter = request.app[LIMITER]
    limit = _one_source(limits, entries)
    if limit is not None:
        name, tokens = _source_bucket(entries[0].source, limit)
        if limiter.take(name, tokens, len(entries)):
            return entries  # the usual request: spent from this process's lease
        asking = [(name, tokens, limit, entries)]
    else:
        asking = [
            (name, tokens, limit, group)
            for name, (limit, group) in _groups(limits, entries).items()
            if not limiter.take(name, tokens := Limit(limit.rate, limit.size), len(group))
        ]
        if not asking:
            return entries
    checks = [limiter.check(name, tokens, len(group)) for name, tokens, _, group in asking]
    # One bucket (one source, not per user) is the usual request: no gather's tasks for it.
    decisions: list[Decision] = (
        [await checks[0]] if len(checks) == 1 else await asyncio.gather(*checks)
    )
    refused = [
        (limit, group, decision)
        for (_, _, limit, group), decision in zip(asking, decisions, strict=True)
        if not decision.allowed
    ]
    if not refused:
        return entries
    ring = request.app[INGEST].ring
    if ring.watching:
        for limit, group, _ in refused:
            ring.note("throttled", group, f"over the source's rate limit ({limit.over_limit})")
    waits = [d.retry_after for limit, _, d in refused if limit.over_limit == "refuse"]
    if waits:
        raise ApiError(429, RATE_LIMITED, headers={"Retry-After": str(max(waits))})
    dropped = {id(entry) for _, group, _ in refused for entry in group}
    tally = request.app[METRICS].tally
    for _, group, _ in refused:
        tally.policy_drop(group[0].source, "rate_limit", len(group))
    return [entry for entry in entries if id(entry) not in dropped]
