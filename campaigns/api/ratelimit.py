"""Per-API-key request limits, counted in Redis so every API replica shares them.

A fixed one-second window per key: cheap (one pipelined INCR + EXPIRE) and good enough to
stop a runaway client without punishing bursts inside the limit. Over the limit: 429 with
`Retry-After`. If Redis is unreachable the request is let through: the limiter protects
the platform, it must not take it down.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
import redis.exceptions

from campaigns.errors import AppError

log = logging.getLogger("campaigns.api")


class RateLimited(AppError):
    status, code = 429, "rate_limited"


async def check(client: aioredis.Redis, key_id: str, limit_per_second: int) -> None:
    if limit_per_second <= 0:
        return
    window = int(time.time())
    name = f"ratelimit:{key_id}:{window}"
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, 2)
            count, _ = await pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.warning("rate limiter unavailable, letting the request through: %r", exc)
        return
    if count > limit_per_second:
        raise RateLimited(
            f"more than {limit_per_second} requests a second with this API key; retry in a second",
            headers={"Retry-After": "1"},
        )
