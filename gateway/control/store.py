"""Where the admin API keeps sources and keys: one Redis hash, and a version counter that
every change increments in the same script, so that a process polling the counter alone
knows when to read the hash again (`gateway.control.live`).

Both keys share a hash tag, so that on a Redis Cluster they live in one slot.
"""

from __future__ import annotations

import msgspec

from gateway.constants import CONTROL_SOURCES, CONTROL_VERSION
from gateway.control.records import KeyRecord, PlanRecord, Records, SourceRecord
from gateway.store.redis_client import AnyRedis

_WRITE = """
-- KEYS[1]: the hash, KEYS[2]: the version. ARGV[1]: 'new' (field, value: set only if
-- absent, else 0), 'set' (field, value, ...) or 'del' (field, ...). Returns the version.
if ARGV[1] == 'new' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
elseif ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
else
  redis.call('HDEL', KEYS[1], unpack(ARGV, 2))
end
return redis.call('INCR', KEYS[2])
"""

_encode = msgspec.json.Encoder().encode
_source = msgspec.json.Decoder(SourceRecord)
_key = msgspec.json.Decoder(KeyRecord)
_plan = msgspec.json.Decoder(PlanRecord)

Record = SourceRecord | KeyRecord | PlanRecord


def field(record: Record) -> str:
    """The hash field of `record`."""
    if isinstance(record, PlanRecord):
        return "plan:" + record.source
    return ("source:" if isinstance(record, SourceRecord) else "key:") + record.id


class Store:
    """Reads and changes the admin API's records."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis

    async def version(self) -> int:
        """The change counter (0 before the first change)."""
        return int(await self.redis.get(CONTROL_VERSION) or 0)

    async def read(self) -> tuple[int, Records]:
        """The version and every record. The version is read first: a change made between
        the two reads is read again at the next poll."""
        version = await self.version()
        raw = await self.redis.hgetall(CONTROL_SOURCES)
        sources: dict[str, SourceRecord] = {}
        keys: dict[str, KeyRecord] = {}
        plans: dict[str, PlanRecord] = {}
        for name, value in raw.items():
            text = name.decode() if isinstance(name, bytes) else name
            kind, _, ident = text.partition(":")
            if kind == "source":
                sources[ident] = _source.decode(value)
            elif kind == "key":
                keys[ident] = _key.decode(value)
            elif kind == "plan":
                plans[ident] = _plan.decode(value)
        return version, Records(sources, keys, plans)

    async def create(self, record: Record) -> bool:
        """Add `record`; False when one with its id exists."""
        return bool(await self._write("new", field(record), _encode(record)))

    async def put(self, *records: Record) -> None:
        """Add or replace `records`, in one step."""
        args: list[str | bytes] = []
        for record in records:
            args += [field(record), _encode(record)]
        await self._write("set", *args)

    async def delete(self, *records: Record) -> None:
        """Remove `records`, in one step."""
        await self._write("del", *(field(r) for r in records))

    async def _write(self, op: str, *args: str | bytes) -> int:
        result = await self.redis.eval(_WRITE, 2, CONTROL_SOURCES, CONTROL_VERSION, op, *args)
        return int(result)
