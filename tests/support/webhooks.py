"""Webhook tests' shared pieces: a retry policy that keeps failing tests short, recording a
platform event as the API does, and waiting for an endpoint's deliveries."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from campaigns.campaigns import repository as campaigns_repo

# Retries in a second or less, so a test that makes a receiver fail stays short.
FAST_RETRY = {"maxAttempts": 4, "initialIntervalSeconds": 0.2, "backoffCoefficient": 1.5, "maxIntervalSeconds": 1}


async def record(pool: asyncpg.Pool, campaign: dict, type_: str, data: dict | None = None) -> str:
    """Record an event the way the API and ingestion do, outside any workflow."""
    event_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await campaigns_repo.record_platform_event(
            conn, event_id=event_id, organization_id=uuid.UUID(campaign["organizationId"]),
            campaign_id=uuid.UUID(campaign["id"]), type_=type_, data=data or {}, occurred_at=datetime.now(UTC),
        )
    return str(event_id)


async def wait_deliveries(api: httpx.AsyncClient, base: str, *, count: int, status: str | None = None,
                          timeout: float = 20) -> list[dict]:
    """Poll a webhook's deliveries until `count` of them (with `status`, if given) exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        params = {"status": status} if status else {}
        r = await api.get(f"{base}/deliveries", params=params)
        assert r.status_code == 200, r.text
        items = r.json()["deliveries"]
        if len(items) >= count:
            return items
        if loop.time() > deadline:
            raise AssertionError(f"only {len(items)} deliveries ({status or 'any'}) after {timeout}s: {items}")
        await asyncio.sleep(0.1)
