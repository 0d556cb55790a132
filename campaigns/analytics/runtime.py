"""The analytics pieces one API process runs: the real-time counters, the campaign
directory the ingest path checks ownership against, the SSE hub and the refresher."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client

from campaigns.analytics.directory import CampaignDirectory
from campaigns.analytics.hub import RealtimeHub
from campaigns.analytics.leases import Leases
from campaigns.analytics.realtime import Realtime
from campaigns.analytics.refresher import Refresher
from campaigns.campaigns.cache import CampaignCache
from campaigns.settings import Settings


class AnalyticsRuntime:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        temporal: Client | None,
        cache: CampaignCache | None,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.realtime = Realtime(redis)
        self.directory = CampaignDirectory(pool)
        self.hub = RealtimeHub(self.realtime, settings)
        # Events older than this are refused (their partitions are dropped); None: kept for ever.
        days = settings.analytics_retention_days
        self.retention = timedelta(days=days) if days > 0 else None
        # Exports and SSE streams open per organization, across API replicas.
        self.leases = Leases(redis, lease_s=settings.stream_lease_s)
        self.refresher = Refresher(pool, self.realtime, temporal, cache, settings)

    async def start(self, *, should_exit: Callable[[], bool] | None = None) -> None:
        """`should_exit`: says when the server is stopping (the SSE streams end then)."""
        await self.hub.start(should_exit=should_exit)
        await self.refresher.start()

    async def stop(self) -> None:
        await self.refresher.stop()
        await self.hub.stop()
