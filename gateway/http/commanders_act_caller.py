"""Who a Commanders Act request says it comes from: its source key and site, checked.

`?tc_s={siteId}&token={sourceKey}` (v2), or `?tc_s={siteId}` with `Authorization: Bearer
{sourceKey}` (v1). A refused caller's events still reach the rejected-events stream, so the
check answers with a reason rather than raising.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.ingest.sources import OPEN_SOURCE, Source, Sources


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who a request says it comes from, and whether that is accepted."""

    site_id: str | None
    source: Source | None
    """The source its token belongs to (for the rejected stream even when refused)."""
    refusal: str | None
    """Why none of its events can be accepted; `None` when they may be."""


def authenticate(sources: Sources, token: str | None, site_id: str | None) -> Caller:
    """Check `token` as a source key and `tc_s` against its source's site.

    In open mode (no sources file) every request is accepted as the source `default`:
    nothing is configured to check against, as for writeKeys.
    """
    site_id = site_id or None
    if sources.open:
        return Caller(site_id, OPEN_SOURCE, None)
    if not token:
        return Caller(site_id, None, "missing token")
    source = sources.by_commanders_act_key(token)
    if source is None or source.commanders_act is None:
        return Caller(site_id, None, "unknown token")
    if not source.enabled:
        return Caller(site_id, source, f"source {source.id!r} is disabled")
    if site_id is None:
        return Caller(site_id, source, "missing tc_s")
    if site_id != str(source.commanders_act.site_id):
        return Caller(site_id, source, f"tc_s {site_id!r} is not the site of the token")
    return Caller(site_id, source, None)


def source_key(request: web.Request) -> tuple[str | None, bool]:
    """The source key, and whether it came the v1 way: `?token=` (v2) wins over
    `Authorization: Bearer KEY` (v1)."""
    query = request.query.get("token")
    if query:
        return query, False
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), True
    return None, False
