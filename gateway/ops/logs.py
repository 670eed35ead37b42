"""Logging: one line per event, as JSON (for log pipelines) or text (for people).

Every line has the time, level, logger, message and process id; a line written while a
request is handled also has its `request_id`, and a line about something an operator
may want to find or count has an `event` name (see docs/metrics.md). Further fields are
passed with `extra={...}`. Nothing here ever formats a writeKey, a token or a message
body: callers pass none, and tests/test_logging.py checks it.

What a line quotes from a request can still hold one: a request line aiohttp could not parse
(`?writeKey=...`), a header in a parser's message (`Authorization: Basic ...`). So every
line, at every level, has such values replaced by `[redacted]` (`redact`) as it is
formatted, its exception text included. In the text format every field that may come from
a client (the message, the `extra` values) is escaped as JSON escapes it: a `%0A` in a
query value cannot start a line of its own.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import IO, Any

import msgspec

LOG_FORMATS = ("auto", "json", "text")
"""`auto`: text when stderr is a terminal, JSON otherwise (a container, systemd, a file)."""

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""The id of the request being handled, set by `gateway.http.observe` for its handler's run."""

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_encode = msgspec.json.Encoder(enc_hook=str).encode

REDACTED = "[redacted]"
_SECRETS = re.compile(
    # A query value that is a key or carries one (a pixel's `data`), up to its end.
    r"((?i:write_?key|token|api_?key|secret|password|data)(?:=|%3D))[^&\s\\'\"]+"
    # An Authorization header's credentials, and Intilery's `auth-token` header.
    r"|((?:Basic|Bearer|(?i:auth-token):)(?:\s|%20)+)[A-Za-z0-9+/=._~%-]{4,}"
    # A JSON field holding a key (its quotes escaped, once the line is JSON).
    r'|(\\?"(?i:write_?key|token)\\?"\s*:\s*\\?")[^"\\]*'
    # The routes whose path holds a writeKey (the SDK settings, first-party analytics.js).
    r"|(/projects/|/analytics\.js/v1/)[^/\s\\'\"?]+"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def redact(text: str) -> str:
    """`text` with writeKeys, tokens and Basic or Bearer credentials replaced."""
    return _SECRETS.sub(_redacted, text)


def _redacted(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group) + REDACTED


def escape(text: str) -> str:
    """`text` with control characters escaped as in JSON (`\\n`, `\\u001b`)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _encode(m.group())[1:-1].decode(), text)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was given with `extra=`, and its request id if any."""
    out = {key: value for key, value in record.__dict__.items() if key not in _STANDARD}
    request_id = REQUEST_ID.get()
    if request_id is not None and "request_id" not in out:
        out["request_id"] = request_id
    return out


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """`{"time", "level", "logger", "message", "pid", ...extra, "exception"?}`."""
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(_encode(line).decode())


class TextFormatter(logging.Formatter):
    """`time LEVEL message [key=value ...]`: the same fields, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The classic line, its message escaped, then the extra fields, escaped too."""
        line = self._style.format(_Escaped(record))
        extra = fields(record)
        if not extra:
            return line
        pairs = " ".join(f"{key}={_text(value)}" for key, value in extra.items())
        return f"{line} [{pairs}]"

    def format(self, record: logging.LogRecord) -> str:
        """The line, then a traceback if any (on lines of its own, as Python writes it)."""
        return redact(super().format(record))


class _Escaped:
    """A record whose `message` is escaped, for the format string (nothing else changes)."""

    def __init__(self, record: logging.LogRecord) -> None:
        self.__dict__.update(record.__dict__)
        self.__dict__["message"] = escape(record.message)


def _text(value: object) -> str:
    """A field's value: as is when plain, else quoted as JSON quotes it."""
    text = str(value)
    if text and not _PLAIN.search(text):
        return text
    return _encode(text).decode()


_PLAIN = re.compile(r"[\s\"\[\]=\\\x00-\x1f\x7f\u2028\u2029]")
"""What makes a value need quotes in `key=value`: a space, a quote, a bracket, `=`, ..."""


def configure(level: str, log_format: str = "auto", stream: IO[str] | None = None) -> None:
    """Send every logger's records at `level` or above to `stream` (stderr) in `log_format`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    stream = stream or sys.stderr
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def _iso(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
