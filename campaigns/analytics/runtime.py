"""The analytics pieces one API process runs: the real-time counters, the campaign
directory the ingest path checks ownership against, the SSE hub and the refresher."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client

from campaigns.analytics import repository as repo
from campaigns.analytics.hub import RealtimeHub
from campaigns.analytics.realtime import Realtime
from campaigns.analytics.refresher import Refresher


class CampaignDirectory:
    """Which organization each campaign belongs to (by the campaign id's canonical text),
    cached in-process: a campaign never changes organization, so the cache can never be
    wrong, only incomplete."""

    def __init__(self, pool: asyncpg.Pool, *, size: int = 200_000) -> None:
        self.pool = pool
        self.size = size
        self._known: OrderedDict[str, UUID] = OrderedDict()

    async def organizations(self, campaign_ids: Iterable[str]) -> dict[str, UUID]:
        out: dict[str, UUID] = {}
        missing = []
        for cid in campaign_ids:
            org = self._known.get(cid)
            if org is None:
                missing.append(cid)
            else:
                out[cid] = org
        if missing:
            found = await repo.campaign_organizations(self.pool, [UUID(c) for c in missing])
            for cid, org in found.items():
                self._known[str(cid)] = org
                out[str(cid)] = org
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        return out


class AnalyticsRuntime:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        temporal: Client | None,
        *,
        refresh_interval: float = 1.0,
        sweep_every: float = 30.0,
    ) -> None:
        self.pool = pool
        self.realtime = Realtime(redis)
        self.directory = CampaignDirectory(pool)
        self.hub = RealtimeHub(redis)
        self.refresher = Refresher(pool, self.realtime, temporal, interval=refresh_interval, sweep_every=sweep_every)

    async def start(self) -> None:
        await self.hub.start()
        await self.refresher.start()

    async def stop(self) -> None:
        await self.refresher.stop()
        await self.hub.stop()
