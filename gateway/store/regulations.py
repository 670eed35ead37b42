"""Where regulations live in Redis (keys in `gateway.constants.REGULATIONS_PREFIX`, one
slot): the admin API writes them, every gateway process polls the version and reads the
suppressed subjects, workers claim and report the steps."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from gateway.constants import REGULATIONS_PREFIX as P
from gateway.store.redis_client import AnyRedis
from gateway.store.regulation_records import Capabilities, Regulation, Step

INDEX = f"{P}:index"
PENDING = f"{P}:pending"
SUPPRESSED = f"{P}:suppressed"
NO_TRACK = f"{P}:no_track"
VERSION = f"{P}:version"
DESTINATIONS = f"{P}:destinations"

_LEASE = """
-- KEYS[1]: the lease. ARGV: owner, milliseconds. Taken when free or already the owner's
-- (a worker restarted under its name resumes at once rather than wait for it to expire).
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_encode = msgspec.json.Encoder().encode
_regulation = msgspec.json.Decoder(Regulation)
_step = msgspec.json.Decoder(Step)
_capabilities = msgspec.json.Decoder(Capabilities)


def record_key(regulation_id: str) -> str:
    """The hash of one regulation: `record` and `step:<name>` fields."""
    return f"{P}:r:{regulation_id}"


def access_key(regulation_id: str) -> str:
    """The hash of an ACCESS regulation's files: file name -> NDJSON."""
    return f"{P}:access:{regulation_id}"


def _lease_key(regulation_id: str, step: str) -> str:
    return f"{P}:lease:{regulation_id}:{step}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RegulationStore:
    """Reads and changes the regulations."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis

    async def create(
        self,
        regulation: Regulation,
        steps: dict[str, Step],
        add: tuple[str, Iterable[str]] | None = None,
        remove: tuple[str, Iterable[str]] | None = None,
        pending: bool = False,
    ) -> None:
        """Store `regulation` and its steps; add and remove subjects (set key, members) in
        the same transaction, counting the change in the version."""
        fields = {"record": _encode(regulation)}
        fields |= {f"step:{name}": _encode(step) for name, step in steps.items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(regulation.id), mapping=fields)  # type: ignore[arg-type]
            pipe.zadd(INDEX, {regulation.id: regulation.createdAt})
            if pending:
                pipe.zadd(PENDING, {regulation.id: regulation.createdAt})
            if add is not None:
                pipe.sadd(add[0], *add[1])
            if remove is not None:
                pipe.srem(remove[0], *remove[1])
            if add is not None or remove is not None:
                pipe.incr(VERSION)
            await pipe.execute()

    async def version(self) -> int:
        """The count of changes to the subjects (0 before the first)."""
        return int(await self.redis.get(VERSION) or 0)

    async def subjects(self) -> tuple[int, set[str], set[str]]:
        """The version, the suppressed and the no-track subjects. The version is read
        first: a change made between the reads is read again at the next poll."""
        version = await self.version()
        suppressed = await self.redis.smembers(SUPPRESSED)
        no_track = await self.redis.smembers(NO_TRACK)
        return version, {_text(m) for m in suppressed}, {_text(m) for m in no_track}

    async def which(self, key: str, members: list[str]) -> list[bool]:
        """Whether each of `members` is in the set `key`."""
        if not members:
            return []
        return [bool(f) for f in await self.redis.smismember(key, members)]

    async def get(self, regulation_id: str) -> tuple[Regulation, dict[str, Step]] | None:
        """A regulation and its steps, by name; None when there is none."""
        raw = await self.redis.hgetall(record_key(regulation_id))
        record = raw.get(b"record") or raw.get("record")
        if record is None:
            return None
        steps = {
            _text(name).removeprefix("step:"): _step.decode(value)
            for name, value in raw.items()
            if _text(name).startswith("step:")
        }
        return _regulation.decode(record), steps

    async def ids(self, start: int, count: int) -> tuple[list[str], int]:
        """`count` ids from `start`, newest first, and how many there are."""
        found = await self.redis.zrevrange(INDEX, start, start + count - 1)
        return [_text(i) for i in found], int(await self.redis.zcard(INDEX))

    async def pending(self) -> list[str]:
        """The ids of regulations with steps not over yet, oldest first."""
        found = await self.redis.zrange(PENDING, 0, -1)
        return [_text(i) for i in found]

    async def set_step(self, regulation_id: str, name: str, step: Step) -> None:
        """Record where step `name` is."""
        await self.redis.hset(record_key(regulation_id), f"step:{name}", _encode(step))

    async def done(self, regulation_id: str, access_ttl: float = 0.0) -> None:
        """Every step is over: no worker looks at it again; an access's files expire."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PENDING, regulation_id)
            if access_ttl > 0:
                pipe.pexpire(access_key(regulation_id), int(access_ttl * 1000))
            await pipe.execute()

    async def lease(self, regulation_id: str, step: str, owner: str, seconds: float) -> bool:
        """Take (or extend) the lease on a step; False when another worker holds it."""
        key = _lease_key(regulation_id, step)
        return bool(await self.redis.eval(_LEASE, 1, key, owner, int(seconds * 1000)))

    async def release(self, regulation_id: str, step: str, owner: str) -> None:
        """Give the lease up (only if still held by `owner`)."""
        await self.redis.eval(_RELEASE, 1, _lease_key(regulation_id, step), owner)

    async def put_access(self, regulation_id: str, name: str, data: bytes) -> None:
        """Keep one file of an access regulation (until `done` sets its expiry)."""
        await self.redis.hset(access_key(regulation_id), name, data)

    async def access_files(self, regulation_id: str) -> dict[str, bytes] | None:
        """An access regulation's files; None once they expired (or were never made)."""
        raw = await self.redis.hgetall(access_key(regulation_id))
        return {_text(k): _bytes(v) for k, v in raw.items()} if raw else None

    async def register(self, capabilities: dict[str, Capabilities]) -> None:
        """Tell the API what a worker's destinations can do, by name."""
        if capabilities:
            mapping = {name: _encode(c) for name, c in capabilities.items()}
            await self.redis.hset(DESTINATIONS, mapping=mapping)  # type: ignore[arg-type]

    async def destinations(self) -> dict[str, Capabilities]:
        """Every destination a worker registered, by name."""
        raw = await self.redis.hgetall(DESTINATIONS)
        return {_text(k): _capabilities.decode(v) for k, v in raw.items()}
