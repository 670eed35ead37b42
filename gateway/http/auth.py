"""What a request says about who sent it (the writeKey in its headers, the caller's address)
and where (the host and scheme it reached, through trusted proxies)."""

from __future__ import annotations

import binascii
import functools
import ipaddress
import re
from base64 import b64decode
from collections.abc import Sequence

from aiohttp import web

from gateway.settings import IPNetwork


def basic_username(request: web.Request) -> str | None:
    """The HTTP Basic username (the writeKey), with or without the trailing colon."""
    header = request.headers.get("Authorization")
    return _basic_username(header) if header else None


@functools.lru_cache(maxsize=1024)
def _basic_username(header: str) -> str | None:
    # Cached: a source's clients all send the same header, and decoding it is a good part
    # of what the gateway does per request before the body.
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def query_key(request: web.Request) -> str | None:
    """The `writeKey` query parameter."""
    if "writeKey" not in request.query_string:  # most requests: no query to parse
        return None
    return request.query.get("writeKey") or None


def client_ip(request: web.Request, trusted: Sequence[IPNetwork]) -> str | None:
    """The caller's address; `X-Forwarded-For` is believed only from trusted proxies."""
    peer = request.remote
    if not trusted or peer is None or not _trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded:
        return peer
    # Walk from the nearest hop back; the first address that is not a trusted proxy is
    # the client (anything before it may have been written by the client itself).
    for hop in reversed([part.strip() for part in forwarded.split(",")]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a hop that is not an address: believe nothing further back
        if not any(address in network for network in trusted):
            return hop
    return peer


def _trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
"""A `Host` value: a name or an IP literal, and a port; nothing that could add a path."""


def public_origin(
    request: web.Request, public_url: str | None, trusted: Sequence[IPNetwork]
) -> tuple[str, str] | None:
    """The scheme and host (with any path prefix) browsers reach the gateway at.

    `public_url` when configured; else the request's `Host`, or the `X-Forwarded-Host` and
    `-Proto` of a trusted proxy (its first value: what the client asked the first proxy
    for). `None` when the host the request names is not a host.
    """
    if public_url:
        scheme, _, rest = public_url.partition("://")
        return scheme, rest
    scheme, host = request.scheme, request.host
    peer = request.remote
    if trusted and peer is not None and _trusted(peer, trusted):
        forwarded_host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        forwarded_proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
        host = forwarded_host or host
        if forwarded_proto.lower() in ("http", "https"):
            scheme = forwarded_proto.lower()
    return (scheme, host) if _HOST.fullmatch(host) else None
