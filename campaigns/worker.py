"""The Temporal worker, the worker process's composition root: it builds the pool, Redis,
the cache and the activities, registers them with the workflows, and runs (beside the
webhook dispatcher and the hand-over relay).

`campaigns worker` starts it; any number may run side by side on one task queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from campaigns import db, redis_client
from campaigns.activities.abtest import ABTestActivities
from campaigns.activities.pipeline import PipelineActivities
from campaigns.activities.recurrence import RecurrenceActivities
from campaigns.activities.store import StoreActivities
from campaigns.activities.webhooks import WebhookActivities
from campaigns.campaigns.cache import CampaignCache
from campaigns.campaigns.relay import Relay
from campaigns.local_cache import LocalCache
from campaigns.settings import Settings, get_settings
from campaigns.temporal import connect
from campaigns.webhooks.dispatcher import Dispatcher
from campaigns.webhooks.service import seal_stored_credentials
from campaigns.workflows.abtest import ABTestWorkflow
from campaigns.workflows.campaign import CampaignWorkflow
from campaigns.workflows.run_window import RunWindowWorkflow
from campaigns.workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("campaigns.worker")

WORKFLOWS: Sequence[type] = (CampaignWorkflow, RunWindowWorkflow, WebhookDeliveryWorkflow, ABTestWorkflow)


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


def activity_holders(
    pool: asyncpg.Pool,
    settings: Settings,
    redis: aioredis.Redis,
    client: Client,
    schedules_client: Client,
    task_queue: str,
) -> list:
    """The objects whose methods are the activities; some hold connections (`aclose`)."""
    # Only to invalidate (its memory tier never starts here): no API process may serve what they changed.
    cache = CampaignCache(LocalCache(redis, settings), redis, settings)
    return [
        StoreActivities(pool, cache),
        RecurrenceActivities(schedules_client, task_queue),
        PipelineActivities(pool, settings),
        WebhookActivities(pool, settings, redis),
        # Promotion updates a campaign through its service, which may signal its workflow.
        ABTestActivities(pool, client, settings.model_copy(update={"temporal_task_queue": task_queue}), cache),
    ]


class CampaignsWorker(Worker):
    """The Temporal worker; leaving it also closes what its activities hold open (the
    webhook sender's connection pool)."""

    def __init__(self, *args, holders: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._holders = holders

    async def __aexit__(self, *exc) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            for holder in self._holders:
                if hasattr(holder, "aclose"):
                    await holder.aclose()


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    *,
    settings: Settings | None = None,
    redis: aioredis.Redis | None = None,
    schedules_client: Client | None = None,
    **options,
) -> Worker:
    """`schedules_client`: where recurrence Schedules live, when not on `client`'s server
    (tests on the time-skipping server, which has no Schedules). `redis` (a client of the
    settings' Redis when not given) also lets the activities invalidate the API's campaign
    cache, so no API process serves a status they changed."""
    settings = settings or get_settings()
    redis = redis or redis_client.connect(settings)
    holders = activity_holders(pool, settings, redis, client, schedules_client or client, task_queue)
    # A killed worker never says goodbye: its workflows' next tasks wait the sticky timeout on
    # its own queue before any worker may take them.
    capacity = {
        "max_cached_workflows": settings.worker_max_cached_workflows,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_local_activities": settings.worker_max_concurrent_local_activities,
        "sticky_queue_schedule_to_start_timeout": timedelta(seconds=settings.worker_sticky_timeout_s),
    }
    return CampaignsWorker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[fn for holder in holders for fn in holder.all()],
        holders=holders,
        workflow_runner=sandbox_runner(),
        **{**capacity, **options},
    )


def relay(client: Client, pool: asyncpg.Pool, settings: Settings, redis: aioredis.Redis) -> Relay:
    """The hand-over relay, with a cache to invalidate (its memory tier never starts here)."""
    return Relay(client, pool, settings, CampaignCache(LocalCache(redis, settings), redis, settings))


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    client = await connect(settings)
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=settings.db_pool_max)
    redis = redis_client.connect(settings)
    # Endpoints saved before their credentials were encrypted (a deployment that skipped
    # `campaigns migrate`): encrypted now, once, whichever worker gets there first.
    if sealed := await seal_stored_credentials(pool=pool, settings=settings):
        log.info("encrypted the URL and headers of %d webhook endpoint(s) stored in clear", sealed)
    worker = build_worker(client, pool, settings.temporal_task_queue, settings=settings, redis=redis)
    if not settings.pipeline_url:
        log.warning("PIPELINE_URL is not set: campaigns will not be provisioned on a voice-AI pipeline")
    # Turns recorded events into webhook deliveries and makes their first attempts; safe to
    # run in every worker.
    dispatcher = asyncio.create_task(
        Dispatcher(client, pool, settings, redis).run() if settings.webhook_dispatcher else asyncio.Event().wait()
    )
    # Carries status requests and configuration changes to workflows the API could not reach.
    handover = asyncio.create_task(
        relay(client, pool, settings, redis).run() if settings.handover_relay else asyncio.Event().wait()
    )
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
    dispatcher.cancel()
    handover.cancel()
    await asyncio.gather(dispatcher, handover, return_exceptions=True)
    await redis.aclose()
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
