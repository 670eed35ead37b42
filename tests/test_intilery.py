"""Intilery's HTTP tracking API (shared/seeds/004_*): its example payloads, auth, answers.

The document's examples are all valid JSON as printed, so they are sent verbatim. One is
not valid as data: the batch's last two items have the timestamp `2015-2-02T...`, a
single-digit month that ISO-8601 does not allow. The gateway pads it (`2015-02-02T...`)
rather than refusing the batch, and the test checks that padded value.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ingest.intilery_source import Intilery
from gateway.ingest.sources import CommandersAct, Source, Sources, SourcesError
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import read_stream, stream_messages

BASE = "/track/acme/shop/SHOP/v1"
ACCOUNT_TOKEN = "tok_every_brand"
BRAND_TOKEN = "tok_shop_brand"
OUTLET_TOKEN = "tok_outlet_brand"
OTHER_TOKEN = "tok_other_account"
ACCOUNT = {"clientId": "acme", "accountId": "shop", "brandId": "SHOP"}

IDENTIFY = {
    "userId": "123456",
    "event": "identify",
    "traits": {
        "firstName": "Joe",
        "lastName": "Bloggs",
        "email": "joe.bloggs@example.com",
        "marketingPreferences": {
            "channels": [
                {"channel": "email", "subscribed": True},
                {"channel": "sms", "subscribed": True},
                {"channel": "whatsapp", "subscribed": False},
                {"channel": "facebook", "subscribed": False},
                {"channel": "push", "subscribed": False},
            ]
        },
    },
    "context": {"ip": "24.5.68.47"},
    "timestamp": "2019-11-18T13:30:11.444Z",
}
_PAGE_URL = "https://www.fruugo.co.uk/simplygosimplygo-pure-inulin/p-19868604-44086200"
_PAGE = {
    "path": "/simplygosimplygo-pure-inulin/p-19868604-44086200",
    "referrer": "",
    "search": "",
    "title": "Simplygo/simplygo-pure-inulin | Fruugo",
    "url": _PAGE_URL,
}
_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_4) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/78.0.3904.108 Safari/537.36"
)
TRACK: dict[str, Any] = {
    "userId": "ABC/123",
    "event": "Product Added",
    "context": {"page": dict(_PAGE), "userAgent": _AGENT},
    "properties": {
        "name": "Simplygo/simplygo-pure-inulin",
        "product_id": "p-19868604-44086200",
        "price": "11.99",
        "cart_id": "1234",
        "image_url": "https://img.fruugo.com/product/3/55/98531553_max.jpg",
        "quantity": "1",
        "url": _PAGE_URL,
        "currency": "GBP",
    },
    "timestamp": "2019-11-28T14:31:58.596Z",
}
PAGE = {
    "event": "page",
    "userId": "ABC/123",
    "context": {"page": dict(_PAGE), "userAgent": _AGENT},
    "properties": dict(_PAGE),
    "timestamp": "2019-11-28T14:50:16.519Z",
}
SCREEN = {"userId": "019mr8mf4r", "name": "Home", "timestamp": "2012-12-02T00:31:29.738Z"}
BATCH: dict[str, Any] = {
    "batch": [
        {
            "event": "identify",
            "userId": "019mr8mf4r",
            "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "event": "Song Played",
            "userId": "019mr8mf4r",
            "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
        {
            "event": "identify",
            "userId": "971mj8mk7p",
            "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
            "timestamp": "2015-2-02T00:30:08.276Z",
        },
        {
            "event": "Song Played",
            "userId": "971mj8mk7p",
            "properties": {"name": "Get Right", "artist": "Jennifer Lopez"},
            "timestamp": "2015-2-02T00:30:12.984Z",
        },
    ],
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
}


def shop_sources(*extra: Source, **account: Any) -> Sources:
    """Two Intilery accounts: `acme/shop` (brands SHOP and OUTLET) and `acme/other`."""
    shop = Intilery(
        client="acme",
        account="shop",
        tokens=[ACCOUNT_TOKEN],
        brands={"SHOP": [BRAND_TOKEN], "OUTLET": [OUTLET_TOKEN]},
        **account,
    )
    other = Intilery(client="acme", account="other", tokens=[OTHER_TOKEN])
    return Sources(
        [
            Source(id="shop", write_keys=[], intilery=shop),
            Source(id="other", write_keys=["wk_other"], intilery=other),
            *extra,
        ]
    )


@pytest.fixture
async def shop(make_client: MakeClient) -> TestClient[Any, Any]:
    """A gateway whose sources file configures the `acme/shop` account."""
    return await make_client(sources=shop_sources())


async def post(
    client: TestClient[Any, Any],
    path: str,
    body: Any,
    token: str | None = ACCOUNT_TOKEN,
    **headers: str,
) -> tuple[int, dict[str, Any]]:
    if token is not None:
        headers["auth-token"] = token
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    response = await client.post(
        path, data=data, headers={"Content-Type": "application/json", **headers}
    )
    return response.status, await response.json()


def accepted(answer: dict[str, Any]) -> str:
    """The eventId of a success, checked to be a UUID."""
    assert answer["success"] is True
    uuid.UUID(answer["eventId"])
    return str(answer["eventId"])


def without_gateway_fields(message: dict[str, Any]) -> dict[str, Any]:
    """What is left of a stored message once the gateway's own fields are taken out."""
    out = dict(message)
    for field in ("type", "messageId", "receivedAt", "originalTimestamp", "_source"):
        out.pop(field, None)
    return out


async def test_identify_example(shop: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(shop, f"{BASE}/identify", IDENTIFY)
    assert status == 200
    event_id = accepted(answer)
    (stored,) = await stream_messages(redis)
    assert stored["type"] == "identify"
    assert stored["messageId"] == event_id
    assert stored["_source"] == "shop"
    assert stored["userId"] == "123456"
    assert stored["traits"] == IDENTIFY["traits"]
    assert stored["context"] == {"ip": "24.5.68.47", "intilery": ACCOUNT}
    assert stored["timestamp"] == stored["originalTimestamp"] == "2019-11-18T13:30:11.444Z"
    assert "event" not in stored  # it only named the method: `type` says it now
    assert set(stored) == {*IDENTIFY, "type", "messageId", "receivedAt", "originalTimestamp"} - {
        "event"
    } | {"_source"}


async def test_track_example(shop: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(shop, f"{BASE}/track", TRACK)
    assert status == 200
    event_id = accepted(answer)
    (stored,) = await stream_messages(redis)
    assert stored["type"] == "track"
    assert stored["messageId"] == event_id
    assert stored["event"] == "Product Added"
    assert stored["userId"] == "ABC/123"
    assert stored["properties"] == TRACK["properties"]
    assert stored["context"] == {**TRACK["context"], "intilery": ACCOUNT}
    assert stored["originalTimestamp"] == "2019-11-28T14:31:58.596Z"
    expected = {**TRACK, "context": stored["context"]}
    assert without_gateway_fields(stored) == expected


async def test_page_example(shop: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(shop, f"{BASE}/page", PAGE)
    assert status == 200
    accepted(answer)
    (stored,) = await stream_messages(redis)
    assert stored["type"] == "page"
    assert "event" not in stored
    assert stored["userId"] == "ABC/123"
    assert stored["properties"] == PAGE["properties"]
    assert stored["context"]["page"] == _PAGE
    assert stored["context"]["userAgent"] == _AGENT
    assert stored["context"]["intilery"] == ACCOUNT
    assert stored["timestamp"] == "2019-11-28T14:50:16.519Z"


async def test_screen_example(shop: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(shop, f"{BASE}/screen", SCREEN)
    assert status == 200
    accepted(answer)
    (stored,) = await stream_messages(redis)
    assert stored["type"] == "screen"
    assert stored["userId"] == "019mr8mf4r"
    assert stored["name"] == "Home"
    assert stored["originalTimestamp"] == "2012-12-02T00:31:29.738Z"
    assert stored["context"] == {"intilery": ACCOUNT}


async def test_batch_example(shop: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(shop, f"{BASE}/batch", BATCH)
    assert status == 200
    assert answer["success"] is True
    stored = await stream_messages(redis)
    # The answer names every item's messageId in order; `eventId` is the first one's.
    assert answer["eventIds"] == [message["messageId"] for message in stored]
    assert answer["eventId"] == answer["eventIds"][0]
    assert [m["type"] for m in stored] == ["identify", "track", "identify", "track"]
    assert [m.get("event") for m in stored] == [None, "Song Played", None, "Song Played"]
    assert [m["userId"] for m in stored] == ["019mr8mf4r"] * 2 + ["971mj8mk7p"] * 2
    items = BATCH["batch"]
    assert stored[0]["traits"] == items[0]["traits"]
    assert stored[1]["properties"] == items[1]["properties"]
    assert stored[2]["traits"] == items[2]["traits"]
    assert stored[3]["properties"] == items[3]["properties"]
    assert [m["originalTimestamp"] for m in stored] == [
        "2012-12-02T00:30:08.276Z",
        "2012-12-02T00:30:12.984Z",
        "2015-02-02T00:30:08.276Z",  # printed as 2015-2-02: padded
        "2015-02-02T00:30:12.984Z",
    ]
    for message in stored:
        # the batch's context is merged into each item
        assert message["context"] == {**BATCH["context"], "intilery": ACCOUNT}
        assert message["_source"] == "shop"


async def test_batch_items_keep_their_own_context_keys(
    shop: TestClient[Any, Any], redis: Redis
) -> None:
    body = {
        "batch": [{"event": "Played", "userId": "u", "context": {"locale": "fr", "app": "x"}}],
        "context": {"locale": "en", "device": {"type": "phone"}},
    }
    assert (await post(shop, f"{BASE}/batch", body))[0] == 200
    (stored,) = await stream_messages(redis)
    assert stored["context"] == {
        "locale": "fr",
        "app": "x",
        "device": {"type": "phone"},
        "intilery": ACCOUNT,
    }


async def test_batch_group_item_is_a_group(shop: TestClient[Any, Any], redis: Redis) -> None:
    body = {"batch": [{"event": "group", "userId": "u", "groupId": "g1", "traits": {"n": 1}}]}
    assert (await post(shop, f"{BASE}/batch", body))[0] == 200
    (stored,) = await stream_messages(redis)
    assert stored["type"] == "group"
    assert stored["groupId"] == "g1"
    assert "event" not in stored


async def test_direct_collects_the_callers_ip(shop: TestClient[Any, Any], redis: Redis) -> None:
    direct = {"userId": "u", "event": "E", "context": {"direct": True}}
    assert (await post(shop, f"{BASE}/track", direct))[0] == 200
    assert (await post(shop, f"{BASE}/track", {"userId": "u", "event": "E"}))[0] == 200
    batch = {"batch": [{"event": "E", "userId": "u"}], "context": {"direct": True}}
    assert (await post(shop, f"{BASE}/batch", batch))[0] == 200
    first, second, third = await stream_messages(redis)
    assert first["context"]["ip"] == "127.0.0.1"
    assert first["context"]["direct"] is True
    assert "ip" not in second["context"]  # a server call: its own address is not the user's
    assert third["context"]["ip"] == "127.0.0.1"  # `direct` from the batch's context


async def test_a_sent_ip_is_kept_even_when_direct(shop: TestClient[Any, Any], redis: Redis) -> None:
    body = {"userId": "u", "event": "E", "context": {"direct": True, "ip": "24.5.68.47"}}
    assert (await post(shop, f"{BASE}/track", body))[0] == 200
    (stored,) = await stream_messages(redis)
    assert stored["context"]["ip"] == "24.5.68.47"


# Auth


async def test_missing_token_is_403(shop: TestClient[Any, Any], redis: Redis) -> None:
    for token in (None, "", "  "):
        status, answer = await post(shop, f"{BASE}/track", TRACK, token=token)
        assert status == 403
        assert answer == {"success": False, "message": "No Token Supplied"}
    assert await redis.exists(events_key(0)) == 0


@pytest.mark.parametrize(
    ("path", "token"),
    [
        (BASE, OTHER_TOKEN),  # a token of another account
        ("/track/acme/other/OTHER/v1", ACCOUNT_TOKEN),  # this account's token, other account
        ("/track/globex/shop/SHOP/v1", ACCOUNT_TOKEN),  # another client
        ("/track/acme/nowhere/NOWHERE/v1", ACCOUNT_TOKEN),  # an account nobody configured
        ("/track/acme/shop/OUTLET/v1", BRAND_TOKEN),  # the SHOP brand's token, OUTLET brand
        (BASE, OUTLET_TOKEN),  # the OUTLET brand's token, SHOP brand
        ("/track/acme/shop/shop/v1", BRAND_TOKEN),  # brand ids are case-sensitive
        (BASE, "tok_unknown"),
        (BASE, "wk_other"),  # a writeKey is not a token
    ],
)
async def test_token_without_rights_is_403(
    shop: TestClient[Any, Any], redis: Redis, path: str, token: str
) -> None:
    status, answer = await post(shop, f"{path}/track", TRACK, token=token)
    assert status == 403
    assert answer == {"success": False, "message": "Token Not Authorised"}
    assert await redis.exists(events_key(0)) == 0


@pytest.mark.parametrize(
    ("path", "token"),
    [
        (BASE, ACCOUNT_TOKEN),
        ("/track/acme/shop/OUTLET/v1", ACCOUNT_TOKEN),  # an account token: every brand
        ("/track/acme/shop/NEWBRAND/v1", ACCOUNT_TOKEN),
        (BASE, BRAND_TOKEN),  # a brand token on its brand
        ("/track/acme/shop/OUTLET/v1", OUTLET_TOKEN),
        ("/track/ACME/Shop/SHOP/v1", BRAND_TOKEN),  # client and account: case-insensitive
    ],
)
async def test_token_with_rights_is_accepted(
    shop: TestClient[Any, Any], redis: Redis, path: str, token: str
) -> None:
    status, answer = await post(shop, f"{path}/track", TRACK, token=token)
    assert status == 200
    accepted(answer)
    (stored,) = await stream_messages(redis)
    assert stored["_source"] == "shop"
    brand = path.split("/")[4]
    assert stored["context"]["intilery"] == {**ACCOUNT, "brandId": brand}


async def test_disabled_source_is_403(make_client: MakeClient) -> None:
    account = Intilery(client="acme", account="shop", tokens=[ACCOUNT_TOKEN])
    sources = Sources([Source(id="shop", write_keys=[], enabled=False, intilery=account)])
    client = await make_client(sources=sources)
    status, answer = await post(client, f"{BASE}/track", TRACK)
    assert (status, answer["message"]) == (403, "Token Not Authorised")


async def test_open_mode_takes_any_token_but_not_none(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, "/track/any/thing/GOES/v1/track", TRACK, token="x")
    assert status == 200
    accepted(answer)
    status, answer = await post(client, "/track/any/thing/GOES/v1/track", TRACK, token=None)
    assert (status, answer["message"]) == (403, "No Token Supplied")


async def test_the_token_is_not_stored(shop: TestClient[Any, Any], redis: Redis) -> None:
    assert (await post(shop, f"{BASE}/track", TRACK))[0] == 200
    for key in await redis.keys("*"):
        assert ACCOUNT_TOKEN.encode() not in key
        if await redis.type(key) == b"stream":
            for _id, fields in await read_stream(redis, key):
                assert all(ACCOUNT_TOKEN.encode() not in value for value in fields.values())


# Bad requests


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        (
            "identify",
            {"event": "identify", "traits": {}},
            "Invalid message: userId or anonymousId is required - at `$`",
        ),
        (
            "identify",
            {"event": "identify", "userId": ""},
            "Invalid message: userId or anonymousId is required - at `$`",
        ),
        (
            "track",
            {"userId": "u"},
            "Invalid message: Object missing required field `event`",
        ),
        (
            "track",
            {"userId": "u", "event": ""},
            "Invalid message: Expected `str` of length >= 1 - at `$.event`",
        ),
        (
            "identify",
            {"userId": "u", "event": "Product Added"},
            "Invalid message: event must be \"identify\" on /v1/identify; got 'Product Added'"
            " - at `$.event`",
        ),
        (
            "track",
            {"userId": "u", "event": "E", "timestamp": "yesterday"},
            "Invalid message: Invalid RFC3339 encoded datetime - at `$.timestamp`",
        ),
        (
            "page",
            {"userId": "u", "properties": []},
            "Invalid message: Expected `object | null`, got `array` - at `$.properties`",
        ),
    ],
)
async def test_invalid_message_is_400(
    shop: TestClient[Any, Any], redis: Redis, action: str, body: Any, message: str
) -> None:
    status, answer = await post(shop, f"{BASE}/{action}", body)
    assert status == 400
    assert answer == {"success": False, "message": message}
    assert await redis.exists(events_key(0)) == 0


async def test_invalid_json_is_400(shop: TestClient[Any, Any]) -> None:
    status, answer = await post(shop, f"{BASE}/track", b'{"userId": "u",')
    assert status == 400
    assert answer["success"] is False
    assert answer["message"].startswith("Invalid JSON: ")
    status, answer = await post(shop, f"{BASE}/track", b"[1, 2]")
    assert (status, answer["message"]) == (
        400,
        "A message must be a JSON object: $ is an array",
    )


async def test_batch_with_a_bad_item_is_refused_whole(
    shop: TestClient[Any, Any], redis: Redis
) -> None:
    body = copy.deepcopy(BATCH)
    del body["batch"][2]["userId"]
    body["batch"][3]["event"] = ""
    status, answer = await post(shop, f"{BASE}/batch", body)
    assert status == 400
    assert answer == {
        "success": False,
        "message": "Invalid message: userId or anonymousId is required - at `$.batch[2]`",
        "errors": [
            {
                "index": 2,
                "message": "Invalid message: userId or anonymousId is required - at `$.batch[2]`",
            },
            {
                "index": 3,
                "message": "Invalid message: event must name the method (identify, page, "
                "screen, group) or the tracked event; got '' - at `$.batch[3].event`",
            },
        ],
    }
    assert await redis.exists(events_key(0)) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"batch": []}, "batch must not be empty"),
        ({"events": []}, "Invalid batch: Object missing required field `batch`"),
        ({"batch": [{"userId": "u"}]}, "got nothing - at `$.batch[0].event`"),
    ],
)
async def test_bad_batch_is_400(
    shop: TestClient[Any, Any], redis: Redis, body: Any, message: str
) -> None:
    status, answer = await post(shop, f"{BASE}/batch", body)
    assert status == 400
    assert answer["success"] is False
    assert answer["message"].endswith(message)
    assert await redis.exists(events_key(0)) == 0


async def test_nesting_past_the_limit_is_400(shop: TestClient[Any, Any], redis: Redis) -> None:
    deep: Any = "bottom"
    for _ in range(70):
        deep = {"d": deep}
    status, answer = await post(shop, f"{BASE}/track", {"userId": "u", "event": "E", "p": deep})
    assert (status, answer["message"]) == (
        400,
        "Message nested too deeply: $ nests deeper than 64 levels",
    )
    body = {"batch": [{"event": "E", "userId": "u"}, {"event": "E", "userId": "u", "p": deep}]}
    status, answer = await post(shop, f"{BASE}/batch", body)
    assert status == 400
    assert answer["errors"] == [
        {
            "index": 1,
            "message": "Message nested too deeply: $.batch[1] nests deeper than 64 levels",
        }
    ]
    assert await redis.exists(events_key(0)) == 0


async def test_batch_sent_at_must_be_a_timestamp(shop: TestClient[Any, Any]) -> None:
    body = {"batch": [{"event": "E", "userId": "u"}], "sentAt": "soon"}
    status, answer = await post(shop, f"{BASE}/batch", body)
    assert (status, answer["message"]) == (
        400,
        "Invalid message: Invalid RFC3339 encoded datetime - at `$.sentAt`",
    )


# Sizes


async def test_batch_up_to_one_megabyte_is_accepted(make_client: MakeClient, redis: Redis) -> None:
    # Past the Segment routes' 500 KB batch limit, within Intilery's 1 MB.
    client = await make_client(sources=shop_sources())
    filler = "x" * 30_000
    body = {"batch": [{"event": "E", "userId": "u", "properties": {"f": filler}}] * 34}
    assert 1_000_000 < len(msgspec.json.encode(body)) < 1024 * 1024
    status, answer = await post(client, f"{BASE}/batch", body)
    assert status == 200
    assert len(answer["eventIds"]) == 34
    assert await redis.xlen(events_key(0)) == 34


async def test_past_one_megabyte_is_413(shop: TestClient[Any, Any], redis: Redis) -> None:
    filler = "x" * 30_000
    body = {"batch": [{"event": "E", "userId": "u", "properties": {"f": filler}}] * 35}
    assert len(msgspec.json.encode(body)) > 1024 * 1024
    status, answer = await post(shop, f"{BASE}/batch", body)
    assert status == 413
    assert answer == {
        "success": False,
        "message": "The request is larger than 1048576 bytes: the limit is 1048576 bytes",
    }
    assert await redis.exists(events_key(0)) == 0


async def test_message_past_32_kb_is_413(shop: TestClient[Any, Any], redis: Redis) -> None:
    big = {"userId": "u", "event": "E", "properties": {"f": "x" * 33_000}}
    status, answer = await post(shop, f"{BASE}/track", big)
    assert status == 413
    assert answer["message"] == "The message is larger than 32768 bytes: the limit is 32768 bytes"
    status, answer = await post(shop, f"{BASE}/batch", {"batch": [TRACK, big]})
    assert status == 413
    assert answer["errors"][0]["index"] == 1
    assert answer["message"].startswith("Message is larger than 32768 bytes")
    assert await redis.exists(events_key(0)) == 0


# Routing


async def test_untidy_paths_reach_the_route(shop: TestClient[Any, Any], redis: Redis) -> None:
    assert (await post(shop, f"{BASE}/track/", TRACK))[0] == 200
    assert (await post(shop, "/track//acme/shop/SHOP/v1//track", TRACK))[0] == 200
    assert await redis.xlen(events_key(0)) == 2


async def test_unknown_action_is_404(shop: TestClient[Any, Any]) -> None:
    status, answer = await post(shop, f"{BASE}/alias", {"userId": "u"})
    assert status == 404
    assert answer == {
        "success": False,
        "message": "Unknown action 'alias': one of identify, track, page, screen, batch",
    }


async def test_preflight_allows_the_auth_token_header(shop: TestClient[Any, Any]) -> None:
    response = await shop.options(
        f"{BASE}/track",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "auth-token, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Headers"] == "auth-token, content-type"


async def test_segment_routes_keep_their_answers(shop: TestClient[Any, Any]) -> None:
    response = await shop.post("/v1/track", json={"userId": "u", "event": "E"})
    assert response.status == 400
    assert (await response.json())["Message"] == "Invalid or missing writekey"


async def test_same_user_through_all_three_dialects_shares_a_partition(
    make_client: MakeClient, redis: Redis
) -> None:
    commanders_act = Source(
        id="tags", write_keys=[], commanders_act=CommandersAct(site_id=29, source_keys=["sk"])
    )
    client = await make_client(sources=shop_sources(commanders_act), partitions=4)
    for step in range(1, 7):
        dialect = step % 3
        if dialect == 1:  # Segment
            response = await client.post(
                "/v1/track",
                json={"userId": "joe", "event": f"Step {step}"},
                headers={"Authorization": "Basic d2tfb3RoZXI6"},  # wk_other:
            )
        elif dialect == 2:  # Intilery
            response = await client.post(
                f"{BASE}/track",
                json={"userId": "joe", "event": f"Step {step}"},
                headers={"auth-token": ACCOUNT_TOKEN},
            )
        else:  # Commanders Act v2
            response = await client.post(
                "/events?tc_s=29&token=sk",
                json={"event_name": f"Step {step}", "user": {"id": "joe"}},
            )
        assert response.status == 200, await response.text()
    partitions = [await stream_messages(redis, n) for n in range(4)]
    (joe,) = [messages for messages in partitions if messages]
    assert [m["event"] for m in joe] == [f"Step {step}" for step in range(1, 7)]
    assert {m["userId"] for m in joe} == {"joe"}
    assert [m["_source"] for m in joe] == ["other", "shop", "tags"] * 2


# The sources file


def test_sources_file_with_intilery_accounts(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        """
[[source]]
id = "shop"
write_keys = []
[source.intilery]
client = "acme"
account = "shop"
tokens = ["tok_all"]
brands = { SHOP = ["tok_shop"], OUTLET = ["tok_outlet"] }
rate = 20
burst = 40

[[source]]
id = "web"
write_keys = ["wk_web"]
"""
    )
    sources = Sources.from_file(path)
    source = sources.intilery("ACME", "shop", "tok_all", "ANY")
    assert source is not None
    assert source.id == "shop"
    assert source.intilery is not None
    assert sources.intilery("acme", "SHOP", "tok_shop", "SHOP") is source
    assert sources.intilery("acme", "shop", "tok_shop", "OUTLET") is None
    assert sources.intilery("acme", "shop", "tok_unknown", "SHOP") is None
    assert (source.intilery.rate, source.intilery.burst) == (20, 40)
    assert sources.intilery("acme", "web", "tok_all", "ANY") is None
    assert sources.account_owner("Acme", "Shop") is source
    assert sources.resolve("wk_web") is not None


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('client = "acme"\naccount = "shop"\nburst = 0', "Expected `int` >= 1"),
        ('client = "acme"\naccount = "shop"\nrate = 0', "Expected `float` > 0"),
        ('client = "acme"\naccount = "a/b"', "Expected `str` matching regex"),
        ('client = "acme"', "Object missing required field `account`"),
        ('client = "acme"\naccount = "shop"\ntoken = "t"', "unknown field `token`"),
    ],
)
def test_bad_intilery_table_is_refused(tmp_path: Path, table: str, error: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(f'[[source]]\nid = "shop"\nwrite_keys = []\n[source.intilery]\n{table}\n')
    with pytest.raises(SourcesError, match=error.replace("`", ".").replace(">", ".")):
        Sources.from_file(path)


def test_one_account_under_two_sources_is_refused() -> None:
    a = Intilery(client="acme", account="shop", tokens=["t1"])
    b = Intilery(client="Acme", account="SHOP", tokens=["t2"])
    with pytest.raises(SourcesError, match="'acme/shop' is configured under both"):
        Sources(
            [
                Source(id="a", write_keys=[], intilery=a),
                Source(id="b", write_keys=[], intilery=b),
            ]
        )
