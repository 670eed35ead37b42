"""The dedupe script: adding entries to their streams at most once per `messageId` and source.

Clients retry with the same `messageId` when an answer is lost, and the spool may replay
an entry Redis took after all (a timeout is not a refusal). This Lua script, run by
`EVALSHA` in the same pipeline as everything else (no extra round trip), checks and adds a
chunk of entries as one atomic step; `calls` makes its calls for a flush, and
`gateway.store.node_writer` sends them.

The messageIds seen are members `<source>:<messageId>` of one set per partition and time
bucket, `gateway:dedupe:{n}:<bucket>`, a bucket being a quarter of the window by Redis's
clock (`TIME`). A chunk is checked with one `SMISMEMBER` per bucket that overlaps the window
and marked with one `SADD`: two writes per chunk instead of one `SET ... EX` per message,
which cost Redis as much as the `XADD` itself (see docs/durability.md). Each bucket expires
a window after it ends, so an id is remembered for at least the window and at most
a quarter more. The keys share the stream's hash tag: on a Redis Cluster, one slot.

The same call writes the messageId index (`gateway.store.event_index`): for each entry
added, a field `<messageId>` -> `<entry id> <route> <source>` of one hash per partition and
bucket, `gateway:where:{n}:<bucket>`, with one `HSET` per chunk and the sets' expiry. It is
how the admin API finds a message's stream entry without a round trip on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.constants import dedupe_prefix, event_index_prefix
from gateway.store.entry import Entry
from gateway.store.lua import Script
from gateway.store.resp import command

SCRIPT = """
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
DEDUPE = Script(SCRIPT)

CHUNK = 256
"""Entries per script call: a call blocks Redis while it runs, so keep each one short."""

BUCKETS_PER_WINDOW = 4
"""A window is checked in this many buckets (plus the current one's remainder)."""


def bucket_seconds(window: int) -> int:
    """The length of a dedupe bucket for `window` (at least a second)."""
    return max(1, -(-window // BUCKETS_PER_WINDOW))


def calls(entries: Sequence[Entry], window: bytes, span: bytes, index: bool = True) -> list[bytes]:
    """The script's calls (RESP `EVALSHA`s) that add `entries`, in order per stream.

    `window` and `span` are the window and `bucket_seconds` of it, as decimal bytes. An entry
    without a messageId (a rejected event's) is added without dedupe, keeping no state.
    `index` False leaves the messageId index out (the benchmark's baseline).
    """
    groups: dict[tuple[str, bool], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.stream, entry.message_id != ""), []).append(entry)
    out: list[bytes] = []
    for (stream, deduped), group in groups.items():
        keys: tuple[bytes, ...] = (stream.encode(), dedupe_prefix(stream).encode())
        if deduped and index:
            keys += (event_index_prefix(stream).encode(),)
        count = b"%d" % len(keys)
        for start in range(0, len(group), CHUNK):
            args = [window if deduped else b"0", span]
            for entry in group[start : start + CHUNK]:
                source = entry.source.encode()
                member = b"%s:%s" % (source, entry.message_id.encode())
                args += (entry.data, source, member, entry.route.encode() or b"-")
            out.append(command(b"EVALSHA", DEDUPE.sha, count, *keys, *args))
    return out
