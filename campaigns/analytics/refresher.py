"""The refresher: applies accepted batches to everything derived from them, exactly once.

Every API process runs one; a transaction-scoped advisory lock lets one of them work at a
time. Each pass (every second: batches arriving meanwhile are applied together, so a busy
campaign's rollup and summary rows are written once per pass, not once per batch), in one
transaction:

1. takes the oldest outbox rows (each one an accepted batch's `Delta`);
2. makes sure Redis has them (the ingest path applies them at once; this catches the
   batches whose process died first);
3. adds them to the 15-minute rollups and to the performance summary lists sort on (one
   statement, Postgres doing the grouping);
4. records a `lead.created` platform event per qualified lead;
5. re-evaluates the goals and budgets of the campaigns they touched: goal progress is
   written back (`current`, `achieved`) and `goal.achieved` recorded once per window;
   budget alerts (`budget.threshold_reached`, `budget.exhausted`) are recorded once per
   cap and window;
6. deletes the rows.

So a row's effects all happen, or none do, and never twice. After the commit, campaigns
still active while a cap is reached get their workflow signalled (`spend_reported`); the
workflow pauses them. Every `sweep_every` seconds all campaigns with goals or budgets are
re-evaluated too: goal windows roll over at local midnight with no event to trigger it,
and a signal that failed is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from temporalio.client import Client

from campaigns.analytics import repository as repo
from campaigns.analytics.delta import Delta, leads_of
from campaigns.analytics.realtime import Realtime
from campaigns.api.campaigns import cache as campaign_cache
from campaigns.api.campaigns import repository as campaigns_repo
from campaigns.api.metrics import REGISTRY
from campaigns.domain import goals as goal_rules
from campaigns.domain import periods
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignBudget, CampaignGoal, CampaignStatus, GoalTimeframe
from campaigns.domain.metrics import MICROS

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

LOCK = 7_240_204  # advisory lock: one refresher (or rebuild) at a time, across processes
_NS = uuid.NAMESPACE_URL


@dataclass
class Outcome:
    batches: int = 0
    signals: list[tuple[str, BudgetSpend]] = field(default_factory=list)
    touched: set[UUID] = field(default_factory=set)  # campaigns whose summary or goals changed


@dataclass(frozen=True)
class _Candidate:
    """A platform event to record once (its id is fixed by what it is about)."""

    id: UUID
    organization_id: UUID
    campaign_id: UUID
    type: str
    data: dict[str, Any]


async def consume(conn: asyncpg.Connection, realtime: Realtime, *, limit: int, now: datetime) -> Outcome:
    """Apply up to `limit` outbox rows (steps 1–6 above) inside the caller's transaction."""
    rows = await repo.take_outbox(conn, limit)
    if not rows:
        return Outcome()
    deltas = [Delta.decode(r["payload"]) for r in rows]
    await realtime.apply_missing(deltas)
    await realtime.tidy(deltas)
    await repo.apply_deltas(conn, deltas)
    await repo.record_leads(conn, leads_of(deltas))
    touched = {UUID(c) for d in deltas for c in d.last_event_at}
    signals = await evaluate(conn, sorted(touched), now=now)
    await repo.delete_outbox(conn, [r["id"] for r in rows])
    return Outcome(len(rows), signals, touched)


async def evaluate(
    conn: asyncpg.Connection, campaign_ids: list[UUID] | None, *, now: datetime, touched: set[UUID] | None = None
) -> list[tuple[str, BudgetSpend]]:
    """Goals and budgets of these campaigns (all with goals or budgets, for None)."""
    rows = await repo.watched_campaigns(conn, campaign_ids)
    if not rows:
        return []
    windows: list[tuple[UUID, datetime, datetime]] = []
    plans: list[tuple[asyncpg.Record, list[CampaignGoal], list[Any], CampaignBudget | None, int | None]] = []
    for row in rows:
        config = row["config"]
        tz = row["timezone"]
        goals = [CampaignGoal.model_validate(g) for g in config.get("goals") or []]
        budget = CampaignBudget.model_validate(config["budget"]) if config.get("budget") else None
        goal_windows: list[Any] = []
        for goal in goals:
            if goal.timeframe == GoalTimeframe.CAMPAIGN:
                goal_windows.append(None)
            else:
                start, end = goal_rules.window(goal.timeframe, now=now, tz=tz)
                goal_windows.append((len(windows), start))
                windows.append((row["id"], start, end))  # type: ignore[arg-type]
        budget_window = None
        if budget is not None and budget.daily is not None:
            budget_window = len(windows)
            windows.append((row["id"], *periods.today(now, tz)))
        plans.append((row, goals, goal_windows, budget, budget_window))

    sums = await repo.window_sums(conn, windows, (*goal_rules.SUMS, "cost_micros"))
    candidates: list[_Candidate] = []
    signals: list[tuple[str, BudgetSpend]] = []
    for row, goals, goal_windows, budget, budget_window in plans:
        campaign_id, org = row["id"], row["organization_id"]
        if goals:
            lifetime = _lifetime(row)
            stored = row["config"].get("goals") or []
            updated = []
            for goal, where in zip(goals, goal_windows, strict=True):
                current = goal_rules.value(goal.type, lifetime if where is None else sums[where[0]])
                updated.append(goal_rules.progress_update(goal, current))
                if current >= goal.target:
                    start = where[1] if where is not None else None
                    candidates.append(
                        _Candidate(
                            uuid.uuid5(_NS, goal_rules.achievement_id(str(campaign_id), goal, start)),
                            org,
                            campaign_id,
                            "goal.achieved",
                            {
                                "goalId": goal.id,
                                "type": goal.type.value,
                                "timeframe": goal.timeframe.value,
                                "target": goal.target,
                                "current": current,
                                "windowStart": start.isoformat() if start else None,
                                "achievedAt": now.isoformat(),
                            },
                        )
                    )
            if [(g.get("current"), g.get("achieved")) for g in stored] != [
                (g["current"], g["achieved"]) for g in updated
            ]:
                await repo.set_goals(conn, campaign_id, updated)
                if touched is not None:
                    touched.add(campaign_id)
        if budget is not None:
            spent_total = float(row["total_cost"] or 0)
            spent_today = (sums[budget_window]["cost_micros"] / MICROS) if budget_window is not None else 0.0
            day = periods.local_date(now, row["timezone"])
            exhausted = False
            for kind, cap, spent, window_name in (
                ("total", budget.total, spent_total, "total"),
                ("daily", budget.daily, spent_today, day.isoformat()),
            ):
                if cap is None:
                    continue
                base = {
                    "cap": kind,
                    "limit": cap,
                    "spent": round(spent, 6),
                    "currency": budget.currency,
                    "window": window_name,
                }
                for threshold in budget.alert_thresholds:
                    if threshold < 1 and spent >= threshold * cap:
                        candidates.append(
                            _Candidate(
                                uuid.uuid5(_NS, f"budget:{campaign_id}:{kind}:{window_name}:{cap:g}:{threshold:g}"),
                                org,
                                campaign_id,
                                "budget.threshold_reached",
                                {**base, "threshold": threshold},
                            )
                        )
                if spent >= cap:
                    exhausted = True
                    candidates.append(
                        _Candidate(
                            uuid.uuid5(_NS, f"budget:{campaign_id}:{kind}:{window_name}:{cap:g}:exhausted"),
                            org,
                            campaign_id,
                            "budget.exhausted",
                            base,
                        )
                    )
            if exhausted and row["status"] == CampaignStatus.ACTIVE:
                signals.append((str(campaign_id), BudgetSpend(total=spent_total, day=day, today=spent_today, at=now)))
    await _record_once(conn, candidates, now=now)
    return signals


def _lifetime(row: asyncpg.Record) -> dict[str, Any]:
    """The summary's totals in the names goal rules use (for `campaign` goals)."""
    return {
        "leads": row["qualified_leads"],
        "conversions": row["conversions"],
        "revenue_micros": float(row["revenue"] or 0) * MICROS,
        "calls_completed": row["total_calls"],
        "calls_failed": 0,
        "calls_connected": row["connected_calls"],
        "widget_clicks": row["widget_clicks"],
    }


async def _record_once(conn: asyncpg.Connection, candidates: list[_Candidate], *, now: datetime) -> None:
    if not candidates:
        return
    known = {
        r[0]
        for r in await conn.fetch("SELECT id FROM domain_events WHERE id = ANY($1::uuid[])", [c.id for c in candidates])
    }
    for c in candidates:
        if c.id in known:
            continue
        known.add(c.id)
        await campaigns_repo.record_event(
            conn,
            event_id=c.id,
            organization_id=c.organization_id,
            campaign_id=c.campaign_id,
            type_=c.type,
            data={"campaignId": str(c.campaign_id), **c.data},
            occurred_at=now,
        )


class Refresher:
    """Runs `consume` in a loop (and the goal/budget sweep on a timer)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        realtime: Realtime,
        temporal: Client | None,
        *,
        interval: float = 1.0,
        sweep_every: float = 30.0,
        batch: int = 200,
    ) -> None:
        self.pool = pool
        self.realtime = realtime
        self.temporal = temporal
        self.interval = interval
        self.sweep_every = sweep_every
        self.batch = batch
        self._task: asyncio.Task | None = None
        self._last_sweep = 0.0
        self._wake = asyncio.Event()
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
        """One pass; the number of batches applied (0 if another process holds the lock)."""
        if not await self.realtime.has_generation():
            from campaigns.analytics.rebuild import rebuild

            # A new Redis beside existing events has lost its counters; beside no events
            # (a fresh install) it only needs its generation, and that is not worth a warning.
            if await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM analytics_events)"):
                log.warning("real-time counters are missing (Redis restarted empty?); rebuilding them from Postgres")
            await rebuild(self.pool, self.realtime, redis_only=True)
        now = datetime.now(UTC)
        started = time.perf_counter()
        outcome = Outcome()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK):
                return 0
            _, oldest = await repo.outbox_backlog(conn)
            LAG.set((now - oldest).total_seconds() if oldest else 0.0)
            outcome = await consume(conn, self.realtime, limit=self.batch, now=now)
            if sweep:
                outcome.signals += await evaluate(conn, None, now=now, touched=outcome.touched)
        if outcome.batches:
            APPLIED.inc(outcome.batches)
            TICK.observe(time.perf_counter() - started)
        cache = campaign_cache.for_pool(self.pool)
        if cache is not None and outcome.touched:
            await cache.invalidate(*outcome.touched)  # no API process may serve the old figures
        await self._signal(outcome.signals)
        return outcome.batches

    async def drain(self, *, timeout: float = 30.0) -> None:
        """Apply everything waiting (tests and tools use this to wait for the derived views)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.pool.acquire() as conn:
                waiting, _ = await repo.outbox_backlog(conn)
            if not waiting:
                return
            if not await self.tick():
                await asyncio.sleep(0.05)
        raise TimeoutError("the analytics outbox did not drain")

    async def _signal(self, signals: list[tuple[str, BudgetSpend]]) -> None:
        if not signals or self.temporal is None:
            return
        from campaigns.workflows.campaign import CampaignWorkflow, workflow_id

        for campaign_id, spend in signals:
            try:
                handle = self.temporal.get_workflow_handle(workflow_id(campaign_id))
                await handle.signal(CampaignWorkflow.spend_reported, spend)
            except Exception as exc:  # noqa: BLE001 - retried by the next tick or sweep
                log.warning("could not report spend to campaign %s: %r", campaign_id, exc)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
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
