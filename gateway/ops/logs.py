"""Logging: one line per event, as JSON (for log pipelines) or text (for people).

Every line has the time, level, logger, message and process id; a line written while a
request is handled also has its `request_id`, and a line about something an operator
may want to find or count has an `event` name (see docs/metrics.md). Further fields are
passed with `extra={...}`. Nothing here ever formats a writeKey, a token or a message
body: callers pass none, and tests/test_logging.py checks it.
"""

from __future__ import annotations

import contextvars
import logging
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
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL message key=value ...`: the same fields, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The classic line, then the extra fields."""
        line = super().format(record)
        extra = fields(record)
        if not extra:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{key}={value}" for key, value in extra.items())
        return f"{head} [{pairs}]{newline}{rest}"


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
