"""A counting semaphore in Redis whose slots are leases, shared by every process.

One sorted set per resource; each member is a holder's token scored by when its lease ends
(Redis time, not each process's clock). A holder that dies stops renewing and its slot frees
itself when the lease runs out, instead of being held forever. Used for the per-endpoint
webhook concurrency and the per-organization count of long responses.
"""

from __future__ import annotations

import redis.asyncio as aioredis

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


class Slots:
    """Take, renew and free slots of at most `limit` holders per key (RedisError passes up:
    each caller decides what a Redis outage means for its limit)."""

    def __init__(self, redis: aioredis.Redis, *, lease_s: float) -> None:
        self.redis = redis
        self.lease_s = lease_s
        self._lease_ms = int(lease_s * 1000)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    async def take(self, key: str, limit: int, token: str) -> bool:
        return bool(await self._take(keys=[key], args=[limit, self._lease_ms, token]))

    async def renew(self, key: str, token: str) -> None:
        """Extend a held slot's lease (a lapsed one is not taken again: `XX`)."""
        await self._renew(keys=[key], args=[self._lease_ms, token])

    async def free(self, key: str, token: str) -> None:
        await self.redis.zrem(key, token)
