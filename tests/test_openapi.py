"""The OpenAPI document: complete, valid, and served with its page."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.http import openapi, routes

HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}


def routed() -> set[tuple[str, str]]:
    """Every (path, method) routed; aiohttp's `{name:regex}` is OpenAPI's `{name}`."""
    table = routes.table()
    return {
        (re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path), method.lower())
        for path, methods in table.items()
        for method in methods
    }


def documented() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in openapi.document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_route_is_documented() -> None:
    # Whoever adds a route to routes.table() must document it in gateway/http/openapi.py.
    missing = sorted(routed() - documented())
    assert not missing, f"routes missing from gateway/http/openapi.py: {missing}"


def test_every_documented_route_exists() -> None:
    assert sorted(documented() - routed()) == []


def test_the_document_is_valid_openapi() -> None:
    validate(openapi.document())  # raises, naming the spot, when it is not
    assert openapi.document()["openapi"].startswith("3.")


def test_every_schema_reference_resolves() -> None:
    document = openapi.document()
    text = msgspec.json.encode(document).decode()
    for kind, name in re.findall(r'"#/components/(schemas|headers)/([^"]+)"', text):
        assert name in document["components"][kind], f"{kind}/{name}"


async def test_served_document_is_the_document(client: TestClient[Any, Any]) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == msgspec.json.decode(msgspec.json.encode(openapi.document()))


async def test_docs_page_lists_every_route_and_needs_nothing_else(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/docs/")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    for path, _method in documented():
        assert f"<code>{path}</code>" in page, path
    for name in openapi.document()["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    # Self-contained: no script, and nothing loaded from another host.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(?!#|/openapi\.json")', page)


def examples() -> list[tuple[str, str, str, str, Any, dict[str, Any]]]:
    """(path, method, where, name, value, schema) of every example in the document."""
    found = []
    for path, item in openapi.document()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", ()):
                for name, example in parameter.get("examples", {}).items():
                    where = f"parameter {parameter['name']}"
                    found.append((path, method, where, name, example["value"], parameter["schema"]))
            body = operation.get("requestBody", {}).get("content", {})
            answers = [("request", body)] + [
                (f"answer {status}", answer.get("content", {}))
                for status, answer in operation["responses"].items()
            ]
            for where, content in answers:
                for media in content.values():
                    for name, example in media.get("examples", {}).items():
                        found.append((path, method, where, name, example["value"], media["schema"]))
    return found


def test_every_route_family_shows_an_example_request_and_answer() -> None:
    families = {
        tag
        for item in openapi.document()["paths"].values()
        for operation in item.values()
        for tag in operation["tags"]
    } - {"CORS", "Operations", "Documentation"}
    tag_of = {
        (path, method): operation["tags"][0]
        for path, item in openapi.document()["paths"].items()
        for method, operation in item.items()
    }
    shown = {(tag_of[path, method], where.split()[0]) for path, method, where, *_ in examples()}
    # A pixel's request is its query parameter; Health and SDK settings (GETs) have no
    # request to show.
    wanted = {(family, kind) for family in families for kind in ("request", "answer")}
    wanted -= {("Pixels", "request"), ("Pixels", "answer"), ("Health", "request")}
    wanted -= {("SDK settings", "request")}
    wanted |= {("Pixels", "parameter")}
    assert wanted - shown == set()


def test_every_example_matches_its_schema() -> None:
    components = openapi.document()["components"]
    for path, method, where, name, value, schema in examples():
        # The schema's `#/components/...` references resolve against the document's root.
        validator = Draft202012Validator({**schema, "components": components})
        errors = [e.message for e in validator.iter_errors(value)]
        assert errors == [], (path, method, where, name)


async def test_every_request_example_is_accepted(client: TestClient[Any, Any]) -> None:
    # In open mode (no sources file), as the examples assume no key.
    for path, method, where, name, value, _ in examples():
        if method == "head" or not where.startswith(("request", "parameter")):
            continue
        url = path.replace("{clientId}/{accountId}/{brandId}", "acme/shop/SHOP")
        url = url.replace("{action}", name)
        if method == "post":
            response = await client.post(url, json=value, headers={"auth-token": "t"})
            assert response.status == 200, (path, name, await response.text())
        else:
            query = value if isinstance(value, dict) else {where.split()[1]: value}
            response = await client.get(url, params=query)
            assert response.status == 200, (path, name)
            assert "X-Pixel-Rejected" not in response.headers, (path, name)
