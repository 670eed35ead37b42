"""The OpenAPI part of what SDKs fetch before they send (`sdk_settings`,
`rudderstack_config`, `analytics_js`) and of analytics.js's metrics (`sdk_metrics`)."""

from __future__ import annotations

from gateway.errors import JSON
from gateway.http import analytics_js, rudderstack_config, sdk_metrics, sdk_settings
from gateway.http.openapi_parts import (
    AUTH,
    WRITE_KEY_QUERY,
    Family,
    Json,
    PathItems,
    alias,
    error,
    examples,
    json_answer,
    op_id,
    operation,
    ref,
)
from gateway.ingest.sources import Source

_CACHED = {"description": "Unchanged since the `ETag` in `If-None-Match`."}
_WEB = Source(id="web", write_keys=["wk_web"])


def _path_parameter(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _settings(items: PathItems) -> None:
    write_key = [_path_parameter("writeKey", "The source's writeKey.")]
    unknown = error("Sources mode: no enabled source has this writeKey.")
    for path in sdk_settings.PATHS:
        items[path] = {
            "get": operation(
                op_id("get", path),
                "SDK settings",
                "analytics.js's settings: send everything here",
                "`integrations` holds `Segment.io` alone, with `apiHost` this gateway's public "
                "host (`--public-url`, else the request's) and `/v1`; `metrics.sampleRate` 0; "
                "the source's `plan` and `consentSettings`. Cacheable for 60 s, with an ETag.",
                parameters=write_key,
                responses={
                    "200": json_answer(
                        "The settings.",
                        {"type": "object"},
                        example=sdk_settings.settings_document(
                            "wk_web", _WEB, "https", "events.example.com"
                        ),
                    ),
                    "304": _CACHED,
                    "404": unknown,
                },
                **alias(path, sdk_settings.PATHS[0]),
            )
        }
    items[rudderstack_config.PATH] = {
        "get": operation(
            "get_sourceConfig",
            "SDK settings",
            "RudderStack's source configuration",
            "What RudderStack's browser SDKs fetch from `configUrl`: the source, enabled, with "
            "no destinations and no error or metrics reporting.",
            parameters=[{**WRITE_KEY_QUERY, "required": False}],
            responses={
                "200": json_answer(
                    "The configuration.",
                    {"type": "object"},
                    example=rudderstack_config.source_config("wk_web", _WEB),
                ),
                "304": _CACHED,
                "404": unknown,
            },
            security=AUTH,
        )
    }


def _files(items: PathItems) -> None:
    files = {
        analytics_js.SCRIPT_PATH: (
            "analytics.js (`standalone.js` of the build)",
            [_path_parameter("writeKey", "The source's writeKey.")],
        ),
        analytics_js.BUNDLES_PATH: (
            "A chunk of analytics.js",
            [_path_parameter("name", "The chunk's file name.")],
        ),
    }
    for path, (summary, parameters) in files.items():
        answers = {
            "200": {
                "description": "The file, gzip-encoded when accepted (the build's `.gz`).",
                "content": {"text/javascript": {"schema": {"type": "string"}}},
            },
            "304": _CACHED,
            "404": error(
                "No build configured (`--analytics-js`), no such file, or (the script) an "
                "unknown writeKey in sources mode."
            ),
        }
        items[path] = {
            method: operation(
                op_id(method, path),
                "analytics.js",
                summary,
                "From the folder `--analytics-js` names, with caching headers.",
                parameters=parameters,
                responses=answers,
            )
            for method in ("get", "head")
        }


_USAGE = {
    "series": [
        {
            "type": "Counter",
            "metric": "analytics_js.invoke",
            "value": 1,
            "tags": {"method": "track", "library": "analytics.js", "library_version": "npm:1"},
        }
    ]
}
"""What analytics-next posts to `/v1/m` (`src/core/stats/remote-metrics.ts`)."""


def describe() -> Family:
    """The SDK settings, first-party analytics.js and `/v1/m`, for the OpenAPI document."""
    items: PathItems = {}
    _settings(items)
    _files(items)
    items[sdk_metrics.PATH] = {
        "post": operation(
            "post_v1_m",
            "analytics.js",
            "analytics.js's usage metrics",
            '`{"series": [...]}`: each series is counted in `gateway_sdk_metrics_total`; '
            "nothing is stored.",
            requestBody={
                "required": True,
                "content": {JSON: {"schema": {"type": "object"}, **examples(usage=_USAGE)}},
            },
            responses={
                "200": json_answer("Counted.", ref("Success"), example={"success": True}),
                "400": error("Invalid JSON."),
            },
        )
    }
    return Family(items)
