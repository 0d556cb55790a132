"""Webhook tests' shared pieces: a retry policy that keeps failing tests short, recording a
platform event as the API does, waiting for an endpoint's deliveries, and a dispatcher a
test can pause."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import httpx

from campaigns.campaigns import repository as campaigns_repo
from campaigns.settings import Settings
from campaigns.webhooks.dispatcher import Dispatcher
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


class DispatcherRunner:
    """A dispatcher running in the test process. `stop` leaves it as a worker's shutdown
    does (attempts in flight finish); `start` runs a fresh one, as a restarted worker would."""

    def __init__(self, make: Callable[[], Dispatcher]) -> None:
        self.make = make
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.make().run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None


def worker_env(settings: Settings, queue: str, **extra: str) -> dict[str, str]:
    """The environment of a `campaigns worker` process on the session's services, polling
    `queue` (its own, so it takes none of the session's workflow tasks)."""
    return {
        "DATABASE_URL": settings.database_dsn, "REDIS_URL": settings.redis_dsn,
        "TEMPORAL_ADDRESS": settings.temporal_target, "TEMPORAL_TASK_QUEUE": queue,
        "DATA_DIR": str(settings.data_dir), "WEBHOOK_ALLOWED_NETWORKS": settings.webhook_allowed_networks,
        "WEBHOOK_CONNECT_TIMEOUT_S": str(settings.webhook_connect_timeout_s),
        "WEBHOOK_TIMEOUT_S": str(settings.webhook_timeout_s),
        "DISPATCH_CLAIM_GRACE_S": str(settings.dispatch_claim_grace_s),
        "LOG_LEVEL": "warning", **extra,
    }
