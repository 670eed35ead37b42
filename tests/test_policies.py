"""Per-source policies (docs/policies.md): IP, personal fields, allowed origins, no_consent,
rate limits, from the sources file and through the admin API, against a real Redis."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from gateway.constants import REJECTED_STREAM
from gateway.http.app_keys import LIMITER
from gateway.ingest.policy import FieldAction, Policies, RateLimit
from gateway.ingest.redact import Enforcer, truncate_ip
from gateway.ingest.sources import CommandersAct, Source, Sources, SourcesError, read_file
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.streams import read_stream, stream_messages

SECRET = "s3cret-for-hashing-0123"
CA_TOKEN = "ca-token-web"
EMAIL = "ada.lovelace@example.com"
CARD = "4111111111111111"


def web(**policies: Any) -> Source:
    return Source(
        id="web",
        write_keys=["wk_web"],
        commanders_act=CommandersAct(site_id=7, source_keys=[CA_TOKEN]),
        **policies,
    )


OTHER = Source(id="other", write_keys=["wk_other"])


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def every_value_in_redis(redis: Redis) -> bytes:
    """Every key's name and serialized content (`DUMP`: any type), to look for a clear value
    anywhere in Redis."""
    out: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        out += [key, await redis.dump(key) or b""]
    return b"\n".join(out)


def test_truncate_ip() -> None:
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:abcd:12:1:2:3:4") == "2001:db8:abcd::"
    assert truncate_ip("::ffff:198.51.100.9") == "198.51.100.0"
    assert truncate_ip("not an address") is None
    assert truncate_ip("1.2.3.999x") is None


async def test_ip_truncate_wherever_the_address_came_from(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(Sources([web(ip="truncate"), OTHER]), trusted_proxies="127.0.0.1/32")
    # The socket's address (a browser: an Origin header), one from a trusted proxy, the
    # client's own context.ip, Commanders Act's device.ip; and another source, untouched.
    sent = [
        ("/v1/track", {"Origin": "https://shop.example"}, {"userId": "u", "event": "A"}),
        (
            "/v1/track",
            {"X-Forwarded-For": "198.51.100.23", "Origin": "https://s.example"},
            {"userId": "u", "event": "B"},
        ),
        ("/v1/track", {}, {"userId": "u", "event": "C", "context": {"ip": "2001:db8:1:2::9"}}),
    ]
    for path, headers, body in sent:
        response = await client.post(path, json=body, headers={**headers, **basic("wk_web")})
        assert response.status == 200, await response.text()
    event = {
        "event_name": "view",
        "user": {"id": "u"},
        "context": {"device": {"ip": "192.0.2.201"}},
    }
    response = await client.post("/events", params={"tc_s": "7", "token": CA_TOKEN}, json=event)
    assert response.status == 200, await response.text()
    response = await client.post(
        "/v1/track",
        json={"userId": "u", "event": "D", "context": {"ip": "192.0.2.201"}},
        headers=basic("wk_other"),
    )
    assert response.status == 200
    stored = await stream_messages(redis)
    ips = {m.get("event", m.get("event_name")): m["context"]["ip"] for m in stored}
    assert ips == {
        "A": "127.0.0.0",
        "B": "198.51.100.0",
        "C": "2001:db8:1::",
        "view": "192.0.2.0",
        "D": "192.0.2.201",
    }


async def test_ip_drop(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(Sources([web(ip="drop")]))
    body = {"userId": "u", "event": "A", "context": {"ip": "192.0.2.1", "locale": "fr"}}
    response = await client.post("/v1/track", json=body, headers=basic("wk_web"))
    assert response.status == 200
    [stored] = await stream_messages(redis)
    assert stored["context"] == {"locale": "fr"}


async def test_fields_hashed_alike_across_routes_and_dropped(
    make_client: MakeClient, redis: Redis
) -> None:
    fields = {
        "traits.email": "hash",
        "context.traits.email": "hash",
        "properties.card": "drop",
        "properties.address.*": "drop",
    }
    client = await make_client(Sources([web(fields=fields, hash_secret=SECRET)]))
    identify = {"userId": "u1", "traits": {"email": EMAIL, "plan": "pro"}}
    response = await client.post("/v1/identify", json=identify, headers=basic("wk_web"))
    assert response.status == 200
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Paid",
        "properties": {"card": CARD, "total": 3, "address": {"street": "1 Main St"}},
        "context": {"traits": {"email": EMAIL}},
    }
    response = await client.post("/v1/batch", json={"batch": [track], "writeKey": "wk_web"})
    assert response.status == 200
    first, second = await stream_messages(redis)
    expected = hmac.new(SECRET.encode(), EMAIL.encode(), hashlib.sha256).hexdigest()
    assert first["traits"] == {"email": expected, "plan": "pro"}
    assert second["context"]["traits"]["email"] == expected
    assert second["properties"] == {"total": 3, "address": {}}
    everything = await every_value_in_redis(redis)
    assert EMAIL.encode() not in everything
    assert CARD.encode() not in everything
    assert b"1 Main St" not in everything


async def test_a_path_that_matches_nothing_changes_nothing(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(
        Sources(
            [web(fields={"traits.email": "drop", "properties.a.b.c": "hash"}, hash_secret=SECRET)]
        )
    )
    body = {"userId": "u", "event": "A", "properties": {"a": "text"}}
    assert (await client.post("/v1/track", json=body, headers=basic("wk_web"))).status == 200
    [stored] = await stream_messages(redis)
    assert stored["properties"] == {"a": "text"}


async def test_allowed_origins(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(Sources([web(allowed_origins=["https://shop.example"]), OTHER]))
    body = {"userId": "u", "event": "A"}
    allowed = await client.post(
        "/v1/track", json=body, headers={"Origin": "https://shop.example", **basic("wk_web")}
    )
    assert allowed.status == 200
    refused = await client.post(
        "/v1/track", json=body, headers={"Origin": "https://copycat.example", **basic("wk_web")}
    )
    assert refused.status == 400
    assert await refused.json() == {
        "Error": "Bad Request",
        "Message": "Origin not allowed",
        "Details": "https://copycat.example may not send to this source",
    }
    # The page can read the refusal.
    assert refused.headers["Access-Control-Allow-Origin"] == "https://copycat.example"
    batch = await client.post(
        "/v1/batch",
        json={"batch": [{"type": "track", **body}], "writeKey": "wk_web"},
        headers={"Origin": "https://copycat.example"},
    )
    assert batch.status == 400
    assert (await batch.json())["Message"] == "Origin not allowed"
    # A server (no Origin) and another source are not concerned.
    assert (await client.post("/v1/track", json=body, headers=basic("wk_web"))).status == 200
    other = await client.post(
        "/v1/track", json=body, headers={"Origin": "https://copycat.example", **basic("wk_other")}
    )
    assert other.status == 200
    assert len(await stream_messages(redis)) == 3


async def test_no_consent_withhold_marks_the_message(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(Sources([web(no_consent="withhold")]))
    granted = {"categoryPreferences": {"advertising": True}}
    for context in ({}, {"consent": granted}):
        body = {"userId": "u", "event": "A", "context": context}
        assert (await client.post("/v1/track", json=body, headers=basic("wk_web"))).status == 200
    without, given = await stream_messages(redis)
    assert without["context"]["consent"] == {"categoryPreferences": {}}
    assert given["context"]["consent"] == granted


async def test_rate_limit_refuses_with_retry_after(make_client: MakeClient, redis: Redis) -> None:
    limited = web(rate_limit=RateLimit(rate=0.01, burst=5))
    client = await make_client(Sources([limited, OTHER]))
    body = {"userId": "u", "event": "A"}
    # A batch of 3 takes 3 tokens: 2 are left, so a second batch of 3 is refused whole.
    batch = {"batch": [{"type": "track", **body}] * 3, "writeKey": "wk_web"}
    assert (await client.post("/v1/batch", json=batch)).status == 200
    assert (await client.post("/v1/batch", json=batch)).status == 429
    statuses = [
        (await client.post("/v1/track", json=body, headers=basic("wk_web"))).status
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    refused = await client.post("/v1/track", json=body, headers=basic("wk_web"))
    assert refused.status == 429
    assert 90 <= int(refused.headers["Retry-After"]) <= 100
    assert (await refused.json())["Message"] == "Rate limit exceeded"
    # Other sources have their own budget (none here).
    for _ in range(10):
        other = await client.post("/v1/track", json=body, headers=basic("wk_other"))
        assert other.status == 200
    stored = await stream_messages(redis)
    assert sum(m["_source"] == "web" for m in stored) == 5


async def test_a_fast_rate_limit_is_spent_without_a_round_trip_a_request(
    make_client: MakeClient, redis: Redis
) -> None:
    # 100,000/s: the process leases 1,000 tokens at a time (`gateway.store.ratelimit`).
    client = await make_client(Sources([web(rate_limit=RateLimit(rate=100_000)), OTHER]))
    body = {"userId": "u", "event": "A"}
    for _ in range(50):
        response = await client.post("/v1/track", json=body, headers=basic("wk_web"))
        assert response.status == 200
    assert client.app[LIMITER].flushes <= 3  # the first request's, and leases ahead
    assert len(await stream_messages(redis)) == 50


async def test_rate_limit_per_user(make_client: MakeClient, redis: Redis) -> None:
    limited = web(rate_limit=RateLimit(rate=0.01, burst=2, per_user=True))
    client = await make_client(Sources([limited]))
    statuses = []
    for user in ("a", "a", "a", "b", "b", "b"):
        body = {"userId": user, "event": "A"}
        statuses.append((await client.post("/v1/track", json=body, headers=basic("wk_web"))).status)
    assert statuses == [200, 200, 429, 200, 200, 429]


async def test_rate_limit_drop_answers_200_and_counts(
    make_client: MakeClient, redis: Redis
) -> None:
    limited = web(rate_limit=RateLimit(rate=0.01, burst=2, over_limit="drop"))
    client = await make_client(Sources([limited]))
    event = {"event_name": "view", "user": {"id": "u"}}
    params = {"tc_s": "7", "token": CA_TOKEN}
    statuses = [(await client.post("/events", params=params, json=event)).status for _ in range(3)]
    data = base64.b64encode(
        msgspec.json.encode({"writeKey": "wk_web", "userId": "u", "event": "Opened"})
    ).decode()
    pixel = await client.get("/v1/pixel/track", params={"data": data})
    assert statuses == [200, 200, 200]
    assert pixel.status == 200
    assert pixel.content_type == "image/gif"
    assert "X-Pixel-Rejected" not in pixel.headers  # dropped: answered as if stored
    assert len(await stream_messages(redis)) == 2
    await asyncio.sleep(0)
    metrics = await (await admin_of(client).get("/metrics")).text()
    line = 'gateway_messages_policy_dropped_total{policy="rate_limit",source="web"} 2.0'
    assert line in metrics


async def test_policies_through_the_admin_api(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(Sources([OTHER]))
    admin = admin_of(client)
    created = await admin.post("/v1/sources", json={"id": "api", "ip": "drop"})
    assert created.status == 201
    assert (await created.json())["policies"] == {"ip": "drop"}
    key = (await (await admin.post("/v1/sources/api/keys", json={"kind": "write_key"})).json())[
        "key"
    ]
    change = {"fields": {"traits.email": "hash"}, "rate_limit": {"rate": 0.01, "burst": 2}}
    changed = await admin.patch("/v1/sources/api", json=change)
    assert changed.status == 200, await changed.text()
    view = (await changed.json())["policies"]
    assert view == {
        "ip": "drop",
        "fields": {"traits.email": "hash"},
        "hash_secret": "********",
        "rate_limit": {"rate": 0.01, "burst": 2},
    }
    body = {"userId": "u", "traits": {"email": EMAIL}, "context": {"ip": "192.0.2.1"}}
    statuses = [
        (await client.post("/v1/identify", json=body, headers=basic(key))).status for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    first, _ = await stream_messages(redis)
    assert "ip" not in first["context"]
    assert len(first["traits"]["email"]) == 64
    assert EMAIL.encode() not in await every_value_in_redis(redis)
    # A PATCH changes only what it names; null clears the rate limit.
    cleared = await admin.patch("/v1/sources/api", json={"rate_limit": None, "enabled": True})
    assert (await cleared.json())["policies"]["ip"] == "drop"
    assert (await client.post("/v1/identify", json=body, headers=basic(key))).status == 200
    bad = await admin.patch("/v1/sources/api", json={"ip": "half"})
    assert bad.status == 400


def test_a_hashed_field_needs_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "web"\nwrite_keys = ["k"]\nip = "truncate"\n'
        '[source.fields]\n"traits.email" = "hash"\n'
    )
    with pytest.raises(SourcesError, match="hash_secret"):
        read_file(path)
    path.write_text(path.read_text().replace('ip = "truncate"', f'hash_secret = "{SECRET}"'))
    [source] = read_file(path) or []
    assert source.fields == {"traits.email": "hash"}
    assert isinstance(source, Policies)


async def test_a_refused_commanders_act_event_is_not_stored_as_sent(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(Sources([web(fields={"user.email": "drop"}, ip="truncate")]))
    event = {"user": {"id": "u", "email": EMAIL}, "context": {"device": {"ip": "192.0.2.201"}}}
    response = await client.post("/events", params={"tc_s": "7", "token": CA_TOKEN}, json=event)
    assert response.status == 200  # no event_name: refused, recorded, answered 200
    [(_, fields)] = await read_stream(redis, REJECTED_STREAM)
    record = msgspec.json.decode(fields[b"data"])
    assert record["body"] == ""
    assert record["truncated"] > 0
    everything = await every_value_in_redis(redis)
    assert EMAIL.encode() not in everything
    assert b"192.0.2.201" not in everything


def test_each_field_rule_changes_a_value_once() -> None:
    # `*` takes the keys no rule of its level names: `properties.card` is dropped, and
    # `properties.name` hashed once, not twice; `*` and a path under it both apply. A key is
    # only ever data (the step is compiled from the paths): quotes and backslashes included.
    odd = "o'k\"\\"
    fields: dict[str, FieldAction] = {
        "properties.*": "hash",
        "properties.card": "drop",
        "properties.name": "hash",
        "context.device.*": "hash",
        "context.traits.phone": "drop",
        f"context.{odd}": "drop",
        "absent.path": "drop",
    }
    msgspec.convert({"fields": fields}, Policies)  # the sources file takes these paths
    enforcer = Enforcer(Policies(fields=fields, hash_secret=SECRET))
    message: dict[str, Any] = {
        "properties": {"card": CARD, "total": 3, "name": "x"},
        "context": {
            "traits": {"email": EMAIL, "phone": "1"},
            "device": {"id": "d1"},
            "ip": "1.2.3.4",
            odd: "gone",
        },
    }
    enforcer.apply(message)

    def digest(value: bytes) -> str:
        return hmac.new(SECRET.encode(), value, hashlib.sha256).hexdigest()

    assert message == {
        "properties": {"total": digest(b"3"), "name": digest(b"x")},
        "context": {
            "traits": {"email": EMAIL},
            "device": {"id": digest(b"d1")},
            "ip": "1.2.3.4",
        },
    }


def test_paths_without_a_star_follow_dicts_only() -> None:
    fields: dict[str, FieldAction] = {
        "traits.email": "hash",
        "context.traits.email": "hash",
        "properties.card": "drop",
    }
    enforcer = Enforcer(Policies(fields=fields, hash_secret=SECRET))
    message: dict[str, Any] = {
        "traits": {"email": EMAIL, "plan": "pro"},
        "context": {"traits": "not an object"},  # nothing under it to change
        "properties": {"card": {"number": CARD}, "total": 3},  # dropped whole
    }
    enforcer.apply(message)
    expected = hmac.new(SECRET.encode(), EMAIL.encode(), hashlib.sha256).hexdigest()
    assert message == {
        "traits": {"email": expected, "plan": "pro"},
        "context": {"traits": "not an object"},
        "properties": {"total": 3},
    }
