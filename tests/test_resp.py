"""The lean pipelined connection against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import hiredis
import pytest
from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess
from gateway.store.resp import RespConnection, RespError, command
from tests.helpers.streams import read_stream


async def test_pipelines_in_flight_get_their_own_replies(
    redis: Redis, redis_server: RedisProcess
) -> None:
    connection = await RespConnection.open(redis_server.url, 5)
    payloads = [
        b"".join(command(b"XADD", b"s", b"*", b"n", b"%d" % (i * 10 + j)) for j in range(10))
        for i in range(5)
    ]
    replies = await asyncio.gather(*(connection.execute(p, 10) for p in payloads))
    assert [len(r) for r in replies] == [10] * 5
    entries = await read_stream(redis, "s")
    assert [int(f[b"n"]) for _id, f in entries] == list(range(50))
    assert [id_ for batch in replies for id_ in batch] == [id_ for id_, _ in entries]
    connection.close()


async def test_error_replies_are_returned_not_raised(
    redis: Redis, redis_server: RedisProcess
) -> None:
    connection = await RespConnection.open(redis_server.url, 5)
    await redis.set("string", "x")
    payload = command(b"XADD", b"string", b"*", b"a", b"b") + command(b"PING")
    wrong_type, pong = await connection.execute(payload, 2)
    assert isinstance(wrong_type, hiredis.ReplyError)
    assert "WRONGTYPE" in str(wrong_type)
    assert pong == b"PONG"
    connection.close()


async def test_database_and_password_from_the_url(redis: Redis, redis_server: RedisProcess) -> None:
    await redis.config_set("requirepass", "s3cret")
    try:
        url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/3"
        connection = await RespConnection.open(url, 5)
        await connection.execute(command(b"SET", b"k", b"v"), 1)
        connection.close()
        with pytest.raises(RespError, match="refused"):
            await RespConnection.open(f"redis://:wrong@127.0.0.1:{redis_server.port}/0", 5)
        await redis.execute_command("AUTH", "s3cret")  # type: ignore[no-untyped-call]
        await redis.execute_command("SELECT", "3")  # type: ignore[no-untyped-call]
        assert await redis.get("k") == b"v"
        await redis.execute_command("SELECT", "0")  # type: ignore[no-untyped-call]
    finally:
        await redis.config_set("requirepass", "")


async def test_a_dead_server_fails_what_is_in_flight(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "r")
    server.start()
    connection = await RespConnection.open(server.url, 5)
    server.kill()
    with pytest.raises(RespError):
        await connection.execute(command(b"PING"), 1)
    assert connection.closed
    with pytest.raises(RespError):
        await connection.execute(command(b"PING"), 1)
