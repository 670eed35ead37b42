"""The OpenAPI document: complete, valid, and served with its page."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient
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
