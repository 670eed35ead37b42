"""The gateway's answers: success, and errors in the source documents' JSON shape."""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from aiohttp import web

SUCCESS_BODY = b'{"success": true}'
JSON = "application/json"


class ApiError(Exception):
    """An answer other than 200: `{"Error": ..., "Message": ..., "Details": ...}`."""

    def __init__(
        self,
        status: int,
        message: str,
        details: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def error(self) -> str:
        """The status's reason phrase, as the `Error` field."""
        return HTTPStatus(self.status).phrase

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


def bad_request(message: str, details: str = "") -> ApiError:
    """A 400."""
    return ApiError(400, message, details)


def too_large(message: str, details: str = "") -> ApiError:
    """A 413."""
    return ApiError(413, message, details)


INVALID_WRITE_KEY = "Invalid or missing writekey"
MALFORMED_HTTP = "Malformed HTTP request"
"""The message of a request aiohttp could not parse (`gateway.http.framing`)."""


def invalid_write_key() -> ApiError:
    """The contract's answer for a missing, unknown or disabled writeKey."""
    return bad_request(INVALID_WRITE_KEY)


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
