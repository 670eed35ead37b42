"""`gateway tail`: the last messages of every partition, oldest first, as JSON lines.

What a newcomer reaches for after the first `curl`: is my event in Redis? It reads only
(`XREVRANGE`, and `XREAD` with `--follow`), so it never takes a message from a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from gateway.store.redis_client import AnyRedis
from gateway.worker.connection import connect
from gateway.worker.partitions import partition_streams

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _id_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _line(stream: str, entry_id: bytes | str, fields: dict[Any, Any]) -> tuple[str, str]:
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(b"data", fields.get("data", b"null"))
    source = fields.get(b"source", fields.get("source", b""))
    record = {
        "stream": stream,
        "id": ident,
        "source": source.decode() if isinstance(source, bytes) else source,
        "message": _decode(raw),
    }
    return ident, _encode(record).decode()


async def last(redis: AnyRedis, partitions: int, count: int) -> list[str]:
    """The `count` newest entries over every partition, oldest first, one JSON line each."""
    lines: list[tuple[str, str]] = []
    for stream in await partition_streams(redis, partitions):
        entries: Any = await redis.xrevrange(stream, count=count)
        for entry_id, fields in entries:
            lines.append(_line(stream, entry_id, fields))
    lines.sort(key=lambda pair: _id_key(pair[0]))
    return [line for _, line in lines[-count:]] if count else []


def _print(line: str) -> None:
    print(line, flush=True)


async def follow(
    redis: AnyRedis,
    streams: Sequence[str],
    emit: Callable[[str], None] = _print,
    block_ms: int = 1000,
) -> None:
    """Hand each entry added to `streams` from now on to `emit`, until cancelled."""
    after: dict[Any, Any] = dict.fromkeys(streams, "$")
    while True:
        replies: Any = await redis.xread(after, block=block_ms, count=100)
        for stream, entries in replies or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                ident, line = _line(name, entry_id, fields)
                after[name] = ident
                emit(line)


async def run_tail(url: str, partitions: int, count: int, keep_following: bool) -> int:
    """`gateway tail`: print the last `count` messages, then (`--follow`) what arrives."""
    redis = await connect(url)
    try:
        for line in await last(redis, partitions, count):
            _print(line)
        if keep_following:
            await follow(redis, await partition_streams(redis, partitions))
    finally:
        await redis.aclose()
    return 0
