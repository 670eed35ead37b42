"""The dedupe script: adding entries to their streams at most once per `messageId` and source.

Clients retry with the same `messageId` when an answer is lost, and the spool may replay
an entry Redis took after all (a timeout is not a refusal). This Lua script, run by
`EVALSHA` in the same pipeline as everything else (no extra round trip), checks and adds a
chunk of entries as one atomic step; `calls` makes its calls for a flush, and
`gateway.store.node_writer` sends them.

The messageIds seen are the fields `<source>:<messageId>` of one hash per partition and
time bucket, `gateway:seen:{n}:<bucket>`, a bucket being a quarter of the window by Redis's
clock (`TIME`); a field's value is where the message went, `<entry id> <route>` (the route
`-` when unknown), which is how the admin API finds a message's stream entry
(`gateway.store.event_index`). A chunk is checked with one `HMGET` per bucket that overlaps
the window and marked with one `HSET`: two writes per chunk instead of one `SET ... EX` per
message, which cost Redis as much as the `XADD` itself, and one structure where there were
a set and an index beside it (see docs/durability.md). Each bucket expires a window after
it ends, so an id is remembered for at least the window and at most a quarter more. The
keys share the stream's hash tag: on a Redis Cluster, one slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.constants import seen_prefix
from gateway.store.entry import Entry
from gateway.store.lua import Script
from gateway.store.resp import command

SCRIPT = """
-- KEYS[1]: the stream; KEYS[2]: the prefix of its seen hashes (both in one hash tag)
-- ARGV[1]: the window in seconds (0: no dedupe); ARGV[2]: the bucket's length in seconds
-- ARGV[4i - 1] .. ARGV[4i + 2]: data, source, field and route of entry i (from 1)
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
local fields = {}
for i = 1, count do fields[i] = ARGV[4 * i + 1] end
local seen = {}
for bucket = math.floor((now - window) / span), current do
  local found = redis.call('HMGET', KEYS[2] .. bucket, unpack(fields))
  for i = 1, count do
    if found[i] then seen[fields[i]] = true end
  end
end
local marks = {}
local failed = nil
for i = 1, count do
  local field = fields[i]
  if not seen[field] then
    seen[field] = true  -- the same id twice in one chunk
    -- XADD before marking: if it fails (e.g. out of memory) no field claims an entry
    -- that is not in the stream; the ones added before it are still marked
    local id = redis.pcall('XADD', KEYS[1], '*', 'data', ARGV[4 * i - 1], 'source', ARGV[4 * i])
    if type(id) == 'table' and id.err then
      failed = id
      break
    end
    marks[#marks + 1] = field
    marks[#marks + 1] = id .. ' ' .. ARGV[4 * i + 2]
  end
end
if #marks > 0 then
  local key = KEYS[2] .. current
  redis.call('HSET', key, unpack(marks))
  redis.call('EXPIREAT', key, (current + 1) * span + window)
end
if failed then return failed end
return #marks / 2
"""
DEDUPE = Script(SCRIPT)

CHUNK = 256
"""Entries per script call: a call blocks Redis while it runs, so keep each one short."""

BUCKETS_PER_WINDOW = 4
"""A window is checked in this many buckets (plus the current one's remainder)."""


def bucket_seconds(window: int) -> int:
    """The length of a dedupe bucket for `window` (at least a second)."""
    return max(1, -(-window // BUCKETS_PER_WINDOW))


def calls(entries: Sequence[Entry], window: bytes, span: bytes) -> list[bytes]:
    """The script's calls (RESP `EVALSHA`s) that add `entries`, in order per stream.

    `window` and `span` are the window and `bucket_seconds` of it, as decimal bytes. An entry
    without a messageId (a rejected event's) is added without dedupe, keeping no state.
    """
    groups: dict[tuple[str, bool], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.stream, entry.message_id != ""), []).append(entry)
    out: list[bytes] = []
    for (stream, deduped), group in groups.items():
        keys = (stream.encode(), seen_prefix(stream).encode())
        for start in range(0, len(group), CHUNK):
            args = [window if deduped else b"0", span]
            for entry in group[start : start + CHUNK]:
                source = entry.source.encode()
                field = b"%s:%s" % (source, entry.message_id.encode())
                args += (entry.data, source, field, entry.route.encode() or b"-")
            out.append(command(b"EVALSHA", DEDUPE.sha, b"2", *keys, *args))
    return out
