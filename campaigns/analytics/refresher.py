"""The refresher: applies accepted batches to everything derived from them, exactly once.

Every API process runs one; a transaction-scoped advisory lock lets one of them work at a
time. Each pass (every second: batches arriving meanwhile are applied together, so a busy
campaign's rollup and summary rows are written once per pass, not once per batch) runs
`apply.consume` in one transaction (see there for what it does).

While Redis is unavailable the passes go on without it: the rollups, the summary, goals and
budgets keep up, and the batches wait in the outbox for Redis only (see `apply`); once it
answers again they are applied to it, each once.

After the commit, campaigns still active while a cap is reached get their workflow
signalled (`spend_reported`); the workflow pauses them. Every `sweep_every` seconds all
campaigns with goals or budgets are re-evaluated too: goal windows roll over at local
midnight with no event to trigger it, and a signal that failed is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import redis.exceptions
from prometheus_client import Counter, Gauge, Histogram
from temporalio.client import Client

from campaigns.analytics import repository as repo
from campaigns.analytics.apply import Outcome, consume, evaluate
from campaigns.analytics.realtime import Realtime
from campaigns.analytics.rebuild import rebuild
from campaigns.analytics.retention import maintain
from campaigns.campaigns import workflow_client
from campaigns.campaigns.cache import CampaignCache
from campaigns.domain.budget import BudgetSpend
from campaigns.metrics import REGISTRY
from campaigns.redis_client import breaker_of
from campaigns.settings import Settings

log = logging.getLogger("campaigns.analytics.refresher")

APPLIED = Counter("analytics_batches_applied_total", "Accepted batches applied to the derived views", registry=REGISTRY)
LAG = Gauge(
    "analytics_refresh_lag_seconds", "Age of the oldest batch the refresher has not applied yet", registry=REGISTRY
)
TICK = Histogram(
    "analytics_refresh_seconds",
    "Duration of one refresher pass that applied batches",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)

DRAIN_LIMIT = 30.0  # seconds `drain` waits for the outbox to empty
MAINTAIN_EVERY = 3600.0  # seconds between passes over the event partitions (and at start)


class Refresher:
    """Runs `consume` in a loop (and the goal/budget sweep on a timer)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        realtime: Realtime,
        temporal: Client | None,
        cache: CampaignCache | None,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.realtime = realtime
        self.temporal = temporal
        self.cache = cache  # told of the campaigns whose figures changed
        self.interval = settings.refresh_interval_s
        self.sweep_every = settings.refresh_sweep_s
        self.batch = settings.refresh_batch
        self.breaker = breaker_of(realtime.redis)
        self.retention_days = settings.analytics_retention_days
        self._task: asyncio.Task | None = None
        self._last_sweep = 0.0
        self._last_maintenance: float | None = None
        self._wake = asyncio.Event()
        # One pass at a time in this process, so `drain` can wait for one that has committed
        # its batches but not yet invalidated the cache.
        self._pass = asyncio.Lock()
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="analytics-refresher")

    async def stop(self) -> None:
        """Let the current tick finish (it is one transaction either way), then end."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await stop_task(self._task, grace=5.0)

    def nudge(self) -> None:
        """New batches are waiting: tick now rather than at the next interval."""
        self._wake.set()

    async def tick(self, *, sweep: bool = False) -> int:
        """One pass; the number of batches handled (0 if another process holds the lock)."""
        async with self._pass:
            return await self._tick(sweep=sweep)

    async def _tick(self, *, sweep: bool) -> int:
        redis_up = not self.breaker.is_open
        if redis_up:
            try:
                if not await self.realtime.has_generation():
                    # A new Redis beside existing events has lost its counters; beside no events
                    # (a fresh install) it only needs its generation, and that is not worth a warning.
                    if await repo.has_events(self.pool):
                        log.warning("real-time counters missing (Redis restarted empty?); rebuilding them")
                    await rebuild(self.pool, self.realtime, None, redis_only=True)
            except (redis.exceptions.RedisError, OSError):
                redis_up = False  # Postgres's part goes on; Redis's waits
        now = datetime.now(UTC)
        started = time.perf_counter()
        outcome = Outcome()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repo.try_lock_derived(conn):
                return 0
            _, oldest = await repo.outbox_backlog(conn)
            LAG.set((now - oldest).total_seconds() if oldest else 0.0)
            outcome = await consume(conn, self.realtime, limit=self.batch, now=now, redis_up=redis_up)
            if sweep:
                outcome.signals += await evaluate(conn, None, now=now, touched=outcome.touched)
        if outcome.batches:
            APPLIED.inc(outcome.batches)
            TICK.observe(time.perf_counter() - started)
        if outcome.rebuild:
            log.warning(
                "%d campaign(s) had batches waiting for Redis too long; rebuilding their counters", len(outcome.rebuild)
            )
            await rebuild(
                self.pool, self.realtime, None, campaign_ids=[UUID(c) for c in outcome.rebuild], redis_only=True
            )
        if self.cache is not None and outcome.touched:
            await self.cache.invalidate(*outcome.touched)  # no API process may serve the old figures
        await self._signal(outcome.signals)
        return 0 if outcome.waiting_for_redis and not outcome.touched else outcome.batches

    async def drain(self) -> None:
        """Apply everything waiting (tests and tools use this to wait for the derived views);
        while Redis is unavailable, everything Postgres can take.

        Gives up after DRAIN_LIMIT seconds; a caller that wants a shorter wait wraps the call
        in `asyncio.timeout`.
        """
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline:
            async with self.pool.acquire() as conn:
                waiting, _ = await repo.outbox_backlog(conn, with_derived=not self.breaker.is_open)
            if not waiting:
                async with self._pass:  # a pass still finishing (its cache invalidation)
                    return
            if not await self.tick():
                await asyncio.sleep(0.05)
        raise TimeoutError("the analytics outbox did not drain")

    async def _signal(self, signals: list[tuple[str, BudgetSpend]]) -> None:
        if not signals or self.temporal is None:
            return
        for campaign_id, spend in signals:
            try:
                await workflow_client.report_spend(self.temporal, campaign_id, spend)
            except Exception as exc:  # noqa: BLE001 - retried by the next tick or sweep
                log.warning("could not report spend to campaign %s: %r", campaign_id, exc)

    async def _maintain(self) -> None:
        """The event partitions: those ahead made, those past the retention dropped."""
        if self._last_maintenance is not None and time.monotonic() - self._last_maintenance < MAINTAIN_EVERY:
            return
        self._last_maintenance = time.monotonic()
        try:
            await maintain(self.pool, retention_days=self.retention_days)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            self._last_maintenance = None  # try again on the next pass
            log.warning("event partition maintenance failed (%r); retrying", exc)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._maintain()
                sweep = time.monotonic() - self._last_sweep >= self.sweep_every
                if sweep:
                    self._last_sweep = time.monotonic()
                busy = await self.tick(sweep=sweep)
                if busy >= self.batch:
                    continue  # more waiting: no pause
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a dependency may be down; try again shortly
                log.exception("analytics refresh failed; retrying")
                await asyncio.sleep(1)
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()


async def stop_task(task: asyncio.Task, *, grace: float) -> None:
    """Wait up to `grace` seconds for a background task to end by itself, then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=grace)
