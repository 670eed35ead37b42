"""`/v1/sources`: sources and their keys, made, disabled, rotated and revoked at run time.

Each change is written to Redis (`gateway.control.store`), then this process reads the
records again before answering, so that the answer's change is in force here; the other
processes follow within a poll (`gateway.control.live`). The sources file's sources are
listed read-only.
"""

from __future__ import annotations

import time
from typing import TypeVar

import msgspec
from aiohttp import web

from gateway.control.app_keys import LIVE, Routes
from gateway.control.live import LiveSources
from gateway.control.policy_records import POLICY_FIELDS, body_keys, changed, shown_policies
from gateway.control.records import Identity, KeyRecord, SourceRecord, hint, new_key, record_key
from gateway.control.schemas import (
    KeyView,
    NewKey,
    NewSource,
    Rotation,
    SourceChange,
    SourcesView,
    SourceView,
    masked,
    shown,
)
from gateway.errors import JSON, ApiError, invalid
from gateway.ingest.policy import NO_POLICIES
from gateway.ingest.sources import Source

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def routes() -> Routes:
    """The family's routes."""
    return {
        "/v1/sources": {"GET": list_sources, "POST": create_source},
        "/v1/sources/{id}": {"GET": get_source, "PATCH": change_source},
        "/v1/sources/{id}/keys": {"POST": add_key},
        "/v1/sources/{id}/keys/{keyId}/rotate": {"POST": rotate_key},
        "/v1/sources/{id}/keys/{keyId}": {"DELETE": revoke_key},
    }


async def list_sources(request: web.Request) -> web.Response:
    """`GET /v1/sources`: every source, its keys masked, and the mode in force."""
    live = request.app[LIVE]
    views = [_file_view(s) for s in live.file or ()]
    views += [_api_view(live, r) for r in live.records.sources.values()]
    return _answer(SourcesView("open" if live.table.open else "sources", views))


async def get_source(request: web.Request) -> web.Response:
    """`GET /v1/sources/{id}`."""
    live = request.app[LIVE]
    return _answer(_view(live, request.match_info["id"]))


async def create_source(request: web.Request) -> web.Response:
    """`POST /v1/sources`: 201 with the source; 409 when its id is taken."""
    body = await _body(request, NewSource)
    live = request.app[LIVE]
    if any(s.id == body.id for s in live.file or ()):
        raise _conflict(f"source {body.id!r} exists in the sources file")
    policies = changed(NO_POLICIES, body, POLICY_FIELDS)
    record = SourceRecord(
        id=body.id, enabled=body.enabled, createdAt=time.time(), policies=policies
    )
    if not await live.store.create(record):
        raise _conflict(f"source {body.id!r} exists")
    await live.refresh()
    return _answer(_api_view(live, record), 201)


async def change_source(request: web.Request) -> web.Response:
    """`PATCH /v1/sources/{id}`: enable or disable it, change the policies named."""
    body = await _body(request, SourceChange)
    named = body_keys(await request.read())
    live = request.app[LIVE]
    record = await _api_source(live, request.match_info["id"])
    new = msgspec.structs.replace(
        record,
        enabled=record.enabled if body.enabled is None else body.enabled,
        policies=changed(record.policies, body, named),
    )
    await live.store.put(new)
    await live.refresh()
    return _answer(_api_view(live, new))


async def add_key(request: web.Request) -> web.Response:
    """`POST /v1/sources/{id}/keys`: 201 with the key, shown this once."""
    body = await _body(request, NewKey)
    live = request.app[LIVE]
    source = await _api_source(live, request.match_info["id"])
    identity = _identity(live, source.id, body)
    key = new_key(body.kind)
    record = record_key(key, source.id, body.kind, identity)
    await live.store.put(record)
    await live.refresh()
    return _answer(shown(record, key), 201)


async def rotate_key(request: web.Request) -> web.Response:
    """`POST .../keys/{keyId}/rotate`: a new key like the old; the old one keeps working for
    `graceSeconds`, then stops."""
    body = await _body(request, Rotation, empty_ok=True)
    live = request.app[LIVE]
    old = await _key(live, request.match_info["id"], request.match_info["keyId"])
    key = new_key(old.kind)
    identity = Identity(siteId=old.siteId, client=old.client, account=old.account, brand=old.brand)
    record = record_key(key, old.source, old.kind, identity)
    if body.graceSeconds > 0:
        ends = time.time() + body.graceSeconds
        if old.expiresAt is not None:
            ends = min(ends, old.expiresAt)
        await live.store.put(record, msgspec.structs.replace(old, expiresAt=ends))
    else:
        await live.store.put(record)
        await live.store.delete(old)
    ended = [k for k in live.records.keys.values() if k.expired(time.time())]
    if ended:  # the graces of earlier rotations: nothing keeps their records any more
        await live.store.delete(*ended)
    await live.refresh()
    return _answer(shown(record, key, replaces=old.id), 201)


async def revoke_key(request: web.Request) -> web.Response:
    """`DELETE .../keys/{keyId}`: 204; the key stops now."""
    live = request.app[LIVE]
    old = await _key(live, request.match_info["id"], request.match_info["keyId"])
    await live.store.delete(old)
    await live.refresh()
    return web.Response(status=204)


def _view(live: LiveSources, source_id: str) -> SourceView:
    for source in live.file or ():
        if source.id == source_id:
            return _file_view(source)
    record = live.records.sources.get(source_id)
    if record is None:
        raise ApiError(404, "No such source", source_id)
    return _api_view(live, record)


def _file_view(source: Source) -> SourceView:
    keys = [KeyView(kind="write_key", key=hint(k)) for k in source.write_keys]
    if source.commanders_act is not None:
        site = str(source.commanders_act.site_id)
        keys += [
            KeyView(kind="commanders_act", key=hint(k), siteId=site)
            for k in source.commanders_act.source_keys
        ]
    if source.intilery is not None:
        client, account = source.intilery.client, source.intilery.account
        tokens: list[tuple[str, str | None]] = [(k, None) for k in source.intilery.tokens]
        tokens += [(k, b) for b, listed in source.intilery.brands.items() for k in listed]
        keys += [
            KeyView(kind="intilery", key=hint(k), client=client, account=account, brand=b)
            for k, b in tokens
        ]
    return SourceView(
        id=source.id,
        enabled=source.enabled,
        origin="file",
        readOnly=True,
        keys=keys,
        policies=shown_policies(source),
    )


def _api_view(live: LiveSources, record: SourceRecord) -> SourceView:
    now = time.time()
    keys = [
        masked(k)
        for k in live.records.keys.values()
        if k.source == record.id and not k.expired(now)
    ]
    keys.sort(key=lambda k: k.createdAt or 0)
    return SourceView(
        id=record.id,
        enabled=record.enabled,
        origin="api",
        readOnly=False,
        keys=keys,
        createdAt=record.createdAt,
        policies=shown_policies(record.policies),
    )


async def _api_source(live: LiveSources, source_id: str) -> SourceRecord:
    """The API source `source_id`, from Redis as it is now; 409 for the file's, else 404."""
    if any(s.id == source_id for s in live.file or ()):
        raise _conflict(
            f"source {source_id!r} is from the sources file: change it there (read-only here)"
        )
    await live.refresh()
    record = live.records.sources.get(source_id)
    if record is None:
        raise ApiError(404, "No such source", source_id)
    return record


async def _key(live: LiveSources, source_id: str, key_id: str) -> KeyRecord:
    await _api_source(live, source_id)
    record = live.records.keys.get(key_id)
    if record is None or record.source != source_id or record.expired(time.time()):
        raise ApiError(404, "No such key", f"{key_id} of source {source_id}")
    return record


def _identity(live: LiveSources, source_id: str, body: NewKey) -> Identity:
    """What a key of `body.kind` needs, checked against the source's other keys."""
    siblings = [
        k for k in live.records.keys.values() if k.source == source_id and k.kind == body.kind
    ]
    if body.kind == "commanders_act":
        site = body.site_id if body.site_id is not None else body.siteId
        if site is None:
            raise invalid("A commanders_act key needs site_id", "the tc_s its clients send")
        other = next((k.siteId for k in siblings if k.siteId != str(site)), None)
        if other is not None:
            raise _conflict(f"the source's Commanders Act keys are for site {other!r}")
        return Identity(siteId=str(site))
    if body.kind == "intilery":
        if body.client is None or body.account is None:
            raise invalid("An intilery key needs client and account", "as in Intilery's path")
        owner = live.table.account_owner(body.client, body.account)
        if owner is not None and owner.id != source_id:
            raise _conflict(f"Intilery account is configured under source {owner.id!r}")
        mine = next((k for k in siblings if k.client and k.account), None)
        if mine is not None and (mine.client, mine.account) != (body.client, body.account):
            raise _conflict(f"the source is Intilery account {mine.client}/{mine.account}")
        return Identity(client=body.client, account=body.account, brand=body.brand)
    return Identity()


async def _body(request: web.Request, cls: type[T], empty_ok: bool = False) -> T:
    raw = await request.read()
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=cls)
    except msgspec.ValidationError as exc:
        raise invalid("Invalid request body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise invalid("The body is not JSON", str(exc)) from None


def _conflict(details: str) -> ApiError:
    return ApiError(409, "Conflict", details)


def _answer(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(value), content_type=JSON)
