"""Reading a request body within a size limit, decoding gzip and deflate as it arrives.

The limit applies to the decoded bytes and is checked while reading and while inflating,
so neither a huge body nor a small compressed one that inflates to gigabytes is ever held
in memory past the limit. A body still arriving is read within the time and memory limits
of `gateway.http.body_limits`; one given up on (408, 503) closes its connection after the
answer (`framing.hang_up`).
"""

from __future__ import annotations

import zlib

from aiohttp import StreamReader, web

from gateway.errors import ApiError, bad_request, too_large
from gateway.http import framing
from gateway.http.app_keys import BODY_LIMITS
from gateway.http.body_limits import Reading

_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS
_SLACK = 1024
"""Compressed bodies may exceed the decoded limit by a little (headers, incompressible data)."""
_INFLATE_STATE = 48 * 1024
"""About what zlib holds to inflate one stream (its 32 KiB window and state)."""


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    """The decoded body of `request`; a 413 naming `what` once it passes `limit` bytes."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        length = request.content_length
        if length is not None and length > limit:
            raise _too_large(what, limit)
    elif encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(
            415,
            f"Unsupported Content-Encoding {encoding!r}",
            "send the body uncompressed, or compressed with gzip or deflate",
        )
    stream = request.content
    if stream.is_eof():  # the whole body came with the headers, as it mostly does: no wait
        if encoding in ("", "identity"):
            body = stream.read_nowait()
            if len(body) > limit:
                raise _too_large(what, limit)
            return body
        return await _read_compressed(stream, limit, what, encoding, None)
    try:
        async with request.app[BODY_LIMITS].reading() as reading:
            if encoding in ("", "identity"):
                return await _read_plain(stream, limit, what, reading)
            return await _read_compressed(stream, limit, what, encoding, reading)
    except ApiError as exc:
        if exc.status in (408, 503):  # the rest of the body is not worth waiting for
            framing.hang_up(request)
        raise


def _too_large(what: str, limit: int) -> ApiError:
    return too_large(f"{what} is larger than {limit} bytes", f"the limit is {limit} bytes")


async def _read_plain(stream: StreamReader, limit: int, what: str, reading: Reading) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise _too_large(what, limit)
        reading.arrived(size, len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_compressed(
    stream: StreamReader, limit: int, what: str, encoding: str, reading: Reading | None
) -> bytes:
    """`reading` None: the whole body is buffered already, so no read below waits."""
    decompressor: zlib._Decompress | None = None
    decoded = bytearray()
    received = 0
    while chunk := await stream.readany():
        received += len(chunk)
        if received > limit + _SLACK:
            raise _too_large(what, limit)
        if decompressor is None:
            decompressor = zlib.decompressobj(_wbits(encoding, chunk))
        elif decompressor.eof:
            continue  # trailing bytes after the end of the compressed stream are ignored
        data = chunk
        try:
            while data:
                # max_length bounds what one call may inflate: a bomb stops at the limit.
                decoded += decompressor.decompress(data, limit + 1 - len(decoded))
                if len(decoded) > limit:
                    raise _too_large(what, limit)
                data = decompressor.unconsumed_tail
        except zlib.error as exc:
            raise bad_request(f"Invalid {encoding} body", str(exc)) from None
        if reading is not None:
            reading.arrived(received, _INFLATE_STATE + len(decoded) - reading.held)
    if decompressor is None:
        return b""
    if not decompressor.eof:
        raise bad_request(f"Invalid {encoding} body", "the compressed data ends early")
    return bytes(decoded)


def _wbits(encoding: str, first: bytes) -> int:
    if encoding != "deflate":
        return _GZIP
    # HTTP's "deflate" is zlib-wrapped, but many clients send raw deflate: look at the header.
    if len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
        return _ZLIB
    return _RAW_DEFLATE
