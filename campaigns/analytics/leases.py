"""How many long responses (exports, SSE streams) one organization holds open at once,
counted in Redis so every API replica shares the count.

Slots with leases (`campaigns.redis_slots`), one set per organization and kind. A
response renews its lease while it runs; a process that dies stops renewing, and its leases
lapse within `lease_s`. If Redis is unreachable the limit is not enforced: the streams fail on their
own then, and an export must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from campaigns.errors import TooMany
from campaigns.redis_slots import Slots

log = logging.getLogger("campaigns.analytics")

RETRY_AFTER_S = 5


class Lease:
    """One held slot; `kept` renews it until the block ends, then frees it."""

    def __init__(self, leases: Leases, key: str | None, token: str) -> None:
        self._leases, self._key, self._token = leases, key, token

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        renewer = asyncio.create_task(self._renew()) if self._key else None
        try:
            yield
        finally:
            if renewer is not None:
                renewer.cancel()
            await self.release()

    async def _renew(self) -> None:
        assert self._key is not None
        while True:
            await asyncio.sleep(self._leases.slots.lease_s / 3)
            try:
                await self._leases.slots.renew(self._key, self._token)
            except RedisError as err:
                log.warning("could not renew a %s lease: %r", self._key.split(":")[1], err)

    async def release(self) -> None:
        if self._key is not None:
            key, self._key = self._key, None
            with contextlib.suppress(RedisError):
                await self._leases.slots.free(key, self._token)


class Leases:
    def __init__(self, redis: aioredis.Redis, *, lease_s: float) -> None:
        self.slots = Slots(redis, lease_s=lease_s)

    async def acquire(self, kind: str, organization_id: UUID, limit: int, *, what: str) -> Lease:
        """A slot of `kind` for the organization, or 429 naming `what` when it holds `limit`
        already. The lease lapses unless `Lease.kept` renews it (a response never sent)."""
        key = f"leases:{kind}:{organization_id}"
        token = uuid.uuid4().hex
        try:
            held = await self.slots.take(key, limit, token)
        except RedisError as err:
            log.warning("%s limit not enforced, Redis unavailable: %r", kind, err)
            return Lease(self, None, token)
        if not held:
            raise TooMany(
                f"this organization already has {limit} {what} open, the most it may; retry when one ends",
                code=f"too_many_{kind}",
                details={"limit": limit},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return Lease(self, key, token)
