"""The gateway's configuration: one frozen object, read once from flags and `GATEWAY_*`.

`Common` is what every command that reads or writes the streams is told (`gateway serve`,
and the worker's commands in `gateway.worker.settings`); `Settings` is `gateway serve`'s.
How a field becomes a flag, a variable and a check: `gateway.ops.flags`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

import msgspec
from msgspec import Meta

from gateway.ops.flags import Invalid, Setting, SettingsError, read

__all__ = ["FSYNC_POLICIES", "Common", "IPNetwork", "Settings", "SettingsError", "parse_size"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Port = Annotated[int, Meta(ge=0, le=65535)]
Count = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(gt=0)]
"""A duration that must not be zero."""
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "text"]
"""`gateway.ops.logs.LOG_FORMATS`, as a type (a test keeps the two alike)."""
FsyncPolicy = Literal["always", "everysec", "no"]
FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)

REDIS_URL_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
"""What redis-py connects to, and the cluster marker of `gateway.store.redis_url`."""
RedisUrl = Annotated[str, Meta(pattern=f"^(?i:{'|'.join(map(re.escape, REDIS_URL_SCHEMES))})://.")]

RetentionAcked = Annotated[
    float,
    Meta(ge=0),
    Setting(
        "seconds an entry stays in its stream once every consumer group has acknowledged "
        "it; 0: trimmed at once",
        metavar="SECONDS",
    ),
]
"""`--retention-acked`, of `gateway serve` and `gateway worker` (`gateway.store.retention`)."""
RetentionMaxAge = Annotated[
    float,
    Meta(ge=0),
    Setting(
        "seconds after which an entry is trimmed whether read or not, with a warning and a "
        "counter; 0: kept until acknowledged",
        metavar="SECONDS",
    ),
]
"""`--retention-max-age`, of `gateway serve` and `gateway worker` alike."""

DedupeWindow = Annotated[
    int,
    Meta(ge=0),
    Setting("seconds a messageId is remembered per source to drop duplicates; 0: off"),
]
"""`--dedupe-window`, of `gateway serve` and `gateway replay --to-streams`."""

_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
SIZE = "a size of 1 byte or more, e.g. 1048576, 512k, 64M, 1G"


def parse_size(value: str) -> int:
    """Bytes from `1048576`, `512k`, `64M`, `1G` or `1GiB` (binary units)."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    unit = _SIZE_UNITS.get(text[-1:], 1) if text else 1
    return int(text[:-1] if unit > 1 else text) * unit


def _networks(value: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())


def _public_url(value: str) -> str | None:
    url = value.strip().rstrip("/")
    if url and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
        raise ValueError("must be an http:// or https:// URL, e.g. https://t.example.com")
    return url or None


class Common(msgspec.Struct, frozen=True, kw_only=True):
    """Where the streams are and how to log: the same for `serve` and the worker's commands."""

    redis_url: Annotated[
        RedisUrl | None,
        Setting(
            "your Redis or Valkey (redis://host:port/db), or any node of a Redis Cluster "
            "(detected; redis+cluster:// says so)",
            metavar="URL",
            default="the embedded server, which serve starts and a worker finds in --data-dir",
            allowed="a URL starting with "
            + ", ".join(s + "://" for s in REDIS_URL_SCHEMES[:-1])
            + f" or {REDIS_URL_SCHEMES[-1]}://",
        ),
    ] = None
    data_dir: Annotated[
        Path, Setting("local state: the spool and the embedded server's files", metavar="DIR")
    ] = Path("gateway-data")
    partitions: Annotated[
        Count,
        Setting(
            "stream partitions (the gateway records its count in Redis; a worker reads every "
            "partition recorded or configured)",
            metavar="N",
        ),
    ] = 1
    log_level: Annotated[LogLevel, Setting("how much to log", parse=str.lower)] = "info"
    log_format: Annotated[
        LogFormat,
        Setting("json (an object a line), text, or auto: text on a terminal, else json"),
    ] = "auto"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from `overrides` (typed values or text; None: unset), else `environ`
        (default: the process environment), else the defaults; `SettingsError` if unusable."""
        return read(cls, environ, overrides)


class Settings(Common, frozen=True, kw_only=True):
    """Everything `gateway serve` is configured with; each field a flag and a variable."""

    host: Annotated[str, Meta(min_length=1), Setting("address to listen on", metavar="ADDRESS")] = (
        "0.0.0.0"
    )
    port: Annotated[Port, Setting("port to listen on")] = 8080
    sources: Annotated[
        Path | None,
        Setting("TOML file of sources and writeKeys", metavar="FILE", default="none: open mode"),
    ] = None
    workers: Annotated[
        Count, Setting("processes sharing the port", metavar="N", default="one per core")
    ] = msgspec.field(default_factory=lambda: os.cpu_count() or 1)
    trusted_proxies: Annotated[
        tuple[IPNetwork, ...],
        Setting(
            "proxies whose X-Forwarded-For is believed",
            metavar="NETWORKS",
            default="none",
            allowed="comma-separated networks, e.g. 10.0.0.0/8,::1",
            parse=_networks,
        ),
    ] = ()
    redis_timeout: Annotated[
        Seconds, Setting("seconds a message may wait for Redis before going to the spool")
    ] = 2.0
    wait_replicas: Annotated[
        Annotated[int, Meta(ge=0, le=100)],
        Setting(
            "replicas each master must confirm a write to before it counts as durable (WAIT); "
            "0: the master's answer is enough",
            metavar="N",
        ),
    ] = 0
    wait_replicas_timeout: Annotated[
        Seconds,
        Setting(
            "seconds to wait for the replicas' confirmation before spooling the batch instead; "
            "less than --redis-timeout"
        ),
    ] = 0.5
    wait_replicas_fsync: Annotated[
        bool,
        Setting(
            "wait until the replicas have also fsynced the writes to their append-only file "
            "(WAITAOF: Redis 7.2+, Valkey)"
        ),
    ] = False
    retry_after: Annotated[Count, Setting("the Retry-After of a 503, in seconds")] = 5
    max_message_bytes: Annotated[Count, Setting("bytes of one message")] = 32 * 1024
    max_batch_bytes: Annotated[Count, Setting("bytes of one batch request")] = 500 * 1024
    max_batch_items: Annotated[Count, Setting("items of one batch")] = 2500
    max_depth: Annotated[Count, Setting("nesting depth of a message")] = 64
    spool_max_bytes: Annotated[
        Count,
        Setting(
            "disk the spool may use per process while Redis is away, before answering 503",
            metavar="SIZE",
            default="1G",
            allowed=SIZE,
            parse=parse_size,
        ),
    ] = 1024**3
    spool_segment_bytes: Annotated[
        Count,
        Setting(
            "size at which a spool file is closed and the next started",
            metavar="SIZE",
            default="16M",
            allowed=SIZE,
            parse=parse_size,
        ),
    ] = 16 * 1024**2
    spool_fsync: Annotated[
        FsyncPolicy,
        Setting(
            "fsync the spool before answering (always), every second (everysec) or never "
            "(no); every policy survives a crash of the gateway process"
        ),
    ] = "everysec"
    dedupe_window: DedupeWindow = 3600
    retention_acked: RetentionAcked = 3600.0
    retention_max_age: RetentionMaxAge = 604800.0
    shutdown_grace: Annotated[
        Annotated[float, Meta(ge=0)],
        Setting("seconds to finish requests in flight and flush on SIGTERM or SIGINT"),
    ] = 10.0

    header_timeout: Annotated[
        Seconds,
        Setting("seconds a request's headers may take, from its first byte; then 408 and close"),
    ] = 10.0
    idle_timeout: Annotated[
        Seconds, Setting("seconds an idle keep-alive connection is kept open")
    ] = 15.0
    body_timeout: Annotated[
        Seconds, Setting("seconds a request's body may take to arrive; then 408 and close")
    ] = 30.0
    body_min_rate: Annotated[
        Annotated[int, Meta(ge=0)],
        Setting(
            "bytes a second a body must average after its first 5 seconds; 0: no minimum",
            metavar="BYTES",
        ),
    ] = 1024
    body_memory: Annotated[
        Count,
        Setting(
            "bytes the bodies being read or inflated may hold in one process; past it, 503",
            metavar="SIZE",
            default="32M",
            allowed=SIZE,
            parse=parse_size,
        ),
    ] = 32 * 1024**2
    address_rate: Annotated[
        Annotated[float, Meta(ge=0)],
        Setting("requests a second one client address may make, per process; 0: no limit"),
    ] = 200.0
    address_burst: Annotated[
        Count, Setting("requests one client address may make at once, above its rate")
    ] = 400
    address_table: Annotated[
        Count, Setting("client addresses each process keeps a budget for", metavar="N")
    ] = 65536

    public_url: Annotated[
        str | None,
        Setting(
            "the gateway's URL as browsers reach it, for the SDK settings' apiHost",
            metavar="URL",
            default="from each request's Host",
            allowed="an http:// or https:// URL, e.g. https://t.example.com",
            parse=_public_url,
        ),
    ] = None
    analytics_js: Annotated[
        Path | None,
        Setting(
            "serve this analytics.js build (dist/umd of @segment/analytics-next) as "
            "/analytics.js/v1/{writeKey}/analytics.min.js",
            metavar="DIR",
            default="none: not served",
        ),
    ] = None

    admin_host: Annotated[
        str,
        Meta(min_length=1),
        Setting(
            "address of the admin listener (admin API, /metrics); not loopback: needs "
            "--admin-token",
            metavar="ADDRESS",
        ),
    ] = "127.0.0.1"
    admin_port: Annotated[Port, Setting("port of the admin listener")] = 8081
    admin_token: Annotated[
        Annotated[str, Meta(min_length=16)] | None,
        Setting(
            "the bearer token of the admin listener (never logged)",
            metavar="TOKEN",
            default="made at first start, kept in <data-dir>/admin-token",
            allowed="a text of 16 characters or more",
        ),
    ] = None
    access_ttl: Annotated[
        Seconds,
        Setting(
            "seconds an ACCESS regulation's zip stays downloadable once finished",
            metavar="SECONDS",
        ),
    ] = 7 * 86400.0
    public_metrics: Annotated[
        bool,
        Setting(
            "also serve /metrics on the public port, unauthenticated (unsafe: it tells anyone "
            "your traffic, streams and groups; for scrapers not yet moved to the admin port)"
        ),
    ] = False

    def check(self) -> None:
        """What one field cannot say alone: how two relate, whether a path can be used."""
        if self.max_message_bytes > self.max_batch_bytes:
            raise Invalid(
                "max_message_bytes", f"must be at most --max-batch-bytes ({self.max_batch_bytes})"
            )
        if self.wait_replicas and self.wait_replicas_timeout >= self.redis_timeout:
            # Past --redis-timeout the committer gives up on the flush: the wait's own answer
            # (and the spooling it decides) must come first.
            limit = f"must be less than --redis-timeout ({self.redis_timeout:g})"
            raise Invalid("wait_replicas_timeout", limit)
        if self.wait_replicas_fsync and not self.wait_replicas:
            raise Invalid("wait_replicas_fsync", "needs --wait-replicas 1 or more")
        if self.sources is not None and not (
            self.sources.is_file() and os.access(self.sources, os.R_OK)
        ):
            raise Invalid("sources", "must be a file the gateway can read")
        if self.admin_token is None and not is_loopback(self.admin_host):
            raise Invalid(
                "admin_host",
                "is not a loopback address: set --admin-token (GATEWAY_ADMIN_TOKEN) to "
                "listen there",
            )
        problem = _unwritable(self.data_dir)
        if problem:
            raise Invalid("data_dir", problem)


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def _unwritable(directory: Path) -> str | None:
    """Why the gateway could not keep files in `directory` (made if missing), or None."""
    if directory.exists():
        if not directory.is_dir():
            return "must be a directory (it is a file)"
        if not os.access(directory, os.W_OK | os.X_OK):
            return "must be a directory the gateway can write to"
        return None
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be made: {parent} is not a directory the gateway can write to"
    return None
