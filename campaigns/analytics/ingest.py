"""Ingesting a batch of analytics events.

1. Validate every event on its own (domain.events); bad ones are rejected with their index.
2. Settle duplicates inside the batch (the first occurrence of an id wins) and refuse events
   for campaigns outside the caller's organization (as "no such campaign": never say whose).
3. In one transaction: append the events unless their id is recorded already (the unique
   index decides, also between concurrent batches), and write the batch's `Delta` — what
   it adds to every derived number — to the outbox.
4. After the commit, apply the delta to the real-time counters (Redis, once per batch) so
   dashboards move before the response returns. If Redis is down the events are still
   recorded: the refresher applies the delta when Redis is back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import redis.exceptions
from prometheus_client import Counter

from campaigns.analytics import repository as repo
from campaigns.analytics.delta import build
from campaigns.analytics.directory import CampaignDirectory
from campaigns.analytics.realtime import Realtime
from campaigns.domain.analytics_events import BatchError, Rejection, parse_batch
from campaigns.metrics import REGISTRY
from campaigns.redis_client import RedisUnavailable

log = logging.getLogger("campaigns.events")

EVENTS = Counter("analytics_events_total", "Events received, by what became of them", ["result"], registry=REGISTRY)

UNKNOWN_CAMPAIGN = "no such campaign in your organization"


@dataclass
class Ingested:
    accepted: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


async def ingest(
    *,
    pool: asyncpg.Pool,
    realtime: Realtime,
    directory: CampaignDirectory,
    organization_id: UUID,
    body: bytes,
    now: datetime | None = None,
    only_campaign: UUID | None = None,
    only_types: Collection[str] | None = None,
    retention: timedelta | None = None,
) -> Ingested:
    """Record a batch. `only_campaign` / `only_types` narrow what the caller may send (a
    publishable widget key, say); events older than `retention` are refused. Raises
    BatchError when the batch as a whole is unusable."""
    now = now or datetime.now(UTC)
    parsed = parse_batch(body, now=now, retention=retention)
    result = Ingested(rejected=parsed.rejected)

    first_index: dict[str, int] = {}
    candidates = []
    for item in parsed.events:
        index, event, _ = item
        if event["id"] in first_index:
            result.duplicates.append((index, event["id"]))
            continue
        if only_types is not None and event["type"] not in only_types:
            result.rejected.append(Rejection(index, event["id"], "type", "this key may not send this type of event"))
            continue
        first_index[event["id"]] = index
        candidates.append(item)

    owners = await directory.organizations({e["campaignId"] for _, e, _ in candidates})
    allowed = {c for c, org in owners.items() if org == organization_id}
    if only_campaign is not None:
        allowed &= {str(only_campaign)}
    events = []
    for item in candidates:
        if item[1]["campaignId"] in allowed:
            events.append(item)
        else:
            result.rejected.append(Rejection(item[0], item[1]["id"], "campaignId", UNKNOWN_CAMPAIGN))

    if events:
        records = [
            (
                organization_id,
                e["id"],
                e["campaignId"],
                e["type"],
                e["occurredAt"],
                e.get("variantId"),
                e.get("subjectId"),
                e.get("callId"),
                e["data"],
            )
            for _, e, _ in events
        ]
        batch_id = uuid.uuid4()
        delta = None
        async with pool.acquire() as conn, conn.transaction():
            stored = set(await repo.store_events(conn, records))
            if stored:
                accepted = events if len(stored) == len(events) else [x for x in events if x[1]["id"] in stored]
                delta = build(batch_id, organization_id, accepted)
                await repo.add_outbox(conn, batch_id=batch_id, payload=delta.encode())
        result.accepted = len(stored)
        if len(stored) < len(events):
            result.duplicates += [(i, e["id"]) for i, e, _ in events if e["id"] not in stored]
        if delta is not None:
            try:
                await realtime.apply(delta)
            except RedisUnavailable:
                pass  # known to be down (and logged once): the refresher applies it when it is back
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("real-time counters not updated for batch %s (%r); the refresher will", batch_id, exc)

    result.duplicates.sort()
    result.rejected.sort(key=lambda r: r.index)
    EVENTS.labels("accepted").inc(result.accepted)
    EVENTS.labels("duplicate").inc(len(result.duplicates))
    EVENTS.labels("rejected").inc(len(result.rejected))
    return result


__all__ = ["BatchError", "Ingested", "ingest"]
