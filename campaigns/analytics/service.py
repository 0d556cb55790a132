"""Campaign analytics: real-time metrics, the full analytics report, and the real-time part
of campaign responses.

Everything here reads derived data only: Redis for "today" and active calls, the
15-minute rollups for any period, the performance summary for organization comparisons.
None of it scans raw events.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import redis.exceptions

from campaigns.analytics import models as s
from campaigns.analytics import repository as repo
from campaigns.analytics.realtime import Reading, Realtime
from campaigns.auth.principals import Principal
from campaigns.campaigns import service as campaigns_service
from campaigns.campaigns.cache import CampaignCache
from campaigns.campaigns.models import Campaign
from campaigns.campaigns.models import TrendPoint as CampaignTrendPoint
from campaigns.campaigns.repository import Row
from campaigns.domain import budget as budget_rules
from campaigns.domain import goals as goal_rules
from campaigns.domain import insights as insight_rules
from campaigns.domain import metrics, periods
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignBudget, CampaignConfiguration, GoalTimeframe
from campaigns.domain.forecast import Forecast, forecast
from campaigns.domain.lifecycle import schedule_bounds
from campaigns.domain.timeutil import zone
from campaigns.errors import Unavailable, invalid

TIMEFRAMES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
MAX_SPAN = timedelta(days=400)
MAX_POINTS = 2000
FORECAST_HISTORY_DAYS = 28
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACTIVE_MARGIN_S = 60  # a call is active until maxCallDuration (+ this) after its start at most


@dataclass(frozen=True)
class CampaignInfo:
    """What the analytics reads need to know about a campaign."""

    id: UUID
    organization_id: UUID
    timezone: str
    currency: str
    max_call_duration: float

    @classmethod
    def of(cls, row: Row) -> CampaignInfo:
        config = row["config"]
        budget = config.get("budget") or {}
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            timezone=row["timezone"],
            currency=budget.get("currency") or "USD",
            max_call_duration=float((config.get("voiceSettings") or {}).get("maxCallDuration") or 600),
        )


async def campaign_row(pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID) -> Row:
    """The caller's campaign (another organization's is a 404, as missing)."""
    return await campaigns_service.get_row(pool, cache, principal, campaign_id)


# --- Real time ------------------------------------------------------------------------------


def _health(f: metrics.Figures) -> str:
    if not f.total_calls:
        return "idle"
    rate = f.call_failure_rate or 0.0
    if rate < insight_rules.FAILURE_WARNING:
        return "healthy"
    return "degraded" if rate < insight_rules.FAILURE_CRITICAL else "critical"


def active_since(info: CampaignInfo, now: datetime) -> float:
    """Calls started before this (epoch s) and not ended no longer count as active."""
    return now.timestamp() - info.max_call_duration - ACTIVE_MARGIN_S


def metrics_from(info: CampaignInfo, reading: Reading, now: datetime) -> s.RealTimeMetrics:
    """The real-time metrics of a read of the counters (`Realtime.read`) made at `now`."""
    sums, active, updated = reading
    f = metrics.derive(sums)
    return s.RealTimeMetrics(
        campaign_id=str(info.id),
        timezone=info.timezone,
        day=periods.local_date(now, info.timezone),
        currency=info.currency,
        active_calls=active,
        today_calls=f.total_calls,
        today_completed_calls=f.completed_calls,
        today_connected_calls=f.connected_calls,
        today_leads=f.qualified_leads,
        today_conversions=f.conversions,
        today_cost=f.total_cost,
        today_revenue=f.revenue,
        conversion_rate=f.conversion_rate,
        average_wait_time=f.average_wait_time,
        average_call_duration=f.average_call_duration,
        call_failure_rate=f.call_failure_rate,
        system_health=_health(f),
        last_updated=updated,
    )


async def realtime_metrics(realtime: Realtime, info: CampaignInfo, *, now: datetime | None = None) -> s.RealTimeMetrics:
    """Today's figures from the counters; 503 `realtime_unavailable` while Redis is down."""
    now = now or datetime.now(UTC)
    start, end = periods.today(now, info.timezone)
    try:
        reading = await realtime.read(str(info.id), start=start, end=end, active_since=active_since(info, now))
    except (redis.exceptions.RedisError, OSError) as exc:
        raise RealtimeUnavailable() from exc
    return metrics_from(info, reading, now)


class RealtimeUnavailable(Unavailable):
    code = "realtime_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "real-time figures are unavailable for a moment (their store is down); the campaign and its "
            "analytics report still answer",
            headers={"Retry-After": "2"},
        )


@dataclass(frozen=True)
class Today:
    """The real-time part of a campaign response. Without Redis (`live` False) active calls
    are unknown and today's leads and cost come from the rollups (about a second behind)."""

    active_calls: int | None
    leads: int
    cost: float
    live: bool


async def today_figures(
    realtime: Realtime, pool: asyncpg.Pool, infos: Sequence[CampaignInfo], now: datetime
) -> list[Today]:
    """Today's figures of these campaigns (each in its time zone): one Redis round trip."""
    if not infos:
        return []
    windows = [(i, *periods.today(now, i.timezone)) for i in infos]
    try:
        if len(infos) == 1:
            i, start, end = windows[0]
            reads = [await realtime.read(str(i.id), start=start, end=end, active_since=active_since(i, now))]
        else:
            reads = await realtime.read_many((str(i.id), start, end, active_since(i, now)) for i, start, end in windows)
    except (redis.exceptions.RedisError, OSError):
        sums = await repo.window_sums(pool, [(i.id, start, end) for i, start, end in windows], _TODAY)
        return [Today(None, int(x["leads"] or 0), metrics.money(x["cost_micros"] or 0), False) for x in sums]
    return [Today(active, int(sums["leads"]), metrics.money(sums["cost_micros"]), True) for sums, active, _ in reads]


_TODAY = ("leads", "cost_micros")


def _set_today(campaign: Campaign, today: Today) -> None:
    campaign.performance.active_calls = today.active_calls
    campaign.performance.today_leads = today.leads
    campaign.performance.today_cost = today.cost
    campaign.performance.real_time_available = today.live
    campaign.cost_tracking.today_cost = today.cost


async def enrich(
    realtime: Realtime, pool: asyncpg.Pool, rows: Sequence[Row], campaigns: list[Campaign], *, trends: bool
) -> None:
    """Fill the real-time part of campaign responses (today in each campaign's timezone);
    with `trends`, the last 24 local hours and 7 local days too."""
    if not campaigns:
        return
    now = datetime.now(UTC)
    infos = [CampaignInfo.of(r) for r in rows]
    for campaign, today in zip(campaigns, await today_figures(realtime, pool, infos, now), strict=True):
        _set_today(campaign, today)
    if trends:
        for campaign, info in zip(campaigns, infos, strict=True):
            await _fill_trends(pool, info, campaign, now)


@dataclass(frozen=True)
class _Rendered:
    """A campaign response without its real-time part, rendered once."""

    info: CampaignInfo
    document: dict[str, Any]  # the campaign as its JSON, trends included
    etag: str


async def campaign_response(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    realtime: Realtime,
    principal: Principal,
    campaign_id: UUID,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """The body of `GET /api/campaigns/{id}` (`{"campaign": …}`, JSON) and its ETag.

    The campaign with its trends is rendered once per row and 15-minute slot (every local
    hour, in any time zone, begins on one) and kept beside the row in the memory tier; a read
    of a cached campaign then costs one Redis round trip for today's figures and no SQL.
    The refresher's invalidation of a campaign whose figures moved drops the rendering too."""
    now = now or datetime.now(UTC)
    row = await campaigns_service.get_row(pool, cache, principal, campaign_id)
    slot = int(now.timestamp()) // periods.BUCKET_SECONDS
    rendered: _Rendered | None = cache.derived(campaign_id, row, slot) if cache is not None else None
    if rendered is None:
        epoch = cache.epoch if cache is not None else 0
        campaign = campaigns_service.to_campaign(row)
        info = CampaignInfo.of(row)
        await _fill_trends(pool, info, campaign, now)
        rendered = _Rendered(info, campaign.model_dump(mode="json", by_alias=True), campaigns_service.etag(campaign))
        if cache is not None:
            cache.keep_derived(campaign_id, row, slot, rendered, epoch)
    (today,) = await today_figures(realtime, pool, [rendered.info], now)
    document = rendered.document
    performance = {
        **document["performance"],
        "activeCalls": today.active_calls,
        "todayLeads": today.leads,
        "todayCost": today.cost,
        "realTimeAvailable": today.live,
    }
    cost = {**document["costTracking"], "todayCost": today.cost}
    body = orjson.dumps({"campaign": {**document, "performance": performance, "costTracking": cost}})
    return body, rendered.etag


async def _fill_trends(pool: asyncpg.Pool, info: CampaignInfo, campaign: Campaign, now: datetime) -> None:
    """The last 24 local hours and 7 local days, from the rollups (one query for both: a local
    day is a union of local hours)."""
    today = periods.local_date(now, info.timezone)
    first = today - timedelta(days=6)
    hourly_start = periods.hour_start(now - timedelta(hours=23), info.timezone)
    headlines = await repo.series_many(
        pool,
        [info.id],
        min(periods.day_start(first, info.timezone), hourly_start),
        now,
        {info.id: info.timezone},
        "hourly",
    )
    by_hour = {hour: sums for (_, hour), sums in headlines.items()}
    campaign.performance.hourly_trends = [
        _brief(_hour_label(h, info.timezone), by_hour.get(h))
        for h in periods.hour_starts(hourly_start, now, info.timezone)
    ]
    by_day: dict[date, dict[str, int]] = {}
    for h, hour_sums in by_hour.items():
        day = by_day.setdefault(_local_date(h, info.timezone), dict.fromkeys(_HEADLINES, 0))
        for k in _HEADLINES:
            day[k] += hour_sums[k] or 0
    campaign.performance.daily_trends = [
        _brief((first + timedelta(days=k)).isoformat(), by_day.get(first + timedelta(days=k))) for k in range(7)
    ]


_HEADLINES = ("calls", "leads", "conversions", "cost_micros")


@lru_cache(maxsize=65_536)
def _local_date(instant: datetime, tz: str) -> date:
    return periods.local_date(instant, tz)


def _brief(label: str, row: dict[str, Any] | None) -> CampaignTrendPoint:
    # Four figures (`repo.series_many`), not the whole `metrics.derive`: every campaign read makes 31.
    if not row:
        return CampaignTrendPoint(period=label, calls=0, leads=0, conversions=0, cost=0.0)
    return CampaignTrendPoint(
        period=label,
        calls=row["calls"] or 0,
        leads=row["leads"] or 0,
        conversions=row["conversions"] or 0,
        cost=metrics.money(row["cost_micros"] or 0),
    )


@lru_cache(maxsize=65_536)
def _hour_label(instant: datetime, tz: str) -> str:
    return instant.astimezone(zone(tz)).isoformat(timespec="minutes")


# --- The analytics report --------------------------------------------------------------------


def _parse_instant(text: str, tz: str, field: str, *, end: bool) -> datetime:
    """An ISO date-time with offset, or a date (local to the campaign; an end date is
    inclusive: the period runs to the end of that day)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return periods.day_start(day + timedelta(days=1) if end else day, tz)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(
            [
                {
                    "field": f"query.{field}",
                    "reason": "must be a date (YYYY-MM-DD) or an ISO-8601 date-time with an offset",
                }
            ]
        ) from None
    if instant.tzinfo is None:
        raise invalid([{"field": f"query.{field}", "reason": "a date-time needs an offset (e.g. 'Z' or '+02:00')"}])
    return instant.astimezone(UTC)


def resolve_period(
    *,
    timeframe: str | None,
    granularity: str | None,
    start: str | None,
    end: str | None,
    tz: str,
    now: datetime,
    start_field: str = "start",
    end_field: str = "end",
    max_span: timedelta | None = MAX_SPAN,
) -> tuple[datetime, datetime, str]:
    """The `[start, end)` window and granularity a request asks for, or a 400 naming the field."""
    errors = []
    if timeframe is not None and timeframe not in TIMEFRAMES:
        errors.append({"field": "query.timeframe", "reason": f"must be one of {list(TIMEFRAMES)}"})
    if granularity is not None and granularity not in ("hourly", "daily"):
        errors.append({"field": "query.granularity", "reason": "must be 'hourly' or 'daily'"})
    if errors:
        raise invalid(errors)
    stop = _parse_instant(end, tz, end_field, end=True) if end else now
    if start:
        begin = _parse_instant(start, tz, start_field, end=False)
    else:
        begin = stop - TIMEFRAMES[timeframe or "7d"]
    if begin >= stop:
        raise invalid([{"field": f"query.{start_field}", "reason": f"must be before {end_field}"}])
    if max_span is not None and stop - begin > max_span:
        raise invalid(
            [{"field": f"query.{start_field}", "reason": f"the period may span at most {max_span.days} days"}]
        )
    chosen = granularity or ("hourly" if stop - begin <= timedelta(hours=48) else "daily")
    if chosen == "hourly" and (stop - begin) > timedelta(hours=MAX_POINTS):
        raise invalid(
            [{"field": "query.granularity", "reason": f"hourly covers at most {MAX_POINTS} hours; use daily"}]
        )
    return begin, stop, chosen


def _performance(f: metrics.Figures, hours: float) -> s.Performance:
    return s.Performance(
        total_calls=f.total_calls,
        completed_calls=f.completed_calls,
        connected_calls=f.connected_calls,
        failed_calls=f.failed_calls,
        qualified_leads=f.qualified_leads,
        conversions=f.conversions,
        conversion_rate=f.conversion_rate,
        qualification_rate=f.qualification_rate,
        connect_rate=f.connect_rate,
        answer_rate=f.answer_rate,
        call_failure_rate=f.call_failure_rate,
        average_call_duration=f.average_call_duration,
        average_wait_time=f.average_wait_time,
        average_lead_score=f.average_lead_score,
        calls_per_hour=f.total_calls / hours if hours else 0.0,
        total_cost=f.total_cost,
        cost_by_category=f.cost_by_category,
        cost_per_lead=f.cost_per_lead,
        cost_per_call=f.cost_per_call,
        cost_per_conversion=f.cost_per_conversion,
        revenue=f.revenue,
        roi=f.roi,
        customer_satisfaction=f.customer_satisfaction,
        satisfaction_responses=f.satisfaction_responses,
        widget_impressions=f.widget_impressions,
        widget_clicks=f.widget_clicks,
        widget_click_through_rate=f.widget_click_through_rate,
        average_display_time_ms=f.average_display_time_ms,
    )


def _trend_point(label: str, start: datetime, end: datetime, row: dict[str, Any] | None) -> s.TrendPoint:
    f = metrics.derive(row or {})
    return s.TrendPoint(
        period=label,
        start=start,
        end=end,
        calls=f.total_calls,
        completed_calls=f.completed_calls,
        connected_calls=f.connected_calls,
        leads=f.qualified_leads,
        conversions=f.conversions,
        revenue=f.revenue,
        cost=f.total_cost,
        conversion_rate=f.conversion_rate,
        average_call_duration=f.average_call_duration,
        cost_per_lead=f.cost_per_lead,
    )


async def _trends(
    pool: asyncpg.Pool, info: CampaignInfo, start: datetime, end: datetime, granularity: str
) -> list[s.TrendPoint]:
    rows = await repo.series(pool, info.id, start, end, info.timezone, granularity)
    tz = info.timezone
    if granularity == "daily":
        return [
            _trend_point(day.isoformat(), max(s_, start), min(e_, end), rows.get(day))
            for day, s_, e_ in periods.local_days(start, end, tz)
        ]
    hours = periods.hour_starts(start, end, tz)
    out = []
    for k, h in enumerate(hours):
        nxt = hours[k + 1] if k + 1 < len(hours) else min(h + timedelta(hours=1), end)
        out.append(_trend_point(_hour_label(h, tz), max(h, start), min(nxt, end), rows.get(h)))
    return out


_CHANGE_METRICS = (
    "total_calls",
    "qualified_leads",
    "conversions",
    "conversion_rate",
    "average_call_duration",
    "total_cost",
    "cost_per_lead",
    "revenue",
    "customer_satisfaction",
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _changes(current: metrics.Figures, previous: metrics.Figures) -> list[s.MetricChange]:
    out = []
    for name in _CHANGE_METRICS:
        a, b = current.get(name), previous.get(name)
        change = (a - b) if a is not None and b is not None else None
        ratio = (change / b) if change is not None and b else None
        out.append(s.MetricChange(metric=_camel(name), current=a, previous=b, change=change, change_ratio=ratio))
    return out


_ORG_METRICS = (
    # (metric, summary column, higher is better)
    ("conversionRate", "conversion_rate", True),
    ("qualifiedLeads", "qualified_leads", True),
    ("costPerLead", "cost_per_lead", False),
    ("averageCallDuration", "average_call_duration", None),
    ("totalCost", "total_cost", None),
)


def _organization(rows: list[asyncpg.Record], campaign_id: UUID) -> tuple[s.OrganizationComparison, float | None]:
    mine = next((r for r in rows if r["campaign_id"] == campaign_id), None)
    out = []
    conversion_percentile = None
    for metric, column, higher in _ORG_METRICS:
        values = [
            float(r[column]) for r in rows if r[column] is not None and (r["total_calls"] or column == "total_cost")
        ]
        value = float(mine[column]) if mine is not None and mine[column] is not None else None
        percentile = None
        if value is not None and values and higher is not None and len(values) > 1:
            better_than = sum(1 for v in values if (v < value if higher else v > value))
            percentile = better_than / (len(values) - 1) if len(values) > 1 else None
        best = (max(values) if higher else min(values)) if values and higher is not None else None
        out.append(
            s.OrganizationMetric(
                metric=metric,
                value=value,
                organization_median=statistics.median(values) if values else None,
                organization_best=best,
                percentile=percentile,
            )
        )
        if metric == "conversionRate":
            conversion_percentile = percentile
    return s.OrganizationComparison(campaigns=len(rows), metrics=out), conversion_percentile


def _series_out(fc: Forecast) -> s.ForecastSeries:
    return s.ForecastSeries(
        method=fc.method,
        based_on_days=fc.based_on_days,
        slope_per_day=fc.slope_per_day,
        note=fc.note,
        points=[s.ForecastPoint(**p.__dict__) for p in fc.points],
    )


async def _forecasts(pool: asyncpg.Pool, info: CampaignInfo, now: datetime) -> s.Forecasts:
    today = periods.local_date(now, info.timezone)
    first_bucket = await repo.first_event_bucket(pool, info.id)
    if first_bucket is None:
        empty = Forecast("insufficient_data", 0, note="no data yet")
        return s.Forecasts(horizon_days=7, leads=_series_out(empty), cost=_series_out(empty))
    first = max(periods.local_date(first_bucket, info.timezone), today - timedelta(days=FORECAST_HISTORY_DAYS))
    days = [first + timedelta(days=k) for k in range((today - first).days)]  # complete days only
    rows = await repo.series(
        pool,
        info.id,
        periods.day_start(first, info.timezone),
        periods.day_start(today, info.timezone),
        info.timezone,
        "daily",
    )
    leads = [float((rows.get(d) or {}).get("leads") or 0) for d in days]
    cost = [metrics.money((rows.get(d) or {}).get("cost_micros") or 0) for d in days]
    last = today - timedelta(days=1)
    return s.Forecasts(
        horizon_days=7,
        leads=_series_out(forecast(leads, last_day=last)),
        cost=_series_out(forecast(cost, last_day=last)),
    )


async def _goals(
    pool: asyncpg.Pool, info: CampaignInfo, config: CampaignConfiguration, row: Row, now: datetime
) -> list[s.GoalProgress]:
    if not config.goals:
        return []
    _, schedule_end = schedule_bounds(config.schedule, info.timezone)
    campaign_start = row["started_at"] or row["created_at"]
    spans, windows = [], []
    for goal in config.goals:
        start, end = goal_rules.window(
            goal.timeframe, now=now, tz=info.timezone, campaign_start=campaign_start, campaign_end=schedule_end
        )
        spans.append((start, end))
        if goal.timeframe == GoalTimeframe.CAMPAIGN:
            # A campaign goal counts everything recorded for the campaign (backfilled events too).
            windows.append((info.id, _EPOCH, now + timedelta(minutes=10)))
        else:
            assert start is not None and end is not None  # only a campaign goal's window is open
            windows.append((info.id, start, end))
    sums = await repo.window_sums(pool, windows, goal_rules.SUMS)
    out = []
    for goal, (start, end), values in zip(config.goals, spans, sums, strict=True):
        current = goal_rules.value(goal.type, values)
        pace = goal_rules.pace(goal, current, start=start, end=end, now=now)
        out.append(
            s.GoalProgress(
                id=goal.id,
                type=goal.type.value,
                timeframe=goal.timeframe.value,
                target=goal.target,
                current=current,
                achieved=current >= goal.target,
                window_start=start,
                window_end=end,
                elapsed_ratio=pace.elapsed_ratio,
                expected_by_now=pace.expected_by_now,
                projected=pace.projected,
                on_track=pace.on_track,
                required_per_day=pace.required_per_day,
                message=pace.message,
            )
        )
    return out


async def _budget(
    pool: asyncpg.Pool, info: CampaignInfo, budget: CampaignBudget | None, row: Row, now: datetime
) -> s.BudgetStatus | None:
    if budget is None:
        return None
    spent = float(row["total_cost"] or 0)
    day_start, day_end = periods.today(now, info.timezone)
    today = metrics.money((await repo.sums(pool, info.id, day_start, day_end))["cost_micros"])
    recent = metrics.money(
        (await repo.sums(pool, info.id, now - timedelta(hours=3), now + timedelta(minutes=10)))["cost_micros"]
    )
    burn = recent / 3
    spend = BudgetSpend(total=spent, day=periods.local_date(now, info.timezone), today=today, at=now)
    exhausted = budget_rules.exhausted(budget, spend, now=now, tz=info.timezone)
    hours_left = []
    if budget.total is not None and burn > 0:
        hours_left.append(max(budget.total - spent, 0) / burn)
    if budget.daily is not None and burn > 0:
        hours_left.append(max(budget.daily - today, 0) / burn)
    return s.BudgetStatus(
        currency=budget.currency,
        total=budget.total,
        daily=budget.daily,
        spent=spent,
        spent_today=today,
        remaining=max(budget.total - spent, 0.0) if budget.total is not None else None,
        remaining_today=max(budget.daily - today, 0.0) if budget.daily is not None else None,
        used_ratio=spent / budget.total if budget.total else None,
        used_today_ratio=today / budget.daily if budget.daily else None,
        exhausted=exhausted,
        burn_rate_per_hour=burn,
        projected_exhaustion_at=(now + timedelta(hours=min(hours_left))) if hours_left and not exhausted else None,
    )


async def get_analytics(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    principal: Principal,
    campaign_id: UUID,
    timeframe: str | None,
    granularity: str | None,
    start: str | None,
    end: str | None,
    now: datetime | None = None,
) -> s.Analytics:
    """The full analytics report of one campaign over a period."""
    now = now or datetime.now(UTC)
    row = await campaign_row(pool, cache, principal, campaign_id)
    info = CampaignInfo.of(row)
    config = CampaignConfiguration.model_validate(row["config"])
    begin, stop, gran = resolve_period(
        timeframe=timeframe, granularity=granularity, start=start, end=end, tz=info.timezone, now=now
    )
    hours = (stop - begin).total_seconds() / 3600
    current = metrics.derive(await repo.sums(pool, info.id, begin, stop))
    previous_start = begin - (stop - begin)
    previous = metrics.derive(await repo.sums(pool, info.id, previous_start, begin))
    organization, conversion_percentile = _organization(
        await repo.organization_summaries(pool, info.organization_id), info.id
    )
    goals = await _goals(pool, info, config, row, now)
    budget = await _budget(pool, info, config.budget, row, now)

    budget_paces = []
    if budget is not None:
        burn = budget.burn_rate_per_hour
        midnight_hours = (periods.next_midnight(now, info.timezone) - now).total_seconds() / 3600
        _, schedule_end = schedule_bounds(config.schedule, info.timezone)
        if budget.total is not None:
            budget_paces.append(
                insight_rules.BudgetPace(
                    "total",
                    budget.total,
                    budget.spent,
                    budget.currency,
                    (budget.remaining or 0) / burn if burn > 0 else None,
                    (schedule_end - now).total_seconds() / 3600 if schedule_end and schedule_end > now else None,
                )
            )
        if budget.daily is not None:
            budget_paces.append(
                insight_rules.BudgetPace(
                    "daily",
                    budget.daily,
                    budget.spent_today,
                    budget.currency,
                    (budget.remaining_today or 0) / burn if burn > 0 else None,
                    midnight_hours,
                )
            )
    found, recommended = insight_rules.analyse(
        insight_rules.Context(
            current=current,
            previous=previous,
            period_hours=hours,
            kpis=config.kpis,
            max_call_duration=config.voice_settings.max_call_duration,
            goals=[
                insight_rules.GoalPace(
                    goal_id=g.id or "",
                    label=f"{g.target:g} {g.type} ({g.timeframe})",
                    metric=g.type,
                    current=g.current,
                    target=g.target,
                    projected=g.projected,
                    on_track=g.on_track,
                    message=g.message,
                )
                for g in goals
            ],
            budgets=budget_paces,
            conversion_percentile=conversion_percentile,
            organization_campaigns=organization.campaigns,
            currency=info.currency,
        )
    )
    return s.Analytics(
        campaign_id=str(info.id),
        currency=info.currency,
        period=s.Period(
            start=begin,
            end=stop,
            timeframe=None if start else (timeframe or "7d"),
            granularity=gran,
            timezone=info.timezone,
        ),
        performance=_performance(current, hours),
        trends=await _trends(pool, info, begin, stop, gran),
        comparisons=s.Comparisons(
            previous_period=s.PreviousPeriod(
                start=previous_start,
                end=begin,
                performance=_performance(previous, hours),
                changes=_changes(current, previous),
            ),
            organization=organization,
        ),
        forecasts=await _forecasts(pool, info, now),
        insights=[s.Insight(**i.__dict__) for i in found],
        recommendations=[s.Recommendation(**r.__dict__) for r in recommended],
        goals=goals,
        budget=budget,
        generated_at=now,
    )
