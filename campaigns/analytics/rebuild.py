"""Rebuilding what is derived from the event record: rollups, the performance summary, goal
progress and the real-time counters (`campaigns rebuild-analytics`).

It takes the refresher's lock and a SHARE lock on the outbox: batches being ingested wait
(their requests take longer, nothing is lost), no refresher runs, and no batch can be
counted both by the rebuild and by an outbox row. Inside that:

1. the outbox is drained the normal way, so every recorded event has had its platform
   events (`lead.created`…) and no row is left to apply on top of the rebuilt numbers;
2. the rollups of the chosen campaigns are recomputed from `analytics_events` (the same
   rules as the ingest path, generated from one catalogue), and the summary and goal
   progress from the rollups;
3. their Redis counters are dropped and rewritten from the rollups (last 50 hours) and
   the record (calls of the last 3 hours).

`redis_only` skips step 2: what is needed after Redis lost its data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from campaigns.analytics import realtime as rt
from campaigns.analytics import repository as repo
from campaigns.analytics.apply import consume, evaluate
from campaigns.analytics.realtime import Realtime
from campaigns.campaigns.cache import CampaignCache
from campaigns.domain import metrics, periods

log = logging.getLogger("campaigns.analytics.rebuild")


@dataclass
class Report:
    campaigns: int | None  # None: all
    drained_batches: int
    rollup_rows: int | None
    redis_buckets: int
    calls: int


async def rebuild(
    pool: asyncpg.Pool,
    realtime: Realtime,
    cache: CampaignCache | None,
    *,
    campaign_ids: list[UUID] | None = None,
    redis_only: bool = False,
) -> Report:
    """`cache`: told of every campaign whose figures were rebuilt (None: only with `redis_only`)."""
    now = datetime.now(UTC)
    drained = 0
    rollup_rows = None
    stale: set[str] = set()  # campaigns whose waiting batches are too old to apply by marker
    async with pool.acquire() as conn, conn.transaction():
        await repo.lock_derived_for_rebuild(conn)
        while True:
            outcome = await consume(conn, realtime, limit=500, now=now, strict=True)
            if not outcome.batches:
                break
            drained += outcome.batches
            stale |= outcome.rebuild
        if not redis_only:
            rollup_rows = await repo.rebuild_rollups(conn, campaign_ids)
            await repo.rebuild_performance(conn, campaign_ids)
            await evaluate(conn, campaign_ids, now=now)
        counted = None if campaign_ids is None else sorted(set(campaign_ids) | {UUID(c) for c in stale})
        buckets = await repo.recent_buckets(conn, counted, now - timedelta(seconds=rt.BUCKET_TTL))
        calls = await repo.recent_calls(conn, counted, now - timedelta(seconds=rt.CALL_MEMORY))
        ids = [str(c) for c in counted] if counted is not None else None
        await realtime.clear(ids)
        await realtime.load(
            [
                (str(r["campaign_id"]), periods.bucket_of(r["bucket"]), {n: r[n] for n in metrics.NAMES})
                for r in buckets
            ],
            [
                (
                    str(r["campaign_id"]),
                    r["call_id"],
                    r["started"].timestamp() if r["started"] else None,
                    r["ended"].timestamp() if r["ended"] else None,
                )
                for r in calls
            ],
            ids if ids is not None else sorted({str(r["campaign_id"]) for r in buckets}),
        )
        await realtime.set_generation()
        touched = campaign_ids if campaign_ids is not None else await repo.summarised_campaigns(conn)
    if not redis_only and touched and cache is not None:
        # The summaries and goal progress changed: no API process may serve the old ones.
        for start in range(0, len(touched), 1000):
            await cache.invalidate(*touched[start : start + 1000])
    report = Report(
        campaigns=len(campaign_ids) if campaign_ids is not None else None,
        drained_batches=drained,
        rollup_rows=rollup_rows,
        redis_buckets=len(buckets),
        calls=len(calls),
    )
    log.info("analytics rebuilt: %s", report)
    return report
