"""The dispatcher: turns each recorded platform event into one delivery per subscribed
endpoint, exactly once, and makes each delivery's first attempt itself; only a delivery
whose first attempt fails gets a workflow, to drive its retries.

Why an outbox read by a dispatcher, rather than a dispatch step in each recording path:
events are recorded by workflows (status changes, campaign.created) and directly by the
API and ingestion, and more paths will come. A trigger on `platform_events` puts every
event, whatever recorded it, in `webhook_outbox` in the same transaction, and NOTIFY
wakes the dispatcher at commit (a poll every few seconds covers a missed notification).
The dispatcher takes a batch off the outbox and inserts the deliveries in one
transaction, so a worker dying at any point either leaves the event in the outbox or
leaves its deliveries recorded; never neither, never twice.

Why the first attempt is made here and not by a workflow: most first attempts succeed,
and a workflow per delivery costs the Temporal server and the worker tens of milliseconds
of CPU each, which capped throughput far below what the attempt itself costs. The
guarantees come from the delivery row instead:

- Each delivery is inserted claimed by its dispatcher (`claim`, `claimed_until`). Only the
  holder of an unexpired claim sends, and it starts an attempt only while the claim has
  time left for the whole of it (waiting for a slot, the request, recording), so a live
  holder is done before anyone else may take the row. Its writes are fenced by the claim.
- A holder that dies leaves the claim to lapse; any dispatcher then claims the row again
  (SKIP LOCKED, so one does) and attempts it again, with the same `webhook-id`.
- A failed first attempt is recorded in the same transaction that hands the delivery over
  to its workflow, which the dispatcher then starts at attempt 2, not before the retry the
  failure scheduled. A crash in between is covered by a sweep that starts the workflows of
  handed-over deliveries nobody started in time.
- Deliveries the API makes due (test pings, redeliveries, recoveries), and those that
  found their endpoint at its concurrency limit, are claimed the same way as lapsed ones.

Any number of workers may run one: they skip each other's rows (SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client

from campaigns.db import Connection
from campaigns.domain import integrations
from campaigns.domain.webhooks import delivery_id, envelope, matches
from campaigns.messages.webhook_delivery import AttemptRequest
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.webhooks.attempts import Attempts, Claim, claim_lease_s
from campaigns.webhooks.service import record_render_failures
from campaigns.webhooks.workflow_client import Pending, start_all

log = logging.getLogger("campaigns.webhooks")

CHANNEL = repo.CHANNEL


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
    def __init__(self, client: Client, pool: asyncpg.Pool, settings: Settings, redis: aioredis.Redis) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self.attempts = Attempts(pool, settings, redis)
        self.lease_s = claim_lease_s(settings)
        self._wake = asyncio.Event()
        self._due = True  # deliveries may be due that no new event brings (look at start)
        self._senders = asyncio.Semaphore(settings.dispatch_senders)
        self._gate = asyncio.Semaphore(settings.dispatch_starts_at_once)
        self._claimed: set[asyncio.Task] = set()  # one per delivery this dispatcher holds
        self._room = asyncio.Event()

    async def run(self) -> None:
        """Dispatch until cancelled, surviving Postgres and Temporal outages; on the way out,
        let the attempts in flight finish (so their receivers are not sent them again)."""
        loop = asyncio.get_running_loop()
        next_sweep = next_due = 0.0
        next_prune = loop.time() + 60
        listener: Connection | None = None
        backoff = 0.5
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await asyncpg.connect(self.settings.database_dsn)
                        await listener.add_listener(CHANNEL, self._notified)
                    self._wake.clear()
                    while await self.dispatch_batch():
                        pass
                    if self._due or loop.time() >= next_due:
                        # On notice from the API, else at each poll: lapsed claims and busy
                        # endpoints' deliveries need no notice sooner.
                        self._due = False
                        await self.claim_due()
                        next_due = loop.time() + self.settings.dispatch_poll_s
                    if loop.time() >= next_sweep:
                        await self.sweep()
                        next_sweep = loop.time() + self.settings.dispatch_sweep_s
                    if loop.time() >= next_prune:
                        await self.prune()
                        next_prune = loop.time() + self.settings.dispatch_prune_s
                    backoff = 0.5
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.dispatch_poll_s)
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
            await self._drain()

    def _notified(self, _conn: Connection, _pid: int, _channel: str, payload: object) -> None:
        if payload == repo.DUE:
            self._due = True
        self._wake.set()

    async def _drain(self) -> None:
        if self._claimed:
            # Bounded by an attempt's own limits; what is left is cancelled and its claim lapses.
            _, left = await asyncio.wait(list(self._claimed), timeout=self.lease_s)
            for task in left:
                task.cancel()
        await self.attempts.aclose()

    async def _wait_for_room(self) -> None:
        # Backpressure: a backlog stays in the outbox, not claimed in memory.
        while len(self._claimed) >= self.settings.dispatch_max_claimed:
            self._room.clear()
            await self._room.wait()

    async def dispatch_batch(self) -> int:
        """Fan out one batch of events and start their first attempts; return how many
        events it took (0: outbox empty)."""
        await self._wait_for_room()
        claim = uuid.uuid4()
        deadline = asyncio.get_running_loop().time() + self.lease_s  # before the database's now()
        async with self.pool.acquire() as conn, conn.transaction():
            events = await repo.claim_events(conn, self.settings.dispatch_batch)
            if not events:
                return 0
            endpoints = await repo.subscribers(conn, list({e["organization_id"] for e in events}))
            # Rendering is CPU work (bounded): off the loop that also serves the deliveries.
            rows = (
                await asyncio.to_thread(fan_out, events, endpoints, max_bytes=self.settings.webhook_max_payload_bytes)
                if endpoints
                else []
            )
            inserted = set(await repo.insert_deliveries(conn, [r[:8] for r in rows], claim=claim, lease_s=self.lease_s))
            unrenderable = [r for r in rows if r[9] is not None and r[0] in inserted]
            await record_render_failures(conn, [(r[0], r[9]) for r in unrenderable])
            due = [r[0] for r in rows if r[0] in inserted and r[9] is None]
            attempts = await repo.deliveries_for_attempt(conn, due) if due else []
        self._send(attempts, Claim(claim, deadline))
        return len(events)

    async def claim_due(self) -> int:
        """Claim and attempt deliveries nobody holds: lapsed claims, test pings,
        redeliveries, and those that found their endpoint busy."""
        room = self.settings.dispatch_max_claimed - len(self._claimed)
        if room <= 0:
            return 0
        claim = uuid.uuid4()
        deadline = asyncio.get_running_loop().time() + self.lease_s
        async with self.pool.acquire() as conn, conn.transaction():
            limit = min(room, 1000)
            ids = await repo.claim_due(conn, claim=claim, lease_s=self.lease_s, limit=limit)
            attempts = await repo.deliveries_for_attempt(conn, ids) if ids else []
        self._send(attempts, Claim(claim, deadline))
        if len(ids) == limit:  # there may be more: look again at once
            self._due = True
            self._wake.set()
        return len(attempts)

    def _send(self, rows: list[asyncpg.Record], claim: Claim) -> None:
        for row in rows:
            task = asyncio.create_task(self._attempt(row, claim))
            self._claimed.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._claimed.discard(task)
        self._room.set()

    async def _attempt(self, row: asyncpg.Record, claim: Claim) -> None:
        """The first attempt of a delivery (or its repeat, after a lapsed claim); a failure
        is handed over to the delivery's workflow."""
        try:
            async with self._senders:
                request = AttemptRequest(delivery_id=str(row["id"]), run=row["run"], attempt=row["attempts"] + 1)
                outcome = await self.attempts.attempt(row, request, claim)
            if outcome.final:
                return
            assert outcome.retry_in is not None  # a retry is scheduled
            handed_over = Pending(
                row["id"],
                row["run"],
                row["event_type"],
                row["endpoint_id"],
                attempt=request.attempt + 1,
                not_before=datetime.now(UTC) + timedelta(seconds=outcome.retry_in),
            )
            await start_all(self.client, self.pool, self.settings, [handed_over], gate=self._gate)
        except Exception as err:  # noqa: BLE001 - the claim lapses, or the sweep starts the workflow
            log.warning("direct attempt of delivery %s: %r; it will be taken up again", row["id"], err)

    async def prune(self) -> int:
        """Delete finished deliveries older than the retention period, in small batches."""
        total = 0
        while True:
            n = await repo.delete_finished_before(self.pool, days=self.settings.webhook_retention_days, limit=1000)
            total += n
            if n < 1000:
                return total

    async def sweep(self) -> int:
        """Start the workflows of deliveries handed over to one that nobody started in time."""
        rows = await repo.unstarted(self.pool, limit=500)
        if not rows:
            return 0
        log.info("starting %d delivery workflow(s) left unstarted", len(rows))
        return await start_all(
            self.client,
            self.pool,
            self.settings,
            [
                Pending(
                    r["id"],
                    r["run"],
                    r["event_type"],
                    r["endpoint_id"],
                    attempt=r["attempts"] + 1,
                    not_before=r["next_attempt_at"],
                )
                for r in rows
            ],
            gate=self._gate,
        )
