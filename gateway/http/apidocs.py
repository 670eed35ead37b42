"""`GET /openapi.json` and `GET /docs`: the OpenAPI document, and a page a person reads.

The page is rendered here, once, from the document: plain HTML with its style inline, no
script and nothing fetched from elsewhere, so it works offline and behind any firewall.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator

import msgspec
from aiohttp import web

from gateway.errors import JSON
from gateway.http import openapi
from gateway.http.handlers import Routes
from gateway.http.openapi_parts import Json

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; }
code, pre { font: 13px ui-monospace, monospace; background: #f3f3f5; border-radius: 3px; }
code { padding: 0 .2em; }
pre { padding: .6rem; overflow-x: auto; }
h2 { border-bottom: 1px solid #ddd; margin-top: 2.5rem; }
h3 { margin-bottom: .2rem; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .6rem;
         border-bottom: 1px solid #eee; }
.method { font-weight: 700; text-transform: uppercase; }
.also { color: #555; }
"""


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI document."""
    return web.Response(body=openapi.encoded(), content_type=JSON)


async def docs(request: web.Request) -> web.StreamResponse:
    """The document as a readable page."""
    return web.Response(text=page(), content_type="text/html")


def routes() -> Routes:
    """Path -> method -> handler of the documentation routes."""
    return {"/openapi.json": {"GET": openapi_json}, "/docs": {"GET": docs}}


@functools.cache
def page() -> str:
    """The HTML page of the document."""
    document = openapi.document()
    info = document["info"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>",
        '<p>The machine-readable document: <a href="/openapi.json"><code>/openapi.json'
        "</code></a> (OpenAPI " + _e(document["openapi"]) + ").</p>",
        _markdown(info["description"]),
    ]
    grouped = _by_tag(document["paths"])
    parts.append("<h2>Routes</h2><ul>")
    for tag, operations in grouped.items():
        links = ", ".join(
            f'<a href="#{_e(op["operationId"])}"><code>{_e(method.upper())} {_e(path)}</code></a>'
            for path, method, op, _ in operations
        )
        parts.append(f"<li><b>{_e(tag)}</b>: {links}</li>")
    parts.append(
        "<li><b>CORS</b>: <code>OPTIONS</code> on every path, see "
        '<a href="#cors">below</a></li></ul>'
    )
    for tag, operations in grouped.items():
        parts.append(f"<h2>{_e(tag)}</h2>")
        for path, method, operation, aliases in operations:
            parts.extend(_operation(path, method, operation, aliases))
    parts.extend(_preflight(document["paths"]))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3><pre>{_e(_pretty(schema))}</pre>')
    parts.append("</body></html>")
    return "\n".join(parts)


_Listed = tuple[str, str, Json, list[str]]
"""(path, method, operation, the paths that are aliases of it)."""


def _by_tag(paths: Json) -> dict[str, list[_Listed]]:
    """Operations by tag, each once with its aliases; preflights apart (they are all alike)."""
    aliases: dict[tuple[str, str], list[str]] = {}
    for path, method, operation in _operations(paths):
        canonical = operation.get("x-alias-of")
        if canonical is not None:
            aliases.setdefault((canonical, method), []).append(path)
    grouped: dict[str, list[_Listed]] = {}
    for path, method, operation in _operations(paths):
        if method == "options" or "x-alias-of" in operation:
            continue
        listed = (path, method, operation, aliases.get((path, method), []))
        grouped.setdefault(operation["tags"][0], []).append(listed)
    return grouped


def _operations(paths: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in paths.items():
        for method, operation in item.items():
            yield path, method, operation


def _operation(path: str, method: str, operation: Json, aliases: list[str]) -> list[str]:
    out = [
        f'<h3 id="{_e(operation["operationId"])}"><span class="method">{_e(method)}</span> '
        f"<code>{_e(path)}</code></h3>"
    ]
    if aliases:
        also = ", ".join(f"<code>{_e(alias)}</code>" for alias in aliases)
        out.append(f'<p class="also">Also at {also}.</p>')
    summary, description = _inline(operation["summary"]), _inline(operation["description"])
    out.append(f"<p><b>{summary}</b>. {description}</p>")
    if operation.get("security"):
        out.append(
            "<p>writeKey: optional in open mode; HTTP Basic username, the body's "
            "<code>writeKey</code>, or the <code>writeKey</code> query parameter.</p>"
        )
    parameters = operation.get("parameters", [])
    if parameters:
        out.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th></th></tr>")
        for parameter in parameters:
            out.append(
                f"<tr><td><code>{_e(parameter['name'])}</code></td><td>{_e(parameter['in'])}"
                f"</td><td>{'yes' if parameter.get('required') else 'no'}</td>"
                f"<td>{_inline(parameter.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = operation.get("requestBody")
    if body:
        kinds = ", ".join(
            f"<code>{_e(kind)}</code> {_schema_link(media['schema'])}"
            for kind, media in body["content"].items()
        )
        out.append(f"<p>Body: {kinds}</p>")
        for media in body["content"].values():
            for name, example in media.get("examples", {}).items():
                out.append(
                    f"<p>Example ({_e(name)}):</p><pre>{_e(_pretty(example['value']))}</pre>"
                )
    out.append(_responses(operation["responses"]))
    return out


def _responses(responses: Json) -> str:
    rows = ["<table><tr><th>status</th><th>body</th><th></th></tr>"]
    for status, answer in responses.items():
        content = answer.get("content", {})
        body = ", ".join(
            f"<code>{_e(kind)}</code> {_schema_link(media.get('schema', {}))}"
            for kind, media in content.items()
        )
        headers = ", ".join(f"<code>{_e(name)}</code>" for name in answer.get("headers", {}))
        note = _inline(answer["description"]) + (f" Headers: {headers}." if headers else "")
        rows.append(f"<tr><td>{_e(status)}</td><td>{body}</td><td>{note}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _preflight(paths: Json) -> list[str]:
    preflight = next(item["options"] for item in paths.values() if "options" in item)
    return [
        '<h2 id="cors">CORS</h2>',
        f"<p><span class='method'>options</span> on every path above: "
        f"{_inline(preflight['summary'])}. {_inline(preflight['description'])}</p>",
        _responses(preflight["responses"]),
    ]


def _pretty(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _schema_link(schema: Json) -> str:
    """A link to each named schema `schema` refers to; its type otherwise."""
    refs = re.findall(r'"#/components/schemas/([^"]+)"', msgspec.json.encode(schema).decode())
    if refs:
        return " or ".join(f'<a href="#schema-{_e(ref)}">{_e(ref)}</a>' for ref in refs)
    kind = schema.get("type") or " or ".join(s.get("type", "?") for s in schema.get("oneOf", []))
    return f"({_e(str(kind))})" if kind else ""


def _markdown(text: str) -> str:
    """The little markdown the document's descriptions use: paragraphs and `- ` lists."""
    out: list[str] = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    return _BOLD.sub(r"<b>\1</b>", _CODE.sub(r"<code>\1</code>", _e(text)))


def _e(text: str) -> str:
    return html.escape(text, quote=True)
