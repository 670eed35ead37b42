"""The rate limit's Lua script, and running it on one Redis node or on a Redis Cluster.

On one node the calls of a flush go out as one pipeline on a lean connection
(`gateway.store.resp`). On a cluster each bucket lives in its own key's slot, on whichever
master holds it: redis-py's cluster pipeline sends each master its calls and follows
`MOVED`. Whether `--redis-url` is a cluster is decided as the hot path decides it
(`gateway.store.redis_url`), when Redis first answers. A server that has forgotten the
script gets it again, and only the calls it refused run again (`gateway.store.lua`).
"""

from __future__ import annotations

from typing import Any, Protocol

import hiredis
from redis.asyncio import RedisCluster

from gateway.store import lua, redis_client, redis_url
from gateway.store.resp import RespConnection, RespError, command

SCRIPT = """
-- KEYS[1]: the caller's bucket, a hash {tokens, at}; ARGV[1]: tokens per second;
-- ARGV[2]: the bucket's size (the burst); ARGV[3..]: the tokens each check wants, in order.
-- Each check gets all it wants or nothing (none are spent on a check that is refused).
-- Returns {thousandths of a token left, 1 or 0 per check: granted}.
if redis.replicate_commands then redis.replicate_commands() end  -- TIME, Redis < 5
-- A bucket is worth nothing after a restart or failover (it starts full again): keeping
-- its writes out of the AOF and replication spares an fsync per call on a server that
-- fsyncs every write.
redis.set_repl(redis.REPL_NONE)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
end
local reply = {0}
for i = 3, #ARGV do
  local want = tonumber(ARGV[i])
  if want <= tokens then
    tokens = tokens - want
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = 0
  end
end
reply[1] = math.floor(tokens * 1000)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return reply
"""
RATE_LIMIT = lua.Script(SCRIPT)

Call = tuple[bytes, ...]
"""One script call: the bucket's key, the rate, the burst, the tokens each check wants."""


class ScriptRunner(Protocol):
    """Runs script calls; `{milli-tokens left, granted per check...}` per call, in order, or
    raises."""

    async def run(self, calls: list[Call]) -> list[Any]:
        """The replies of `calls`; `OSError` (or `RespError`) when Redis failed."""
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...


async def open_runner(url: str, connect_timeout: float) -> ScriptRunner:
    """The runner for `--redis-url` `url`; `OSError` while Redis cannot be asked."""
    target = redis_url.parse(url)
    if await redis_url.is_cluster(url, connect_timeout):
        return ClusterRunner(target.url, connect_timeout)
    return NodeRunner(target.url, connect_timeout)


class NodeRunner:
    """One node: every call of a flush in one pipeline on one lean connection."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: RespConnection | None = None

    async def run(self, calls: list[Call]) -> list[Any]:
        """As `ScriptRunner.run`."""
        encoded = [command(b"EVALSHA", RATE_LIMIT.sha, b"1", *call) for call in calls]
        replies = await self._execute(encoded)
        replies = await lua.rerun_forgotten(encoded, replies, self._load_and_execute)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RespError(f"the rate limit script failed: {reply}")
        return replies

    async def close(self) -> None:
        """As `ScriptRunner.close`."""
        if self._connection is not None:
            self._connection.close()

    async def _load_and_execute(self, calls: list[bytes]) -> list[Any]:
        """`calls` behind `SCRIPT LOAD`, in one pipeline; their replies."""
        return (await self._execute([RATE_LIMIT.load, *calls]))[1:]

    async def _execute(self, calls: list[bytes]) -> list[Any]:
        # One flush at a time opens the connection: the limiter serialises `open_runner`,
        # and a connection that failed is replaced by the next flush.
        if self._connection is None or self._connection.closed:
            self._connection = await RespConnection.open(self._url, self._timeout)
        return await self._connection.execute(b"".join(calls), len(calls))


class ClusterRunner:
    """A cluster: redis-py's cluster pipeline, each call to the master of its key."""

    def __init__(self, url: str, timeout: float) -> None:
        client = redis_client.connect(url, timeout, cluster=True)
        assert isinstance(client, RedisCluster)
        self._client = client

    async def run(self, calls: list[Call]) -> list[Any]:
        """As `ScriptRunner.run`."""
        replies = await self._pipeline(calls)
        replies = await lua.rerun_forgotten(calls, replies, self._load_and_pipeline)
        for reply in replies:
            if isinstance(reply, Exception):
                raise RespError(f"the rate limit script failed: {reply}")
        return replies

    async def close(self) -> None:
        """As `ScriptRunner.close`."""
        await self._client.aclose()

    async def _load_and_pipeline(self, calls: list[Call]) -> list[Any]:
        """Load the script on every master (one may be new), then run `calls`."""
        await self._client.script_load(SCRIPT)
        return await self._pipeline(calls)

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        async with self._client.pipeline() as pipe:
            for call in calls:
                # `execute_command`: redis-py refuses `pipe.evalsha` on a cluster, yet
                # routes the command itself by its key.
                pipe.execute_command("EVALSHA", RATE_LIMIT.sha, 1, *call)
            return list(await pipe.execute(raise_on_error=False))
