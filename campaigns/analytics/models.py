"""Response shapes of the analytics endpoints (camelCase JSON)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from campaigns.campaigns.models import CostBreakdown
from campaigns.domain.base import ResponseModel


class RealTimeMetrics(ResponseModel):
    """Today (in the campaign's timezone) so far, and the calls in progress."""

    campaign_id: str
    timezone: str
    day: date = Field(description="The campaign's local date 'today' refers to")
    currency: str
    active_calls: int = Field(description="Calls started and not yet finished")
    today_calls: int = Field(description="Calls finished today (completed + failed)")
    today_completed_calls: int
    today_connected_calls: int
    today_leads: int
    today_conversions: int
    today_cost: float
    today_revenue: float
    conversion_rate: float | None = Field(description="Today's conversions per completed call")
    average_wait_time: float | None = Field(description="Seconds callers waited before the AI answered, today")
    average_call_duration: float | None
    call_failure_rate: float | None
    system_health: Literal["healthy", "degraded", "critical", "idle"] = Field(
        description="From today's call failure rate: below 5% healthy, below 15% degraded, else critical; "
        "idle without calls today"
    )
    last_updated: datetime | None = Field(description="When these counters last changed")


class Performance(ResponseModel):
    """Every figure of the period; rates are null where their denominator is zero."""

    total_calls: int
    completed_calls: int
    connected_calls: int
    failed_calls: int
    qualified_leads: int
    conversions: int
    conversion_rate: float | None
    qualification_rate: float | None
    connect_rate: float | None
    answer_rate: float | None
    call_failure_rate: float | None
    average_call_duration: float | None
    average_wait_time: float | None
    average_lead_score: float | None
    calls_per_hour: float
    total_cost: float
    cost_by_category: CostBreakdown
    cost_per_lead: float | None
    cost_per_call: float | None
    cost_per_conversion: float | None
    revenue: float
    roi: float | None = Field(description="(revenue − cost) / cost; null without cost or without revenue")
    customer_satisfaction: float | None = Field(description="Mean rating 1–5, where calls report one")
    satisfaction_responses: int
    widget_impressions: int
    widget_clicks: int
    widget_click_through_rate: float | None
    average_display_time_ms: float | None


class TrendPoint(ResponseModel):
    period: str = Field(description="Local date (daily) or local date-time with offset (hourly)")
    start: datetime
    end: datetime
    calls: int
    completed_calls: int
    connected_calls: int
    leads: int
    conversions: int
    revenue: float
    cost: float
    conversion_rate: float | None
    average_call_duration: float | None
    cost_per_lead: float | None


class MetricChange(ResponseModel):
    metric: str
    current: float | None
    previous: float | None
    change: float | None = Field(description="current − previous")
    change_ratio: float | None = Field(description="(current − previous) / previous")


class PreviousPeriod(ResponseModel):
    start: datetime
    end: datetime
    performance: Performance
    changes: list[MetricChange]


class OrganizationMetric(ResponseModel):
    metric: str
    value: float | None
    organization_median: float | None
    organization_best: float | None
    percentile: float | None = Field(description="Share of the organization's campaigns this one does better than")


class OrganizationComparison(ResponseModel):
    """Lifetime figures of the organization's campaigns (not archived), from the summary."""

    campaigns: int
    metrics: list[OrganizationMetric]


class Comparisons(ResponseModel):
    previous_period: PreviousPeriod
    organization: OrganizationComparison


class ForecastPoint(ResponseModel):
    date: date
    value: float
    lower80: float
    upper80: float
    lower95: float
    upper95: float


class ForecastSeries(ResponseModel):
    method: Literal["linear_trend", "mean", "insufficient_data"]
    based_on_days: int
    slope_per_day: float | None
    note: str | None
    points: list[ForecastPoint]


class Forecasts(ResponseModel):
    horizon_days: int
    leads: ForecastSeries
    cost: ForecastSeries


class Insight(ResponseModel):
    code: str
    type: Literal["info", "warning", "critical"]
    title: str
    description: str
    impact: Literal["low", "medium", "high"]
    suggestion: str
    metric: str
    value: float
    threshold: float | None
    trend: Literal["increasing", "decreasing"] | None


class Recommendation(ResponseModel):
    code: str
    priority: int
    action: str
    reason: str
    metric: str
    value: float


class GoalProgress(ResponseModel):
    id: str | None
    type: str
    timeframe: str
    target: float
    current: float
    achieved: bool
    window_start: datetime | None
    window_end: datetime | None
    elapsed_ratio: float | None
    expected_by_now: float | None
    projected: float | None = Field(description="At the rate so far, by the end of the window")
    on_track: bool | None
    required_per_day: float | None
    message: str


class BudgetStatus(ResponseModel):
    currency: str
    total: float | None
    daily: float | None
    spent: float
    spent_today: float
    remaining: float | None
    remaining_today: float | None
    used_ratio: float | None
    used_today_ratio: float | None
    exhausted: Literal["total", "daily"] | None
    burn_rate_per_hour: float = Field(description="Spend per hour over the last three hours")
    projected_exhaustion_at: datetime | None


class Period(ResponseModel):
    start: datetime
    end: datetime
    timeframe: str | None
    granularity: Literal["hourly", "daily"]
    timezone: str


class Analytics(ResponseModel):
    campaign_id: str
    currency: str
    period: Period
    performance: Performance
    trends: list[TrendPoint]
    comparisons: Comparisons
    forecasts: Forecasts
    insights: list[Insight]
    recommendations: list[Recommendation]
    goals: list[GoalProgress]
    budget: BudgetStatus | None
    generated_at: datetime
