"""The Temporal worker: connects, registers the workflows and activities, and runs.

`campaigns worker` starts it; any number may run side by side on one task queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Sequence

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from campaigns import db
from campaigns.activities.abtest import ABTestActivities
from campaigns.activities.store import StoreActivities
from campaigns.settings import Settings, get_settings
from campaigns.temporal import connect
from campaigns.workflows.abtest import ABTestWorkflow
from campaigns.workflows.campaign import CampaignWorkflow

log = logging.getLogger("campaigns.worker")

WORKFLOWS: Sequence[type] = (CampaignWorkflow, ABTestWorkflow)


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, except that workflows may build ZoneInfo objects: campaigns
    live in their own timezones, and the tz data is fixed for a given tzdata release."""
    default = SandboxRestrictions.default
    return SandboxedWorkflowRunner(
        restrictions=dataclasses.replace(
            default,
            invalid_module_members=default.invalid_module_members.with_child_unrestricted("zoneinfo", "ZoneInfo"),
        )
    )


def activities(pool: asyncpg.Pool) -> list:
    return [*StoreActivities(pool).all()]


def build_worker(client: Client, pool: asyncpg.Pool, task_queue: str, **options) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            *activities(pool),
            # Promotion updates a campaign through its service, which may signal its workflow.
            *ABTestActivities(pool, client, get_settings().model_copy(update={"temporal_task_queue": task_queue})).all(),
        ],
        workflow_runner=sandbox_runner(),
        **options,
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    client = await connect(settings)
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=settings.db_pool_max)
    worker = build_worker(client, pool, settings.temporal_task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker polling task queue %r", settings.temporal_task_queue)
    async with worker:
        heartbeat = asyncio.create_task(_touch_health_file(client, settings)) if settings.worker_health_file else None
        await stop.wait()
        if heartbeat:
            heartbeat.cancel()
    await pool.close()


async def _touch_health_file(client: Client, settings: Settings) -> None:
    """Liveness for container health checks: fresh while this worker can reach Temporal."""
    assert settings.worker_health_file
    while True:
        try:
            await client.service_client.check_health()
            settings.worker_health_file.touch()
        except Exception as exc:  # noqa: BLE001 - unhealthy: leave the file stale
            log.warning("Temporal health check failed: %r", exc)
        await asyncio.sleep(10)
