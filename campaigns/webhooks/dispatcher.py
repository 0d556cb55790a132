"""The dispatcher: turns each recorded platform event into one delivery per subscribed
endpoint, exactly once, and starts their workflows.

Why an outbox read by a dispatcher, rather than a dispatch step in each recording path:
events are recorded by workflows (status changes, campaign.created) and directly by the
API and ingestion, and more paths will come. A trigger on `platform_events` puts every
event, whatever recorded it, in `webhook_outbox` in the same transaction, and NOTIFY
wakes the dispatcher at commit (a poll every few seconds covers a missed notification).
The dispatcher takes a batch off the outbox and inserts the deliveries in one
transaction, so a worker dying at any point either leaves the event in the outbox or
leaves its deliveries recorded; never neither, never twice. Workflows are started after
the commit; a sweep starts any a crash left unstarted.

Any number of workers may run one: they skip each other's rows (SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from uuid import UUID

import asyncpg
from temporalio.client import Client

from campaigns.db import Connection
from campaigns.domain import integrations
from campaigns.domain.webhooks import delivery_id, envelope, matches
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.webhooks.service import record_render_failures
from campaigns.webhooks.workflow_client import Pending, start_all

log = logging.getLogger("campaigns.webhooks")

CHANNEL = "webhook_outbox"


def fan_out(
    events: list[asyncpg.Record], endpoints: list[asyncpg.Record], *, max_bytes: int = integrations.DEFAULT_MAX_BYTES
) -> list[tuple]:
    """Delivery rows for a batch of events: each event to each enabled endpoint of its
    organization whose scope and filter want it and that existed when it was recorded.
    The last item of a row is why its body could not be rendered (None when it was): such
    a delivery is recorded as failed, and the rest of the batch goes on. CPU-bound (bodies
    are rendered here, each within its bounds): run it off the event loop."""
    by_org: dict[UUID, list[asyncpg.Record]] = {}
    for ep in endpoints:
        by_org.setdefault(ep["organization_id"], []).append(ep)
    rows = []
    for e in events:
        wanted = [
            ep
            for ep in by_org.get(e["organization_id"], ())
            if (ep["campaign_id"] is None or ep["campaign_id"] == e["campaign_id"])
            and ep["created_at"] <= e["recorded_at"]
            and matches(ep["event_types"], e["type"])
        ]
        if not wanted:
            continue
        campaign_id = str(e["campaign_id"]) if e["campaign_id"] else None
        event = envelope(
            event_id=str(e["id"]),
            type_=e["type"],
            occurred_at=e["occurred_at"],
            data=e["data"],
            sequence=e["seq"],
            campaign_id=campaign_id,
        )
        for ep in wanted:
            body, failure = integrations.render_body(ep["kind"], ep["config"], event, max_bytes=max_bytes)
            rows.append(
                (
                    delivery_id(e["id"], ep["id"]),
                    ep["id"],
                    e["organization_id"],
                    e["id"],
                    e["type"],
                    e["campaign_id"],
                    e["seq"],
                    body,
                    ep["id"],  # names the endpoint in the workflow's summary (never its URL)
                    failure,
                )
            )
    return rows


class Dispatcher:
    def __init__(self, client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._starts: set[asyncio.Task] = set()
        self._gate = asyncio.Semaphore(settings.dispatch_starts_at_once)
        self._unstarted = 0  # deliveries handed to background starts and not yet started
        self._drained = asyncio.Event()

    async def run(self) -> None:
        """Dispatch until cancelled, surviving Postgres and Temporal outages."""
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        next_prune = loop.time() + 60
        listener: Connection | None = None
        backoff = 0.5
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await asyncpg.connect(self.settings.database_dsn)
                        await listener.add_listener(CHANNEL, lambda *_: self._wake.set())
                    while await self.dispatch_batch():
                        pass
                    if loop.time() >= next_sweep:
                        await self.sweep()
                        next_sweep = loop.time() + self.settings.dispatch_sweep_s
                    if loop.time() >= next_prune:
                        await self.prune()
                        next_prune = loop.time() + self.settings.dispatch_prune_s
                    backoff = 0.5
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.dispatch_poll_s)
                    self._wake.clear()
                except Exception as err:  # noqa: BLE001 - the dispatcher must outlive any outage
                    log.warning("webhook dispatcher: %r; retrying in %.1fs", err, backoff)
                    if listener is not None:
                        listener.terminate()
                        listener = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10)
        finally:
            if listener is not None:
                listener.terminate()
            for task in list(self._starts):
                task.cancel()

    async def dispatch_batch(self) -> int:
        """Fan out one batch of events; return how many events it took (0: outbox empty)."""
        while self._unstarted >= self.settings.dispatch_max_unstarted:
            # Backpressure after an outage: a backlog stays in the outbox, not in memory.
            self._drained.clear()
            await self._drained.wait()
        async with self.pool.acquire() as conn, conn.transaction():
            events = await repo.claim_events(conn, self.settings.dispatch_batch)
            if not events:
                return 0
            endpoints = await repo.subscribers(conn, list({e["organization_id"] for e in events}))
            # Rendering is CPU work (bounded): off the loop that also serves the deliveries.
            rows = await asyncio.to_thread(
                fan_out, events, endpoints, max_bytes=self.settings.webhook_max_payload_bytes
            )
            inserted = set(await repo.insert_deliveries(conn, [r[:8] for r in rows]))
            unrenderable = [r for r in rows if r[9] is not None and r[0] in inserted]
            await record_render_failures(conn, [(r[0], r[9]) for r in unrenderable])
        pending = [Pending(r[0], 0, r[4], r[8]) for r in rows if r[0] in inserted and r[9] is None]
        if pending:
            # Started in the background so the next batch is claimed meanwhile.
            self._unstarted += len(pending)
            task = asyncio.create_task(start_all(self.client, self.pool, self.settings, pending, gate=self._gate))
            self._starts.add(task)
            task.add_done_callback(functools.partial(self._started, count=len(pending)))
        return len(events)

    def _started(self, task: asyncio.Task, count: int) -> None:
        self._starts.discard(task)
        self._unstarted -= count
        self._drained.set()
        if not task.cancelled() and task.exception() is not None:
            log.warning("starting delivery workflows failed: %r; the sweep will retry", task.exception())

    async def prune(self) -> int:
        """Delete finished deliveries older than the retention period, in small batches."""
        total = 0
        while True:
            n = await repo.delete_finished_before(self.pool, days=self.settings.webhook_retention_days, limit=1000)
            total += n
            if n < 1000:
                return total

    async def sweep(self) -> int:
        rows = await repo.unstarted(self.pool, older_than_s=self.settings.dispatch_sweep_age_s, limit=500)
        if not rows:
            return 0
        log.info("starting %d delivery workflow(s) left unstarted", len(rows))
        return await start_all(
            self.client,
            self.pool,
            self.settings,
            [Pending(r["id"], r["run"], r["event_type"], r["endpoint_id"]) for r in rows],
            gate=self._gate,
        )
