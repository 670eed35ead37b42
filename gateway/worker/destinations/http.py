"""`http`: POST Segment-format batches (`{"batch": [...], "sentAt": ...}`) to a URL.

Outages are ridden out in place: a 5xx, 408, 429 or a network error is retried with
exponential backoff (a `Retry-After` header, seconds or an HTTP date, is honoured up to
`max_retry_after`), and only then reported to the worker as a retryable failure. Other 4xx
answers are reported at once (retryable too: a wrong key or URL is fixed by the operator;
the worker counts the attempts). A 2xx whose JSON body lists `Errors` with an `Index` (the
gateway's own 207 shape) fails just those messages.
"""

from __future__ import annotations

import asyncio
import base64
import gzip as gzip_module
import random
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import msgspec

from gateway import __version__
from gateway.ops.timestamps import iso, now
from gateway.worker.destinations.base import Destination, Failure, Result
from gateway.worker.message import Message
from gateway.worker.subject import Subject

DELETE_BODY = (
    '{"regulationId": $regulation_id, "regulationType": $regulation_type, '
    '"subjectType": $subject_type, "subjectIds": $subject_ids}'
)
"""What a deletion POSTs by default: Segment's Public API's regulation body."""
_DELETE_FIELDS = frozenset({"regulation_id", "regulation_type", "subject_type", "subject_ids"})

TRANSIENT = frozenset({408, 429}) | frozenset(range(500, 600))
"""Statuses retried in place before the batch is given back to the worker."""


class HttpDestination(Destination):
    """POST each batch to `url`, as the Segment and RudderStack server SDKs do."""

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        name: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        write_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        gzip: bool = False,
        delete_url: str | None = None,
        delete_body: str = DELETE_BODY,
    ) -> None:
        super().__init__(name)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url={url!r}: not an http:// or https:// URL")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_backoff < 0 or max_retry_after < 0:
            raise ValueError("timeout must be positive; retries and delays 0 or more")
        self.url = url
        self.headers = {"Content-Type": "application/json", "User-Agent": f"gateway/{__version__}"}
        if write_key is not None:
            # Segment's convention: the writeKey is the Basic username, the password is empty.
            token = base64.b64encode(f"{write_key}:".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.headers.update(headers or {})
        if gzip:
            self.headers["Content-Encoding"] = "gzip"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.gzip = gzip
        self.delete_url = delete_url
        self.delete_body = string.Template(delete_body)
        if delete_url is not None and urlsplit(delete_url).scheme not in ("http", "https"):
            raise ValueError(f"delete_url={delete_url!r}: not an http:// or https:// URL")
        unknown = set(self.delete_body.get_identifiers()) - _DELETE_FIELDS
        if unknown or not self.delete_body.is_valid():
            raise ValueError(f"delete_body: unknown fields {sorted(unknown)} (or a stray $)")
        self._session: aiohttp.ClientSession | None = None

    def describe(self) -> str:
        # The URL's path and query may carry a key; the host is enough to recognise it.
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]  # never log credentials in the URL
        return f"{self.name} (http, {parts.scheme}://{host})"

    async def send(self, batch: Sequence[Message]) -> Result:
        """POST the batch, retrying transient failures in place."""
        error = ""
        for attempt in range(self.retries + 1):
            delay = self._backoff(attempt)
            try:
                status, headers, text = await self._post(batch)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"network error: {type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if 200 <= status < 300:
                    return _item_errors(text, len(batch))
                error = f"HTTP {status}: {text[:300].decode(errors='replace')}".rstrip(": ")
                if status not in TRANSIENT:
                    return Result.all_failed(len(batch), error)
                asked = retry_after(headers.get("Retry-After"))
                if asked is not None:
                    if asked > self.max_retry_after:
                        # Do not hold the batch that long; the worker tries again later.
                        return Result.all_failed(len(batch), f"{error} (Retry-After {asked:g}s)")
                    delay = asked
            if attempt < self.retries:
                await asyncio.sleep(delay)
        return Result.all_failed(len(batch), error)

    @property
    def can_delete(self) -> bool:
        return self.delete_url is not None

    async def delete(self, subject: Subject) -> None:
        """POST the deletion to `delete_url`, retrying transient failures in place; raises
        with the last answer when it was not a 2xx."""
        assert self.delete_url is not None
        values = {
            "regulation_id": subject.regulation,
            "regulation_type": subject.regulation_type,
            "subject_type": subject.subject_type,
            "subject_ids": sorted(subject.ids),
        }
        body = self.delete_body.substitute({k: _json(v) for k, v in values.items()})
        headers = {k: v for k, v in self.headers.items() if k != "Content-Encoding"}
        error = ""
        for attempt in range(self.retries + 1):
            try:
                session = self._open_session()
                async with session.post(self.delete_url, data=body, headers=headers) as answer:
                    status, text = answer.status, await answer.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"network error: {type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if 200 <= status < 300:
                    return None
                error = f"HTTP {status}: {text[:300].decode(errors='replace')}".rstrip(": ")
                if status not in TRANSIENT:
                    break
            if attempt < self.retries:
                await asyncio.sleep(self._backoff(attempt))
        raise RuntimeError(f"the deletion call failed: {error}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, batch: Sequence[Message]) -> tuple[int, Mapping[str, str], bytes]:
        session = self._open_session()
        body = encode_batch(batch, iso(now()))
        if self.gzip:
            body = gzip_module.compress(body, compresslevel=5)
        async with session.post(self.url, data=body, headers=self.headers) as response:
            return response.status, response.headers, await response.read()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps many workers from retrying in step against a recovering server.
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def encode_batch(batch: Sequence[Message], sent_at: str) -> bytes:
    """`{"batch": [...], "sentAt": ...}` with each message's bytes exactly as enqueued."""
    return b"".join(
        (
            b'{"batch":[',
            b",".join(message.data for message in batch),
            b'],"sentAt":',
            msgspec.json.encode(sent_at),
            b"}",
        )
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _item_errors(text: bytes, size: int) -> Result:
    # A 2xx may still reject some items, as the gateway's own 207 does.
    try:
        body: Any = msgspec.json.decode(text) if text else None
    except msgspec.DecodeError:
        return Result()
    errors = body.get("Errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return Result()
    failed: dict[int, Failure] = {}
    for item in errors:
        if not isinstance(item, dict):
            continue
        index = item.get("Index")
        if isinstance(index, int) and 0 <= index < size:
            detail = ": ".join(str(item[k]) for k in ("Error", "Message", "Details") if item.get(k))
            failed[index] = Failure(f"rejected: {detail or 'no reason given'}")
    return Result(failed)
