"""Applying accepted batches to everything derived from them, exactly once.

Inside the caller's transaction (the refresher's pass, or a rebuild):

1. takes the oldest outbox rows (each one an accepted batch's `Delta`);
2. adds them to the 15-minute rollups and to the performance summary lists sort on (one
   statement, Postgres doing the grouping);
3. records a `lead.created` platform event per qualified lead;
4. re-evaluates the goals and budgets of the campaigns they touched: goal progress is
   written back (`current`, `achieved`) and `goal.achieved` recorded once per window;
   budget alerts (`budget.threshold_reached`, `budget.exhausted`) are recorded once per
   cap and window;
5. makes sure Redis has them (the ingest path applies them at once; this catches the
   batches whose process died first, or that came while Redis was down);
6. deletes the rows.

Steps 2–4 do not need Redis. While Redis is unavailable they still happen, and the rows are
kept, marked as derived (`derived_at`), until Redis is back: then only steps 5–6 remain for
them. So a row's Postgres effects all happen, or none do, and never twice; its Redis effects
happen once too (a marker per batch and campaign), and a row waiting longer than Redis
remembers markers (`realtime.MARKER_TRUST`) has its campaigns' counters rebuilt from
Postgres instead of being applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import redis.exceptions

from campaigns.analytics import repository as repo
from campaigns.analytics.delta import Delta, leads_of
from campaigns.analytics.realtime import MARKER_TRUST, Realtime
from campaigns.campaigns import repository as campaigns_repo
from campaigns.db import Connection
from campaigns.domain import goals as goal_rules
from campaigns.domain import periods
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignBudget, CampaignGoal, CampaignStatus, GoalTimeframe
from campaigns.domain.metrics import MICROS

_NS = uuid.NAMESPACE_URL


@dataclass
class Outcome:
    batches: int = 0  # outbox rows handled (applied, or kept waiting for Redis)
    signals: list[tuple[str, BudgetSpend]] = field(default_factory=list)
    touched: set[UUID] = field(default_factory=set)  # campaigns whose summary or goals changed
    rebuild: set[str] = field(default_factory=set)  # campaigns whose counters to rebuild from Postgres
    waiting_for_redis: bool = False  # rows were kept: Redis could not take them


@dataclass(frozen=True)
class _Candidate:
    """A platform event to record once (its id is fixed by what it is about)."""

    id: UUID
    organization_id: UUID
    campaign_id: UUID
    type: str
    data: dict[str, Any]


async def consume(
    conn: Connection, realtime: Realtime, *, limit: int, now: datetime, redis_up: bool = True, strict: bool = False
) -> Outcome:
    """Apply up to `limit` outbox rows (steps 1–6 above) inside the caller's transaction.
    Without `redis_up` (the process's breaker is open) only rows not derived yet are taken.
    `strict`: a Redis failure raises rather than leaving rows waiting (a rebuild)."""
    rows = await repo.take_outbox(conn, limit, with_derived=redis_up)
    if not rows:
        return Outcome()
    deltas = [Delta.decode(r["payload"]) for r in rows]
    fresh = [d for r, d in zip(rows, deltas, strict=True) if r["derived_at"] is None]
    outcome = Outcome(batches=len(rows))
    if fresh:
        await repo.apply_deltas(conn, fresh)
        await repo.record_leads(conn, leads_of(fresh))
        outcome.touched = {UUID(c) for d in fresh for c in d.last_event_at}
        outcome.signals = await evaluate(conn, sorted(outcome.touched), now=now)
    if redis_up:
        trusted: list[Delta] = []
        stale: list[Delta] = []
        for row, delta in zip(rows, deltas, strict=True):
            (trusted if (now - row["created_at"]).total_seconds() < MARKER_TRUST else stale).append(delta)
        try:
            await realtime.apply_missing(trusted)
            await realtime.tidy(deltas)
            outcome.rebuild = {c for d in stale for c in d.campaigns}
        except (redis.exceptions.RedisError, OSError):
            if strict:
                raise
            redis_up = False
    if redis_up:
        await repo.delete_outbox(conn, [r["id"] for r in rows])
    else:
        outcome.waiting_for_redis = True
        await repo.mark_derived(conn, [r["id"] for r in rows if r["derived_at"] is None], now)
    return outcome


async def evaluate(
    conn: Connection, campaign_ids: list[UUID] | None, *, now: datetime, touched: set[UUID] | None = None
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
                assert start is not None and end is not None  # only a campaign goal's window is open
                goal_windows.append((len(windows), start))
                windows.append((row["id"], start, end))
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


async def _record_once(conn: Connection, candidates: list[_Candidate], *, now: datetime) -> None:
    if not candidates:
        return
    known = await campaigns_repo.known_platform_events(conn, [c.id for c in candidates])
    for c in candidates:
        if c.id in known:
            continue
        known.add(c.id)
        await campaigns_repo.record_platform_event(
            conn,
            event_id=c.id,
            organization_id=c.organization_id,
            campaign_id=c.campaign_id,
            type_=c.type,
            data={"campaignId": str(c.campaign_id), **c.data},
            occurred_at=now,
        )
