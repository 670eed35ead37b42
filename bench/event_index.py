"""What remembering accepted messageIds costs Redis: the seen hashes against the design before.

The dedupe script (`gateway.store.dedupe_script`) keeps one hash per partition and bucket of
`<source>:<messageId>` -> `<entry id> <route>`: the dedupe check and the admin API's event
lookup in one structure. Before, it kept a set of `<source>:<messageId>` for dedupe and,
beside it, the messageId index, a hash of `<messageId>` -> `<entry id> <route> <source>`:
`OLD_SCRIPT` is that script, kept here as the reference.

On the embedded server, writes N track messages of about 1 KB in chunks of 229 (a busy
flush) with dedupe off, through the old script and through the new one, in alternating
rounds, and prints per message: Redis's CPU (`INFO cpu`, user + sys), Redis's memory
(`MEMORY USAGE` of the structures, and `used_memory`), and the Python the gateway spends
building the calls (timeit), reading the route of a request and noting a refusal; then
what one lookup costs with 1 to 10,000 sources in the table.
Run: `python -m bench.event_index [N]`; results go in docs/admin.md and docs/durability.md.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from bench.dedupe_memory import embedded
from gateway.constants import all_events_keys, events_key, hash_tag
from gateway.store import dedupe_script, event_index, refusals
from gateway.store.dedupe_script import CHUNK, DEDUPE
from gateway.store.entry import Entry
from gateway.store.lua import Script
from gateway.store.node_writer import NodeWriter
from gateway.store.resp import RespConnection, command

FLUSH = 229
WINDOW, SPAN = b"3600", b"%d" % dedupe_script.bucket_seconds(3600)
DATA = (
    b'{"type":"track","event":"Order Completed","userId":"user-1234","properties":{"pad":"'
    + b"x" * 900
    + b'"}}'
)

OLD_SCRIPT = """
-- KEYS[1]: the stream; KEYS[2]: the prefix of its dedupe sets; KEYS[3] (optional): the
-- prefix of its messageId index (all three in one hash tag)
-- ARGV[1]: the window in seconds (0: no dedupe); ARGV[2]: the bucket's length in seconds
-- ARGV[4i - 1] .. ARGV[4i + 2]: data, source, member and route of entry i (from 1)
local window = tonumber(ARGV[1])
local count = (#ARGV - 2) / 4
if window == 0 then
  for i = 1, count do
    redis.call('XADD', KEYS[1], '*', 'data', ARGV[4 * i - 1], 'source', ARGV[4 * i])
  end
  return count
end
local span = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local current = math.floor(now / span)
local members = {}
for i = 1, count do members[i] = ARGV[4 * i + 1] end
local seen = {}
for bucket = math.floor((now - window) / span), current do
  local found = redis.call('SMISMEMBER', KEYS[2] .. bucket, unpack(members))
  for i = 1, count do
    if found[i] == 1 then seen[members[i]] = true end
  end
end
local added = {}
local index = {}
local failed = nil
for i = 1, count do
  local member = members[i]
  if not seen[member] then
    seen[member] = true  -- the same id twice in one chunk
    -- XADD before marking: if it fails (e.g. out of memory) no member claims an entry
    -- that is not in the stream; the ones added before it are still marked
    local source = ARGV[4 * i]
    local id = redis.pcall('XADD', KEYS[1], '*', 'data', ARGV[4 * i - 1], 'source', source)
    if type(id) == 'table' and id.err then
      failed = id
      break
    end
    added[#added + 1] = member
    if KEYS[3] then
      index[#index + 1] = string.sub(member, #source + 2)
      index[#index + 1] = id .. ' ' .. ARGV[4 * i + 2] .. ' ' .. source
    end
  end
end
if #added > 0 then
  local expires = (current + 1) * span + window
  local key = KEYS[2] .. current
  redis.call('SADD', key, unpack(added))
  redis.call('EXPIREAT', key, expires)
  if KEYS[3] then
    key = KEYS[3] .. current
    redis.call('HSET', key, unpack(index))
    redis.call('EXPIREAT', key, expires)
  end
end
if failed then return failed end
return #added
"""
OLD = Script(OLD_SCRIPT)


def old_calls(entries: Sequence[Entry], window: bytes, span: bytes) -> list[bytes]:
    """The old script's calls, as `dedupe_script.calls` made them (with the index)."""
    groups: dict[tuple[str, bool], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.stream, entry.message_id != ""), []).append(entry)
    out: list[bytes] = []
    for (stream, deduped), group in groups.items():
        tag = hash_tag(stream)
        keys: tuple[bytes, ...] = (stream.encode(), f"gateway:dedupe:{tag}:".encode())
        if deduped:
            keys += (f"gateway:where:{tag}:".encode(),)
        count = b"%d" % len(keys)
        for start in range(0, len(group), CHUNK):
            args = [window if deduped else b"0", span]
            for entry in group[start : start + CHUNK]:
                source = entry.source.encode()
                member = b"%s:%s" % (source, entry.message_id.encode())
                args += (entry.data, source, member, entry.route.encode() or b"-")
            out.append(command(b"EVALSHA", OLD.sha, count, *keys, *args))
    return out


def new_calls(entries: Sequence[Entry], window: bytes, span: bytes) -> list[bytes]:
    """The gateway's calls."""
    return dedupe_script.calls(entries, window, span)


def off_calls(entries: Sequence[Entry], window: bytes, span: bytes) -> list[bytes]:
    """The gateway's calls with dedupe off (window 0): the stream alone."""
    return dedupe_script.calls(entries, b"0", span)


DESIGNS = {"off": off_calls, "old": old_calls, "new": new_calls}
STRUCTURES = {"off": [], "old": ["gateway:dedupe:*", "gateway:where:*"], "new": ["gateway:seen:*"]}


def entries(count: int) -> list[Entry]:
    stream = events_key(0)
    return [Entry(stream, DATA, "web", str(uuid.uuid4()), "/v1/track") for _ in range(count)]


async def cpu(redis: Redis) -> float:
    info: dict[str, Any] = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def write(url: str, redis: Redis, count: int, design: str) -> tuple[float, int, int]:
    """Redis CPU seconds, `used_memory` bytes and the structures' `MEMORY USAGE` bytes for
    `count` messages, from an empty server."""
    await redis.flushall()
    connection = await RespConnection.open(url, 5)
    await connection.execute(DEDUPE.load + OLD.load, 2)
    messages = entries(count)
    memory = int((await redis.info("memory"))["used_memory"])
    start = await cpu(redis)
    for first in range(0, count, FLUSH):
        calls = DESIGNS[design](messages[first : first + FLUSH], WINDOW, SPAN)
        await connection.execute(b"".join(calls), len(calls))
    spent = await cpu(redis) - start
    used = int((await redis.info("memory"))["used_memory"]) - memory
    connection.close()
    structures = 0
    for pattern in STRUCTURES[design]:
        async for key in redis.scan_iter(pattern):
            structures += await redis.memory_usage(key, samples=0) or 0
    return spent, used, structures


async def python_cost() -> tuple[dict[str, float], float, float]:
    """µs per message of building each design's calls; of `_route`; of noting a refusal."""
    batch = entries(FLUSH)
    runs = 200
    per = 1e6 / (runs * FLUSH)
    building = {
        name: min(timeit.repeat(_building(make, batch), number=runs)) * per
        for name, make in DESIGNS.items()
    }
    app = web.Application()
    app.router.add_post("/v1/track", _ok)
    request = make_mocked_request("POST", "/v1/track", app=app)
    match = await app.router.resolve(request)
    route = min(timeit.repeat(lambda: _route(match), number=100_000)) * 10
    noted = refusals.Refusals()

    def note() -> None:
        message_id, at = "0b4c7f8e-6b1d-4b43-9d25-3f9a4c2e7a10", "2026-12-02T02:41:00.000Z"
        noted.note(message_id, "Invalid message: at `$.userId`", "/v1/t", at)
        noted._pending.clear()

    refusal = min(timeit.repeat(note, number=100_000)) * 10
    return building, route, refusal


async def lookup_cost(url: str, redis: Redis, sources: int) -> tuple[float, float]:
    """Milliseconds of a lookup (`event_index.find`, the message found) over 16 partitions
    with `sources` sources in the table: wall time, and Redis's CPU."""
    await redis.flushall()
    streams = all_events_keys(16)
    writer = NodeWriter(url, 3600, 5)
    for stream in streams:  # the hashes' size hardly matters: each field is one lookup
        await writer.write([Entry(stream, b"{}", "web", str(uuid.uuid4())) for _ in range(5000)])
    await writer.write([Entry(streams[3], b"{}", "web", "needle", "/v1/track")])
    await writer.close()
    table = ["web", *(f"source-{n}" for n in range(sources - 1))]
    runs = 3
    start, began = await cpu(redis), time.perf_counter()
    for _ in range(runs):
        assert await event_index.find(redis, "needle", streams, 3600, table) is not None
    wall = (time.perf_counter() - began) / runs
    return wall * 1e3, (await cpu(redis) - start) / runs * 1e3


def _building(
    make: Callable[[Sequence[Entry], bytes, bytes], list[bytes]], batch: list[Entry]
) -> Callable[[], object]:
    return lambda: make(batch, WINDOW, SPAN)


async def _ok(request: web.Request) -> web.Response:
    return web.Response()


def _route(match: Any) -> str:
    resource = match.route.resource  # what `gateway.http.handlers._route` reads
    return "" if resource is None else str(resource.canonical)


async def main(count: int, rounds: int) -> None:
    async with embedded() as (server, redis):
        info = await redis.info("server")
        spent: dict[str, list[float]] = {name: [] for name in DESIGNS}
        used: dict[str, int] = {}
        structures: dict[str, int] = {}
        for _ in range(rounds):
            for name in DESIGNS:
                seconds, used[name], structures[name] = await write(server.url, redis, count, name)
                spent[name].append(seconds * 1e6 / count)
        lookups = {n: await lookup_cost(server.url, redis, n) for n in (1, 100, 1000, 10_000)}
    version = info.get("valkey_version") or info["redis_version"]
    print(f"server: {info.get('server_name', 'redis')} {version}; {count} messages a round")
    for name in ("old", "new"):
        extra = (used[name] - used["off"]) / count
        print(
            f"{name}: MEMORY USAGE of the structures {structures[name] / count:.1f} B/message "
            f"({structures[name] / count * 1e6 / 2**20:.0f} MiB per million in the window); "
            f"used_memory {extra:.1f} B/message more than dedupe off"
        )
    print(f"Redis CPU per message over {rounds} rounds (lowest / median):")
    for name in DESIGNS:
        print(f"  {name}: {min(spent[name]):.2f} / {statistics.median(spent[name]):.2f} µs")
    for name in ("old", "new"):
        pairs = [b - a for a, b in zip(spent["off"], spent[name], strict=True)]
        print(f"  {name} - off, median of a round's pair: {statistics.median(pairs):.2f} µs")
    pairs = [b - a for a, b in zip(spent["old"], spent["new"], strict=True)]
    print(f"  new - old, median of a round's pair: {statistics.median(pairs):.2f} µs")
    building, route, refusal = await python_cost()
    shown = ", ".join(f"{name} {building[name]:.3f}" for name in DESIGNS)
    print(
        f"Python per message, building the calls (µs): {shown}; reading the route: "
        f"{route:.3f} µs a request; noting a refusal: {refusal:.3f} µs"
    )
    print("A lookup over 16 partitions (wall / Redis CPU):")
    for sources, (wall, redis_cpu) in lookups.items():
        print(f"  {sources} sources in the table: {wall:.1f} / {redis_cpu:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000, 15))
