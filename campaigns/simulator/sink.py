"""Where the simulator's events go: the analytics ingestion that serves `POST /api/events`,
called directly (the simulator stands in for the pipeline of every organization)."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import redis.asyncio as aioredis

from campaigns import redis_client
from campaigns.analytics import ingest as events
from campaigns.analytics.directory import CampaignDirectory
from campaigns.analytics.realtime import Realtime
from campaigns.domain.analytics_events import MAX_BATCH
from campaigns.settings import Settings

log = logging.getLogger("campaigns.simulator")


class EventSink:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
        self.pool = pool
        self.redis = redis
        self.realtime = Realtime(redis)
        self.directory = CampaignDirectory(pool)

    @classmethod
    async def open(cls, pool: asyncpg.Pool, settings: Settings) -> EventSink:
        return cls(pool, redis_client.connect(settings, decode_responses=True))

    async def send(self, due: list[tuple[UUID, dict[str, Any]]]) -> int:
        """Record the events, batched per organization; the number rejected."""
        by_org: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for organization_id, event in due:
            by_org[organization_id].append(event)
        rejected = 0
        for organization_id, batch in by_org.items():
            for start in range(0, len(batch), MAX_BATCH):
                body = orjson.dumps({"events": batch[start : start + MAX_BATCH]})
                result = await events.ingest(
                    pool=self.pool,
                    realtime=self.realtime,
                    directory=self.directory,
                    organization_id=organization_id,
                    body=body,
                )
                if result.rejected:
                    rejected += len(result.rejected)
                    first = result.rejected[0]
                    log.warning(
                        "%d simulated events rejected (first: %s %s)", len(result.rejected), first.field, first.reason
                    )
        return rejected

    async def close(self) -> None:
        await self.redis.aclose()
