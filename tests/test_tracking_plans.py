"""Tracking plans enforced at the edge (docs/tracking-plans.md): what each mode stores, drops
and blocks, the violations' paths, the counters, a Segment export, the admin API, the dry
run and `gateway plan check` agreeing with enforcement."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway import cli
from gateway.constants import REJECTED_STREAM
from gateway.ingest.plan_check import dry_run
from gateway.ingest.plan_enforce import Enforcer
from gateway.ingest.sources import Source, Sources, SourcesError, read_file
from gateway.ingest.tracking_plan import PlanSettings, compile_plan
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.streams import read_stream, stream_messages

PLANS = Path(__file__).parent / "plans"
SHOP = json.loads((PLANS / "shop.json").read_text())
KEYS = {"web": "wk_web_0123", "app": "wk_app_0123"}
Expected = set[tuple[str, str]]
"""(JSON path, kind) of each violation."""


def sdk(kind: str, **fields: Any) -> dict[str, Any]:
    """A message as analytics.js (analytics-next) sends it from a browser."""
    return {
        "type": kind,
        "anonymousId": "5f9c8a4e-2b1d-4c7e-9a3f-0e6d1b2c3a4f",
        "timestamp": "2026-11-23T09:41:07.412Z",
        "sentAt": "2026-11-23T09:41:07.468Z",
        "context": {
            "page": {"path": "/checkout", "url": "https://shop.example.com/checkout"},
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
        },
        "integrations": {},
        **fields,
    }


def order(**changes: Any) -> dict[str, Any]:
    """An `Order Completed` that matches the plan, with `changes` to its properties (a value
    of None removes the property)."""
    properties: dict[str, Any] = {
        "order_id": "ord_1001",
        "total": 42.5,
        "currency": "EUR",
        "coupon": None,
        "products": [
            {"product_id": "sku_1", "quantity": 1, "price": 30},
            {"product_id": "sku_2", "quantity": 2, "price": 6.25},
        ],
        "shipping": {"method": "express", "address": {"country": "FR"}},
    }
    for name, value in changes.items():
        if value is None:
            properties.pop(name)
        else:
            properties[name] = value
    return sdk("track", event="Order Completed", properties=properties)


def _french_locale() -> dict[str, Any]:
    message = order()
    message["context"]["locale"] = "french"
    return message


CASES: list[tuple[str, dict[str, Any], Expected]] = [
    ("matches", order(), set()),
    ("wrong type", order(total="42.50"), {("$.properties.total", "type")}),
    ("missing required", order(order_id=None), {("$.properties", "required")}),
    ("not in the enum", order(currency="YEN"), {("$.properties.currency", "enum")}),
    ("pattern", order(order_id="1001"), {("$.properties.order_id", "pattern")}),
    (
        "nested object",
        order(shipping={"method": "drone", "address": {"country": "France"}}),
        {
            ("$.properties.shipping.method", "enum"),
            ("$.properties.shipping.address.country", "pattern"),
        },
    ),
    (
        "array items",
        order(products=[{"quantity": 1}, {"product_id": "sku_2", "quantity": 0}]),
        {
            ("$.properties.products[0]", "required"),
            ("$.properties.products[1].quantity", "minimum"),
        },
    ),
    ("global rule", _french_locale(), {("$.context.locale", "pattern")}),
    (
        "unplanned",
        sdk("track", event="Cart Abandoned", properties={"cart_id": "c1"}),
        {("$.event", "unplanned_event")},
    ),
    (
        "identify",
        sdk("identify", userId="u1", traits={"email": "not-an-email", "plan": "gold"}),
        {("$.traits.email", "format"), ("$.traits.plan", "enum")},
    ),
    ("page: no rule", sdk("page", name="Home", properties={"path": "/"}), set()),
]


def planned(source: str, **settings: Any) -> Source:
    return Source(
        id=source, write_keys=[KEYS[source]], tracking_plan=PlanSettings(plan=SHOP, **settings)
    )


async def send(client: TestClient[Any, Any], source: str, messages: list[dict[str, Any]]) -> None:
    """POST `messages` as one batch with `source`'s writeKey (or `source` as the key)."""
    headers = {"Authorization": encode_basic_auth(KEYS.get(source, source), "")}
    response = await client.post("/v1/batch", json={"batch": messages}, headers=headers)
    assert response.status == 200, await response.text()
    assert await response.json() == {"success": True}


def found(violations: list[dict[str, Any]] | None) -> Expected:
    return {(v["path"], v["kind"]) for v in violations or ()}


async def rejected_entries(redis: Redis) -> list[dict[str, Any]]:
    return [msgspec.json.decode(f[b"data"]) for _, f in await read_stream(redis, REJECTED_STREAM)]


async def counter(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    """A counter of the admin listener's /metrics, once the counts were pushed (each second)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    sample = f"{name}_total{{{wanted}}} "
    began = time.monotonic()
    while True:
        text = await (await admin_of(client).get("/metrics")).text()
        for line in text.splitlines():
            if line.startswith(sample):
                return float(line.rsplit(" ", 1)[1])
        assert time.monotonic() - began < 5, f"{sample} not in /metrics"
        await asyncio.sleep(0.2)


async def test_allow_stores_every_message_with_its_violations(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(sources=Sources([planned("web")]))
    await send(client, "web", [m for _, m, _ in CASES])
    stored = await stream_messages(redis)
    assert [m["type"] for m in stored] == [m["type"] for _, m, _ in CASES]
    for (name, sent, expected), message in zip(CASES, stored, strict=True):
        assert found(message["context"].get("violations")) == expected, name
        field = "properties" if "properties" in sent else "traits"
        assert message[field] == sent[field], name  # allow changes nothing
    assert await rejected_entries(redis) == []
    violations = "gateway_plan_violations"
    order_completed = {"source": "web", "event": "Order Completed"}
    assert (
        await counter(client, violations, **order_completed, kind="pattern") == 3
    )  # the global rule's too
    assert await counter(client, violations, **order_completed, kind="enum") == 2
    assert await counter(client, violations, **order_completed, kind="required") == 2
    unplanned = {"source": "web", "event": "(unplanned)", "kind": "unplanned_event"}
    assert await counter(client, violations, **unplanned) == 1
    identify = {"source": "web", "event": "identify"}
    assert await counter(client, violations, **identify, kind="format") == 1


async def test_omit_drops_what_the_plan_does_not_know_and_what_breaks_it(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(sources=Sources([planned("web", mode="omit")]))
    sent = order(
        total="42.50",
        utm_source="mail",
        shipping={"method": "express", "address": {"country": "FR", "zip": "75001"}},
        products=[{"product_id": "sku_1", "quantity": 0, "price": 30}],
    )
    missing = order(order_id=None, gift=True)
    await send(client, "web", [sent, missing, order()])
    first, second, third = await stream_messages(redis)
    assert first["properties"] == {
        "order_id": "ord_1001",
        "currency": "EUR",
        "coupon": None,
        "products": [{"product_id": "sku_1", "price": 30}],
        "shipping": {"method": "express", "address": {"country": "FR"}},
    }
    assert {
        (v["path"], v["kind"], v.get("omitted", False)) for v in first["context"]["violations"]
    } == {
        ("$.properties.total", "type", True),
        ("$.properties.products[0].quantity", "minimum", True),
        ("$.properties.utm_source", "unplanned_property", True),
        ("$.properties.shipping.address.zip", "unplanned_property", True),
    }
    # A missing property cannot be dropped: the event is kept, the violation says so.
    assert "gift" not in second["properties"]
    assert found(second["context"]["violations"]) == {
        ("$.properties", "required"),
        ("$.properties.gift", "unplanned_property"),
    }
    assert "violations" not in third["context"]
    labels = {"source": "web", "event": "Order Completed", "kind": "unplanned_property"}
    assert await counter(client, "gateway_plan_violations", **labels) == 3


async def test_block_answers_accepted_and_keeps_the_message_in_the_rejected_stream(
    make_client: MakeClient, redis: Redis
) -> None:
    sources = Sources(
        [
            planned("web", mode="block", modes={"identify": "allow"}),
            planned("app", unplanned="block"),
        ]
    )
    client = await make_client(sources=sources)
    cases = {name: message for name, message, _ in CASES}
    await send(
        client,
        "web",
        [cases["matches"], cases["wrong type"], cases["unplanned"], cases["identify"]],
    )
    await send(client, "app", [cases["unplanned"], cases["pattern"]])
    stored = await stream_messages(redis)
    kept = [
        (m["_source"], m.get("event", m["type"]), found(m["context"].get("violations")))
        for m in stored
    ]
    assert kept == [
        ("web", "Order Completed", set()),
        ("web", "Cart Abandoned", {("$.event", "unplanned_event")}),  # unplanned = allow
        ("web", "identify", {("$.traits.email", "format"), ("$.traits.plan", "enum")}),
        ("app", "Order Completed", {("$.properties.order_id", "pattern")}),  # mode = allow
    ]
    blocked = await rejected_entries(redis)
    assert [(e["source"], e["body"]["event"], found(e["violations"])) for e in blocked] == [
        ("web", "Order Completed", {("$.properties.total", "type")}),
        ("app", "Cart Abandoned", {("$.event", "unplanned_event")}),
    ]
    assert blocked[0]["reason"] == "blocked by the tracking plan"
    assert blocked[0]["body"]["properties"]["total"] == "42.50"  # as sent, for whoever debugs
    blocked_web = {"source": "web", "event": "Order Completed"}
    assert await counter(client, "gateway_plan_blocked", **blocked_web) == 1
    assert await counter(client, "gateway_plan_blocked", source="app", event="(unplanned)") == 1


async def test_a_segment_export_loads_from_the_sources_file_and_is_enforced(
    make_client: MakeClient, redis: Redis, tmp_path: Path
) -> None:
    (tmp_path / "plans").mkdir()
    shutil.copy(PLANS / "segment_export.json", tmp_path / "plans" / "mobile.json")
    (tmp_path / "sources.toml").write_text(
        '[[source]]\nid = "app"\nwrite_keys = ["wk_app_0123"]\n'
        '[source.tracking_plan]\npath = "plans/mobile.json"\nmode = "block"\n'
    )
    client = await make_client(sources=Sources.from_file(tmp_path / "sources.toml"))
    signed_up = sdk("track", event="Signed Up", properties={"plan": "team", "referrer": None})
    old_plan = sdk("track", event="Signed Up", properties={"plan": "pro"})  # version 1's
    no_name = sdk("identify", userId="u1", traits={"age": 41})
    group = sdk("group", userId="u1", groupId="g1", traits={"employees": 12})
    await send(client, "app", [signed_up, old_plan, no_name, group])
    assert [m["type"] for m in await stream_messages(redis)] == ["track", "group"]
    blocked = await rejected_entries(redis)
    assert [found(e["violations"]) for e in blocked] == [
        {("$.properties.plan", "enum")},
        {("$.traits", "required")},
    ]
    view = await (await admin_of(client).get("/v1/sources/app/tracking-plan")).json()
    assert (view["name"], view["events"], view["origin"], view["mode"]) == (
        "Acme Mobile",
        1,
        "file",
        "block",
    )


def test_a_plan_that_does_not_compile_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = copy.deepcopy(SHOP)
    bad["rules"]["events"][0]["rules"]["properties"]["properties"]["properties"]["total"] = {
        "type": "money"
    }
    (tmp_path / "plan.json").write_text(json.dumps(bad))
    (tmp_path / "sources.toml").write_text(
        '[[source]]\nid = "web"\nwrite_keys = ["k"]\n[source.tracking_plan]\npath = "plan.json"\n'
    )
    with pytest.raises(SourcesError) as refused:
        read_file(tmp_path / "sources.toml")
    assert str(tmp_path / "plan.json") in str(refused.value)
    assert "$.rules.events[0].rules.properties.properties.properties.total.type" in str(
        refused.value
    )


async def test_the_admin_api_sets_a_plan_on_every_gateway_within_a_second(
    make_client: MakeClient, redis: Redis
) -> None:
    first, second = await make_client(), await make_client()
    admin = admin_of(first)
    assert (await admin.post("/v1/sources", json={"id": "web"})).status == 201
    made = await (await admin.post("/v1/sources/web/keys", json={"kind": "write_key"})).json()
    bad = copy.deepcopy(SHOP)
    bad["rules"]["identify"]["properties"]["traits"]["properties"]["plan"] = {"pattern": "(("}
    refused = await admin.put("/v1/sources/web/tracking-plan", json={"plan": bad})
    assert refused.status == 400
    assert (
        "$.rules.identify.properties.traits.properties.plan.pattern"
        in (await refused.json())["Details"]
    )
    answer = await admin.put("/v1/sources/web/tracking-plan", json={"plan": SHOP, "mode": "block"})
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["events"] == 2
    began = time.monotonic()
    bad_order = order(total=-1)
    while True:
        await send(second, made["key"], [bad_order])
        if await rejected_entries(redis):
            break
        assert time.monotonic() - began < 1, "the plan is not in force on the other gateway"
        await asyncio.sleep(0.05)
    assert (await admin.delete("/v1/sources/web/tracking-plan")).status == 204
    assert (await admin.get("/v1/sources/web/tracking-plan")).status == 404


async def test_the_dry_run_and_plan_check_give_what_enforcement_gives(
    make_client: MakeClient, redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(sources=Sources([planned("web", mode="omit")]))
    messages = [m for _, m, _ in CASES] + [order(total="1", extra=1)]
    await send(client, "web", copy.deepcopy(messages))
    enforced = [
        {(v["path"], v["message"], v["kind"]) for v in m["context"].get("violations", ())}
        for m in await stream_messages(redis)
    ]
    dry = await admin_of(client).post("/v1/sources/web/tracking-plan/validate", json=messages)
    answer = await dry.json()
    dry_run = [
        {(v["path"], v["message"], v["kind"]) for v in m["violations"]} for m in answer["messages"]
    ]
    assert dry_run == enforced
    assert answer["violations"] == sum(len(v) for v in enforced)
    assert len(await stream_messages(redis)) == len(messages)  # the dry run stored nothing

    (tmp_path / "messages.ndjson").write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    args = ["plan", "check", str(PLANS / "shop.json"), str(tmp_path / "messages.ndjson")]
    assert cli.main([*args, "--mode", "omit"]) == 1
    checked: list[set[tuple[str, str, str]]] = [set() for _ in messages]
    for line in capsys.readouterr().out.splitlines():
        number, _event, path, what = line.split("\t")
        text, _, kind = what.rpartition(" (")
        checked[int(number) - 1].add((path, text, kind.split(",")[0].split(";")[0]))
    assert checked == enforced

    (tmp_path / "good.ndjson").write_text(json.dumps(order()) + "\n")
    assert cli.main(["plan", "check", str(PLANS / "shop.json"), str(tmp_path / "good.ndjson")]) == 0
    assert capsys.readouterr().out == ""


def test_segment_public_api_rules_read_as_the_same_plan() -> None:
    export = json.loads((PLANS / "segment_export.json").read_text())
    listed = [
        {"type": "TRACK", "key": e["name"], "jsonSchema": e["rules"], "version": e["version"]}
        for e in export["rules"]["events"]
    ]
    listed += [
        {"type": "IDENTIFY", "key": "", "jsonSchema": export["rules"]["identify_traits"]},
        {"type": "COMMON", "key": "", "jsonSchema": export["rules"]["global"]},
    ]
    messages = [
        sdk("track", event="Signed Up", properties={"plan": "pro"}),
        sdk("identify", userId="u1", traits={"age": "41"}),
        sdk("track", event="Logged In", properties={}),
    ]

    def violations(document: dict[str, Any]) -> list[Expected]:
        enforcer = Enforcer("app", compile_plan(document), PlanSettings(plan=document))
        return [found([v.public() for v in f.violations]) for f in dry_run(enforcer, messages)]

    expected = [
        {("$.properties.plan", "enum")},
        {("$.traits", "required"), ("$.traits.age", "type")},
        {("$.event", "unplanned_event")},
    ]
    assert violations(export) == expected
    assert violations({"data": {"rules": listed}}) == expected
