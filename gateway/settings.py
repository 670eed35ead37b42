"""The gateway's configuration: one frozen object, read once from flags and `GATEWAY_*`."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.ops.logs import LOG_FORMATS

FSYNC_POLICIES = ("always", "everysec", "no")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the key and the value."""


def _number(
    convert: Callable[[str], float], accept: Callable[[float], bool], rule: str
) -> Callable[[str], Any]:
    """A parser of numbers by `convert` that refuses those `accept` rejects, saying `rule`."""

    def parse(value: str) -> Any:
        number = convert(value)
        if not accept(number):
            raise ValueError(rule)
        return number

    return parse


_positive_int = _number(int, lambda n: n >= 1, "must be 1 or more")
_positive_float = _number(float, lambda n: n > 0, "must be more than 0")
_non_negative_int = _number(int, lambda n: n >= 0, "must be 0 or more")
_non_negative_float = _number(float, lambda n: n >= 0, "must be 0 or more")


_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str) -> int:
    """Bytes from `1048576`, `512k`, `64M`, `1G` or `1GiB` (binary units)."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    unit = _SIZE_UNITS.get(text[-1:], 1) if text else 1
    number = int(text[:-1] if unit > 1 else text)
    if number < 1:
        raise ValueError("must be 1 or more bytes")
    return number * unit


def _fsync_policy(value: str) -> str:
    if value not in FSYNC_POLICIES:
        raise ValueError(f"must be one of {', '.join(FSYNC_POLICIES)}")
    return value


def _log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
    return value


def _networks(value: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _optional_str(value: str) -> str | None:
    return value or None


def _public_url(value: str) -> str | None:
    url = value.strip().rstrip("/")
    if url and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
        raise ValueError("must be an http:// or https:// URL, e.g. https://t.example.com")
    return url or None


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway process is configured with.

    Each field is also read from the environment as `GATEWAY_<FIELD>` (upper case).
    """

    host: str = "0.0.0.0"
    port: int = 8080
    redis_url: str | None = None
    sources: Path | None = None
    workers: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    """Processes sharing the port; one per core unless told otherwise."""
    partitions: int = 1
    data_dir: Path = Path("gateway-data")
    trusted_proxies: tuple[IPNetwork, ...] = ()
    redis_timeout: float = 2.0
    """Seconds a message may wait for Redis before the request gets a 503."""
    retry_after: int = 5
    """The `Retry-After` (seconds) sent with a 503."""
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_items: int = 2500
    max_depth: int = 64
    log_level: str = "info"
    log_format: str = "auto"
    """`json`, `text`, or `auto`: text on a terminal, JSON otherwise (see `gateway.ops.logs`)."""
    spool_max_bytes: int = 1024**3
    """Disk the spool may use under `<data_dir>/spool/` (per process) before answering 503."""
    spool_segment_bytes: int = 16 * 1024**2
    """Size at which a spool file is closed and a new one started (replay deletes whole files)."""
    spool_fsync: str = "everysec"
    """`always` (fsync before answering), `everysec` (in the background) or `no` (the kernel's)."""
    dedupe_window: int = 3600
    """Seconds a messageId is remembered per source to drop duplicates; 0 turns dedupe off."""
    shutdown_grace: float = 10.0
    """Seconds a stopping process has for in-flight requests and flushing before it exits."""
    public_url: str | None = None
    """The gateway's URL as browsers reach it (`https://t.example.com`), for the SDK settings."""
    analytics_js: Path | None = None
    """The `dist/umd` folder of `@segment/analytics-next`, served as first-party analytics.js."""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `environ` (default: the process environment), then `overrides`.

        Overrides are typed values or strings to parse; `None` means unset.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            key = f"GATEWAY_{name.upper()}"
            if key in environ:
                try:
                    values[name] = parse(environ[key])
                except ValueError as exc:
                    raise SettingsError(f"{key}={environ[key]!r}: {exc}") from None
        unknown = set(overrides) - set(_PARSERS)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, value in overrides.items():
            if isinstance(value, str):
                try:
                    value = _PARSERS[name](value)
                except ValueError as exc:
                    raise SettingsError(f"{name}={value!r}: {exc}") from None
            if value is not None:
                values[name] = value
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that parse but cannot work."""
        for name in ("port",):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingsError(f"{name}={getattr(self, name)!r}: not a TCP port")
        for name in (
            "workers",
            "partitions",
            "max_message_bytes",
            "max_batch_bytes",
            "max_batch_items",
            "max_depth",
            "retry_after",
            "spool_max_bytes",
            "spool_segment_bytes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}={getattr(self, name)!r}: must be 1 or more")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(
                f"log_format={self.log_format!r}: must be one of {', '.join(LOG_FORMATS)}"
            )
        if self.spool_fsync not in FSYNC_POLICIES:
            raise SettingsError(
                f"spool_fsync={self.spool_fsync!r}: must be one of {', '.join(FSYNC_POLICIES)}"
            )
        if self.dedupe_window < 0 or self.shutdown_grace < 0:
            raise SettingsError("dedupe_window and shutdown_grace must be 0 or more")
        if self.max_message_bytes > self.max_batch_bytes:
            raise SettingsError(
                f"max_message_bytes={self.max_message_bytes} is larger than "
                f"max_batch_bytes={self.max_batch_bytes}"
            )


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "redis_url": _optional_str,
    "sources": _optional_path,
    "workers": _positive_int,
    "partitions": _positive_int,
    "data_dir": Path,
    "trusted_proxies": _networks,
    "redis_timeout": _positive_float,
    "retry_after": _positive_int,
    "max_message_bytes": _positive_int,
    "max_batch_bytes": _positive_int,
    "max_batch_items": _positive_int,
    "max_depth": _positive_int,
    "log_level": str,
    "log_format": _log_format,
    "spool_max_bytes": parse_size,
    "spool_segment_bytes": parse_size,
    "spool_fsync": _fsync_policy,
    "dedupe_window": _non_negative_int,
    "shutdown_grace": _non_negative_float,
    "public_url": _public_url,
    "analytics_js": _optional_path,
}
