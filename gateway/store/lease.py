"""A lease in Redis: which one of many processes does a job now.

`SET key owner NX PX ttl` takes it when free; the holder renews it (`PEXPIRE`, only while
the key still names it) before it expires. A holder that dies stops renewing, and another
process takes the lease once it expires. Each step is one script on one key, so it works
on a Redis Cluster too.
"""

from __future__ import annotations

from gateway.store.redis_client import AnyRedis

_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """The lease `key`, held by `owner` for `ttl` seconds at a time."""

    def __init__(self, redis: AnyRedis, key: str, owner: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("a lease lasts more than 0 seconds")
        self._redis = redis
        self.key = key
        self.owner = owner
        self._ttl_ms = str(max(1, int(ttl * 1000)))

    async def hold(self) -> bool:
        """Take the lease, or renew it if it is ours; True while it is ours."""
        reply = await self._redis.eval(_HOLD, 1, self.key, self.owner, self._ttl_ms)
        return bool(reply)

    async def release(self) -> None:
        """Give the lease up if it is ours, so another process need not wait for it to expire."""
        await self._redis.eval(_RELEASE, 1, self.key, self.owner)

    async def holder(self) -> str | None:
        """Who holds the lease now."""
        value = await self._redis.get(self.key)
        return None if value is None else value.decode() if isinstance(value, bytes) else value
