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
from campaigns.activities.recurrence import RecurrenceActivities
from campaigns.activities.store import StoreActivities
from campaigns.settings import Settings, get_settings
from campaigns.temporal import connect
from campaigns.workflows.campaign import CampaignWorkflow
from campaigns.workflows.run_window import RunWindowWorkflow

log = logging.getLogger("campaigns.worker")

WORKFLOWS: Sequence[type] = (CampaignWorkflow, RunWindowWorkflow)


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


def activities(pool: asyncpg.Pool, client: Client, task_queue: str) -> list:
    return [*StoreActivities(pool).all(), *RecurrenceActivities(client, task_queue).all()]


def build_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str, *, schedules_client: Client | None = None, **options
) -> Worker:
    """`schedules_client`: where recurrence Schedules live, when not on `client`'s server
    (tests on the time-skipping server, which has no Schedules)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(pool, schedules_client or client, task_queue),
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
        await stop.wait()
    await pool.close()
