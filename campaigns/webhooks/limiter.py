"""The per-endpoint concurrency limit, shared by every worker process through Redis.

Slots with leases (`campaigns.redis_slots`), one set per endpoint: a worker that dies
mid-request frees its slot when the lease runs out instead of holding it forever.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from campaigns.redis_slots import Slots

log = logging.getLogger("campaigns.webhooks")


class EndpointLimiter:
    def __init__(self, redis: aioredis.Redis, *, lease_s: float) -> None:
        self.slots = Slots(redis, lease_s=lease_s)

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
                held = await self.slots.take(key, limit, token)
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
                    await self.slots.free(key, token)
                except RedisError:
                    pass  # the lease expires by itself
