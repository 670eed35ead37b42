"""The gateway's answers: success, and errors in the source documents' JSON shape.

Each error carries a `Code`, set where it is made: why the request was refused, in one
word, for the metrics (the `reason` label of `gateway_messages_rejected_total`) without
reading the error's text.
"""

from __future__ import annotations

import enum
from http import HTTPStatus

import msgspec
from aiohttp import web

SUCCESS_BODY = b'{"success": true}'
JSON = "application/json"


class Code(enum.StrEnum):
    """Why a request was refused; the values are the metrics' `reason` labels."""

    WRITE_KEY = "write_key"
    """Missing, unknown or disabled writeKey."""
    MALFORMED = "malformed"
    """Not JSON, not UTF-8, not an object, an empty or undecodable body, not valid HTTP."""
    INVALID = "invalid"
    """Fails the message schema, or any other 400 without a code of its own."""
    TOO_DEEP = "too_deep"
    """Nested deeper than `--max-depth`."""
    TOO_LARGE = "too_large"
    ENCODING = "encoding"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    """Over the source's rate limit, or over its address's budget."""
    TIMEOUT = "timeout"
    """Headers or a body that did not arrive in time (408)."""
    UNAVAILABLE = "unavailable"
    NO_ROUTE = "no_route"
    """A path or method the gateway does not serve: no message was refused (not counted)."""


PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
"""The `Error` text of each status the gateway answers with, as the contract spells it."""

_CODE_OF_STATUS = {
    401: Code.AUTH,
    403: Code.AUTH,
    404: Code.NO_ROUTE,
    405: Code.NO_ROUTE,
    413: Code.TOO_LARGE,
    408: Code.TIMEOUT,
    415: Code.ENCODING,
    429: Code.RATE_LIMITED,
}
"""Statuses that say why themselves; `code` tells the 400s (and others) apart."""


class ApiError(Exception):
    """An answer other than 200: `{"Error": ..., "Message": ..., "Details": ...}`.

    `code` says why, for the metrics; a status that says it itself (413, 429, 5xx, ...)
    decides it, whatever `code` was given.
    """

    def __init__(
        self,
        status: int,
        message: str,
        details: str = "",
        headers: dict[str, str] | None = None,
        code: Code = Code.INVALID,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.code = Code.UNAVAILABLE if status >= 500 else _CODE_OF_STATUS.get(status, code)

    @property
    def error(self) -> str:
        """The status's reason phrase, as the `Error` field: the contract's text, fixed here
        (Python's `HTTPStatus` renamed 413's phrase in 3.13)."""
        return PHRASES.get(self.status) or HTTPStatus(self.status).phrase

    @property
    def summary(self) -> str:
        """`Message: Details` (or the message alone) in one line, for an answer in another
        vendor's shape or a record of why."""
        return f"{self.message}: {self.details}" if self.details else self.message

    def as_dict(self) -> dict[str, str]:
        """The error object, as it appears alone or in a batch's `Errors` list."""
        return {"Error": self.error, "Message": self.message, "Details": self.details}

    def response(self) -> web.Response:
        """The error as an HTTP answer."""
        return web.Response(
            status=self.status,
            body=msgspec.json.encode(self.as_dict()),
            content_type=JSON,
            headers=self.headers,
        )


def bad_request(message: str, details: str = "", code: Code = Code.MALFORMED) -> ApiError:
    """A 400; by default for what cannot be read at all (not JSON, not UTF-8, ...), which
    is what HTTP's 400 means: malformed syntax."""
    return ApiError(400, message, details, code=code)


def invalid(message: str, details: str = "") -> ApiError:
    """A 400 for what was read but breaks the rules (the message schema, a limit's count)."""
    return ApiError(400, message, details, code=Code.INVALID)


def too_large(message: str, details: str = "") -> ApiError:
    """A 413."""
    return ApiError(413, message, details)


INVALID_WRITE_KEY = "Invalid or missing writekey"
MALFORMED_HTTP = "Malformed HTTP request"
"""The message of a request aiohttp could not parse (`gateway.http.framing`)."""


def invalid_write_key() -> ApiError:
    """The contract's answer for a missing, unknown or disabled writeKey."""
    return bad_request(INVALID_WRITE_KEY, code=Code.WRITE_KEY)


def unavailable(message: str, retry_after: int) -> ApiError:
    """A 503 that tells the client when to try again."""
    return ApiError(503, message, "", {"Retry-After": str(retry_after)})


def success() -> web.Response:
    """The one answer for a fully accepted request."""
    return web.Response(body=SUCCESS_BODY, content_type=JSON)


def partial(accepted: int, errors: list[tuple[int, ApiError]]) -> web.Response:
    """A batch with failed items: 207 when some were accepted, 400 when none were."""
    body = {
        "Success": False,
        "Accepted": accepted,
        "Errors": [{"Index": index, **error.as_dict()} for index, error in errors],
    }
    return web.Response(
        status=207 if accepted else 400, body=msgspec.json.encode(body), content_type=JSON
    )
