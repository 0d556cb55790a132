"""Insights and recommendations: what in a campaign's numbers deserves attention, and why.

The specification's rules, made sound, and more. Every insight names the metric and the
value that triggered it, and the threshold it was held against.

* Rates are judged only on enough data (`MIN_CALLS` calls behind them), and "low" means
  *significantly* low: the upper end of the 95% Wilson interval is below the benchmark
  (the campaign's KPI target when it has one, else the specification's 10%), not one
  unlucky afternoon.
* "Declining" compares this period with the previous one by a two-proportion z-test
  (p < 0.05), not the last two trend points (which the specification compared, so every
  noisy hour looked like a decline).
* Costs per lead are held against the KPI target or the specification's $50, critical
  beyond 1.5×.
* Each configured KPI with a target is checked in its direction (higher or lower is better).
* Call failures, calls running into the maximum duration, low satisfaction, a negative
  ROI, long waits, a low widget click-through rate, budgets running out, goals behind pace
  and a campaign in the bottom quarter of its organization each have a rule.

Recommendations are the actions those insights call for, most urgent first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats

from campaigns.domain.config import KPI, KpiMetric
from campaigns.domain.metrics import Figures

MIN_CALLS = 30
MIN_LEADS = 5
DEFAULT_CONVERSION_BENCHMARK = 0.10
DEFAULT_COST_PER_LEAD_BENCHMARK = 50.0
FAILURE_WARNING, FAILURE_CRITICAL = 0.05, 0.15

Severity = Literal["info", "warning", "critical"]
Impact = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class Insight:
    code: str
    type: Severity
    title: str
    description: str
    impact: Impact
    suggestion: str
    metric: str
    value: float
    threshold: float | None = None
    trend: Literal["increasing", "decreasing"] | None = None


@dataclass(frozen=True)
class Recommendation:
    code: str
    priority: int  # 1 first
    action: str
    reason: str
    metric: str
    value: float


@dataclass
class GoalPace:
    goal_id: str
    label: str  # "500 leads this week"
    metric: str
    current: float
    target: float
    projected: float | None
    on_track: bool | None
    message: str


@dataclass
class BudgetPace:
    cap: Literal["total", "daily"]
    limit: float
    spent: float
    currency: str
    exhausts_in_hours: float | None  # at the recent burn rate
    window_hours_left: float | None  # until local midnight (daily) or the schedule's end (total)


@dataclass
class Context:
    """Everything the rules look at."""

    current: Figures
    previous: Figures | None = None
    period_hours: float = 24.0
    kpis: list[KPI] = field(default_factory=list)
    max_call_duration: float | None = None
    goals: list[GoalPace] = field(default_factory=list)
    budgets: list[BudgetPace] = field(default_factory=list)
    conversion_percentile: float | None = None  # among the organization's campaigns
    organization_campaigns: int = 0
    currency: str = "USD"


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of H0: the two proportions are equal (pooled z-test)."""
    if not n1 or not n2:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def _target(kpis: list[KPI], metric: KpiMetric) -> float | None:
    for k in kpis:
        if k.metric == metric and k.target is not None:
            return k.target
    return None


def _pct(x: float) -> str:
    return f"{x:.1%}"


def analyse(ctx: Context) -> tuple[list[Insight], list[Recommendation]]:
    f = ctx.current
    out: list[Insight] = []
    money = lambda x: f"{x:,.2f} {ctx.currency}"  # noqa: E731

    # Conversion rate, significantly below the benchmark.
    benchmark = _target(ctx.kpis, KpiMetric.CONVERSION_RATE) or DEFAULT_CONVERSION_BENCHMARK
    if f.completed_calls >= MIN_CALLS and f.conversion_rate is not None:
        _, upper = wilson(f.conversions, f.completed_calls)
        if upper < benchmark:
            out.append(
                Insight(
                    "low_conversion_rate",
                    "warning",
                    "Low conversion rate",
                    f"Conversion rate is {_pct(f.conversion_rate)} over {f.completed_calls} completed calls; even the "
                    f"upper end of its 95% interval ({_pct(upper)}) is below the {_pct(benchmark)} benchmark.",
                    "high",
                    "Review the qualification criteria and the targeting; listen to calls that did not convert.",
                    "conversionRate",
                    f.conversion_rate,
                    benchmark,
                )
            )

    # Conversion rate against the previous period.
    p = ctx.previous
    if p is not None and f.completed_calls >= MIN_CALLS and p.completed_calls >= MIN_CALLS:
        pv = two_proportion_p(f.conversions, f.completed_calls, p.conversions, p.completed_calls)
        now_rate, before = f.conversion_rate or 0.0, p.conversion_rate or 0.0
        if pv < 0.05 and now_rate < before:
            out.append(
                Insight(
                    "conversion_rate_declining",
                    "warning",
                    "Conversion rate declining",
                    f"Conversion rate fell from {_pct(before)} to {_pct(now_rate)} against the previous period "
                    f"(p = {pv:.3f}).",
                    "medium",
                    "Compare recent call transcripts with earlier ones; check recent configuration changes.",
                    "conversionRate",
                    now_rate,
                    before,
                    "decreasing",
                )
            )
        elif pv < 0.05 and now_rate > before:
            out.append(
                Insight(
                    "conversion_rate_improving",
                    "info",
                    "Conversion rate improving",
                    f"Conversion rate rose from {_pct(before)} to {_pct(now_rate)} against the previous period "
                    f"(p = {pv:.3f}).",
                    "low",
                    "Find what changed and keep it; consider raising the budget while it works.",
                    "conversionRate",
                    now_rate,
                    before,
                    "increasing",
                )
            )

    # Cost per lead.
    cpl_benchmark = _target(ctx.kpis, KpiMetric.COST_PER_LEAD) or DEFAULT_COST_PER_LEAD_BENCHMARK
    if f.qualified_leads >= MIN_LEADS and f.cost_per_lead is not None and f.cost_per_lead > cpl_benchmark:
        critical = f.cost_per_lead > 1.5 * cpl_benchmark
        out.append(
            Insight(
                "high_cost_per_lead",
                "critical" if critical else "warning",
                "High cost per lead",
                f"Cost per lead ({money(f.cost_per_lead)}) exceeds the benchmark of {money(cpl_benchmark)}.",
                "high",
                "Shorten calls that will not qualify, review AI service costs, or tighten targeting.",
                "costPerLead",
                f.cost_per_lead,
                cpl_benchmark,
            )
        )

    # Call failures.
    if f.total_calls >= MIN_CALLS and f.call_failure_rate is not None and f.call_failure_rate >= FAILURE_WARNING:
        critical = f.call_failure_rate >= FAILURE_CRITICAL
        out.append(
            Insight(
                "high_call_failure_rate",
                "critical" if critical else "warning",
                "Calls are failing",
                f"{f.failed_calls} of {f.total_calls} calls failed ({_pct(f.call_failure_rate)}).",
                "high",
                "Check telephony and the voice pipeline's health; look at the failure reasons in the export.",
                "callFailureRate",
                f.call_failure_rate,
                FAILURE_CRITICAL if critical else FAILURE_WARNING,
            )
        )

    # Calls running into the maximum duration.
    if (
        ctx.max_call_duration
        and f.completed_calls >= MIN_CALLS
        and f.average_call_duration is not None
        and f.average_call_duration >= 0.9 * ctx.max_call_duration
    ):
        out.append(
            Insight(
                "calls_hit_max_duration",
                "warning",
                "Calls run into the maximum duration",
                f"The average call lasts {f.average_call_duration:.0f}s, close to the {ctx.max_call_duration:.0f}s limit: "
                "calls are probably being cut off.",
                "medium",
                "Raise voiceSettings.maxCallDuration or shorten the conversation flow.",
                "averageCallDuration",
                f.average_call_duration,
                ctx.max_call_duration,
            )
        )

    # Satisfaction.
    if f.customer_satisfaction is not None and f.satisfaction_responses >= 10 and f.customer_satisfaction < 3.5:
        out.append(
            Insight(
                "low_satisfaction",
                "critical" if f.customer_satisfaction < 3 else "warning",
                "Low customer satisfaction",
                f"Callers rate their calls {f.customer_satisfaction:.2f} of 5 on average "
                f"({f.satisfaction_responses} ratings).",
                "high",
                "Review the greeting, speaking style and handoff triggers; listen to low-rated calls.",
                "customerSatisfaction",
                f.customer_satisfaction,
                3.5,
            )
        )

    # Return on investment.
    if f.roi is not None and f.roi < 0:
        out.append(
            Insight(
                "negative_roi",
                "warning",
                "Spending more than it earns",
                f"Revenue {money(f.revenue)} against cost {money(f.total_cost)}: ROI {f.roi:.0%}.",
                "high",
                "Focus on the segments that convert, or lower the cost per call.",
                "roi",
                f.roi,
                0.0,
            )
        )

    # Waiting time.
    wait_target = _target(ctx.kpis, KpiMetric.AVERAGE_WAIT_TIME) or 60.0
    if f.average_wait_time is not None and f.started_calls >= MIN_CALLS and f.average_wait_time > wait_target:
        out.append(
            Insight(
                "long_wait_time",
                "warning",
                "Callers wait too long",
                f"Callers wait {f.average_wait_time:.0f}s on average before the AI answers (target {wait_target:.0f}s).",
                "medium",
                "Add capacity in the calling windows with the most traffic.",
                "averageWaitTime",
                f.average_wait_time,
                wait_target,
            )
        )

    # Widget click-through.
    if f.widget_impressions >= 100 and f.widget_click_through_rate is not None and f.widget_click_through_rate < 0.01:
        out.append(
            Insight(
                "low_widget_ctr",
                "info",
                "Few visitors click the widget",
                f"{_pct(f.widget_click_through_rate)} of {f.widget_impressions} widget impressions led to a click.",
                "low",
                "Try a clearer launcher text, another position, or showing it only on high-intent pages.",
                "widgetClickThroughRate",
                f.widget_click_through_rate,
                0.01,
            )
        )

    # KPIs with targets not already covered above.
    covered = {i.metric for i in out}
    for kpi in ctx.kpis:
        if kpi.target is None or kpi.metric.value in covered:
            continue
        actual = _kpi_value(f, kpi.metric, ctx.period_hours)
        if actual is None or not _enough_for(f, kpi.metric):
            continue
        higher = kpi.direction == "higher_is_better"
        if (higher and actual < kpi.target) or (not higher and actual > kpi.target):
            out.append(
                Insight(
                    f"kpi_off_target:{kpi.id or kpi.metric.value}",
                    "warning",
                    f"{kpi.name} off target",
                    f"{kpi.name} is {_fmt(actual, kpi.unit)}, {'below' if higher else 'above'} its target of "
                    f"{_fmt(kpi.target, kpi.unit)}.",
                    "medium",
                    f"Look at what drives {kpi.name.lower()}; the trends show when it moved.",
                    kpi.metric.value,
                    actual,
                    kpi.target,
                )
            )

    # Budgets.
    for b in ctx.budgets:
        used = b.spent / b.limit if b.limit else 0.0
        if used >= 1:
            continue  # the campaign is paused for it; the budget block says so
        horizon = b.window_hours_left if b.window_hours_left is not None else 72.0
        if b.exhausts_in_hours is not None and b.exhausts_in_hours < horizon:
            out.append(
                Insight(
                    f"budget_running_out:{b.cap}",
                    "warning",
                    f"{b.cap.capitalize()} budget running out",
                    f"{money(b.spent)} of {money(b.limit)} spent ({used:.0%}); at the current rate it runs out in "
                    f"{b.exhausts_in_hours:.1f} hours, before the {'day' if b.cap == 'daily' else 'campaign'} ends, "
                    "and the campaign will pause.",
                    "medium",
                    f"Raise budget.{b.cap} or lower the call rate if the campaign should keep running.",
                    "budgetUsedRatio",
                    used,
                    1.0,
                )
            )
        elif used >= 0.8:
            out.append(
                Insight(
                    f"budget_mostly_spent:{b.cap}",
                    "info",
                    f"{b.cap.capitalize()} budget mostly spent",
                    f"{money(b.spent)} of {money(b.limit)} spent ({used:.0%}).",
                    "low",
                    f"Raise budget.{b.cap} if the campaign should go on longer.",
                    "budgetUsedRatio",
                    used,
                    0.8,
                )
            )

    # Goals behind pace.
    for g in ctx.goals:
        if g.on_track is False:
            out.append(
                Insight(
                    f"goal_behind:{g.goal_id}",
                    "warning",
                    f"Behind on {g.label}",
                    g.message,
                    "medium",
                    "Raise the call rate or widen the audience to catch up.",
                    g.metric,
                    g.current,
                    g.target,
                )
            )

    # The organization's bottom quarter.
    if (
        ctx.conversion_percentile is not None
        and ctx.organization_campaigns >= 4
        and ctx.conversion_percentile < 0.25
        and f.completed_calls >= MIN_CALLS
    ):
        out.append(
            Insight(
                "bottom_quartile_conversion",
                "info",
                "Among the organization's weakest converters",
                f"Its conversion rate ({_pct(f.conversion_rate or 0)}) is lower than {1 - ctx.conversion_percentile:.0%} "
                f"of the organization's {ctx.organization_campaigns} campaigns.",
                "medium",
                "Compare its configuration with the best-converting campaign (clone it and A/B test).",
                "conversionRate",
                f.conversion_rate or 0.0,
                ctx.conversion_percentile,
            )
        )

    order = {"critical": 0, "warning": 1, "info": 2}
    out.sort(key=lambda i: (order[i.type], {"high": 0, "medium": 1, "low": 2}[i.impact]))
    recommendations = [
        Recommendation(
            code=i.code,
            priority=rank,
            action=i.suggestion,
            reason=f"{i.title}: {i.metric} is {_plain(i.value)}"
            + (f" (threshold {_plain(i.threshold)})" if i.threshold is not None else ""),
            metric=i.metric,
            value=i.value,
        )
        for rank, i in enumerate((i for i in out if i.type != "info" or i.trend is None), start=1)
    ]
    return out, recommendations


def _enough_for(f: Figures, metric: KpiMetric) -> bool:
    needs_calls = {
        KpiMetric.ANSWER_RATE,
        KpiMetric.CONNECT_RATE,
        KpiMetric.QUALIFICATION_RATE,
        KpiMetric.CONVERSION_RATE,
        KpiMetric.AVERAGE_CALL_DURATION,
        KpiMetric.COST_PER_CALL,
    }
    if metric in needs_calls:
        return f.total_calls >= MIN_CALLS
    if metric == KpiMetric.COST_PER_LEAD:
        return f.qualified_leads >= MIN_LEADS
    if metric == KpiMetric.CUSTOMER_SATISFACTION:
        return f.satisfaction_responses >= 10
    if metric == KpiMetric.WIDGET_CLICK_THROUGH_RATE:
        return f.widget_impressions >= 100
    return True


def _kpi_value(f: Figures, metric: KpiMetric, period_hours: float) -> float | None:
    M = KpiMetric
    values = {
        M.TOTAL_CALLS: f.total_calls,
        M.ANSWER_RATE: f.answer_rate,
        M.CONNECT_RATE: f.connect_rate,
        M.QUALIFICATION_RATE: f.qualification_rate,
        M.CONVERSION_RATE: f.conversion_rate,
        M.AVERAGE_CALL_DURATION: f.average_call_duration,
        M.AVERAGE_WAIT_TIME: f.average_wait_time,
        M.COST_PER_LEAD: f.cost_per_lead,
        M.COST_PER_CALL: f.cost_per_call,
        M.CALLS_PER_HOUR: f.total_calls / period_hours if period_hours else None,
        M.CUSTOMER_SATISFACTION: f.customer_satisfaction,
        M.REVENUE: f.revenue,
        M.ROI: f.roi,
        M.WIDGET_CLICK_THROUGH_RATE: f.widget_click_through_rate,
    }
    v = values.get(metric)
    return float(v) if v is not None else None


def _fmt(x: float, unit: str) -> str:
    if unit == "ratio":
        return _pct(x)
    if unit == "seconds":
        return f"{x:.0f}s"
    if unit == "per_hour":
        return f"{x:.1f}/h"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def _plain(x: float) -> str:
    return f"{x:.4g}"
