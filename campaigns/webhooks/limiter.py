"""The per-endpoint concurrency limit, shared by every worker process through Redis.

A counting semaphore of leases: a sorted set per endpoint whose members expire by score,
so a worker that dies mid-request frees its slot when the lease runs out instead of
holding it forever. Redis time is used, not each worker's clock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("campaigns.webhooks")

_ACQUIRE = """
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


class EndpointLimiter:
    def __init__(self, redis: aioredis.Redis, *, lease_s: float) -> None:
        self.redis = redis
        self.lease_ms = int(lease_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)

    @asynccontextmanager
    async def slot(self, endpoint_id: str, limit: int, *, wait_s: float):
        """Yield True with a slot held, or False if none freed up within `wait_s`.
        If Redis is unreachable the limit is not enforced (delivery matters more)."""
        key = f"webhooks:inflight:{endpoint_id}"
        token = uuid.uuid4().hex
        held, granted = False, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.01
        while True:
            try:
                held = bool(await self._acquire(keys=[key], args=[limit, self.lease_ms, token]))
            except RedisError as err:
                log.warning("concurrency limit not enforced, Redis unavailable: %r", err)
                granted = True
                break
            if held or loop.time() >= deadline:
                granted = held
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            yield granted
        finally:
            if held:
                try:
                    await self.redis.zrem(key, token)
                except RedisError:
                    pass  # the lease expires by itself
