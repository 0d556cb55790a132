"""Webhook tests' shared pieces: a retry policy that keeps failing tests short, recording a
platform event as the API does, and waiting for an endpoint's deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from campaigns.campaigns import repository as campaigns_repo
from tests.support.polling import eventually

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
                          within: float = 20) -> list[dict]:
    """A webhook's deliveries, once `count` of them (with `status`, if given) exist."""
    params = {"status": status} if status else {}

    async def listed() -> list[dict]:
        r = await api.get(f"{base}/deliveries", params=params)
        assert r.status_code == 200, r.text
        return r.json()["deliveries"]

    return await eventually(listed, f"{count} deliveries ({status or 'any status'}) of {base}",
                            until=lambda items: len(items) >= count, within=within)


async def subscribe(api: httpx.AsyncClient, campaign: dict | None, url: str, events: list[str], **extra) -> tuple[str, dict]:
    base = f"/api/campaigns/{campaign['id']}/webhooks" if campaign else "/api/webhooks"
    r = await api.post(base, json={"url": url, "eventTypes": events, **extra})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    return f"{base}/{hook['id']}", hook


async def detail(api: httpx.AsyncClient, base: str, delivery: dict) -> dict:
    r = await api.get(f"{base}/deliveries/{delivery['id']}")
    assert r.status_code == 200, r.text
    return r.json()["delivery"]
