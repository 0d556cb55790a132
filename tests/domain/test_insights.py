"""Insight rules: each names its metric, value and threshold, and judges only on enough data."""

from __future__ import annotations

import pytest

from campaigns.domain import insights, metrics
from campaigns.domain.config import KPI, KpiMetric
from campaigns.domain.insights import (
    BudgetPace,
    Context,
    GoalPace,
    analyse,
    two_proportion_p,
    wilson,
)


def figures(completed=0, connected=None, conversions=0, leads=0, cost=0.0, failed=0, duration=60.0,
            satisfaction=None, revenue=0.0) -> metrics.Figures:
    connected = completed if connected is None else connected
    sums = {"calls_completed": completed, "calls_connected": connected, "calls_failed": failed, "leads": leads,
            "conversions": conversions, "cost_micros": cost * 1e6, "revenue_micros": revenue * 1e6,
            "duration_sum": duration * completed}
    if satisfaction is not None:
        sums.update(satisfaction_count=20, satisfaction_sum=satisfaction * 20)
    return metrics.derive(sums)


def codes(ctx: Context) -> dict[str, insights.Insight]:
    return {i.code: i for i in analyse(ctx)[0]}


def test_statistics():
    assert wilson(0, 70)[1] == pytest.approx(0.0521, abs=1e-3)
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)
    assert two_proportion_p(30, 100, 20, 100) == pytest.approx(0.1025, abs=1e-3)  # z = 1.633
    assert two_proportion_p(0, 0, 1, 1) == 1.0


def test_a_low_conversion_rate_needs_evidence():
    assert "low_conversion_rate" not in codes(Context(figures(completed=10, conversions=0)))  # too few calls
    assert "low_conversion_rate" not in codes(Context(figures(completed=40, conversions=3)))  # 7.5%, not sure
    found = codes(Context(figures(completed=200, conversions=4)))["low_conversion_rate"]
    assert found.metric == "conversionRate" and found.value == 0.02 and found.threshold == 0.1
    kpi = KPI(name="Conv", metric=KpiMetric.CONVERSION_RATE, target=0.01, unit="ratio")
    assert "low_conversion_rate" not in codes(Context(figures(completed=200, conversions=4), kpis=[kpi]))


def test_a_decline_is_tested_against_the_previous_period():
    now, before = figures(completed=500, conversions=25), figures(completed=500, conversions=60)
    declining = codes(Context(now, previous=before))["conversion_rate_declining"]
    assert declining.trend == "decreasing" and declining.value == 0.05 and declining.threshold == 0.12
    noisy = figures(completed=500, conversions=55)
    assert "conversion_rate_declining" not in codes(Context(noisy, previous=before))


def test_costs_failures_duration_satisfaction_and_roi():
    found = codes(Context(figures(completed=100, leads=10, cost=1000, failed=30, duration=590, satisfaction=2.5,
                                  revenue=500), max_call_duration=600))
    assert found["high_cost_per_lead"].type == "critical" and found["high_cost_per_lead"].value == 100
    assert found["high_call_failure_rate"].type == "critical"
    assert found["calls_hit_max_duration"].threshold == 600
    assert found["low_satisfaction"].value == 2.5 and found["negative_roi"].value == -0.5


def test_kpis_in_their_direction():
    kpis = [KPI(id="c", name="Connect rate", metric=KpiMetric.CONNECT_RATE, target=0.5, unit="ratio"),
            KPI(id="d", name="Duration", metric=KpiMetric.AVERAGE_CALL_DURATION, target=120, unit="seconds",
                direction="lower_is_better")]
    found = codes(Context(figures(completed=100, connected=30, duration=200), kpis=kpis))
    assert found["kpi_off_target:c"].value == 0.3 and "below its target of 50.0%" in found["kpi_off_target:c"].description
    assert found["kpi_off_target:d"].value == 200 and "above" in found["kpi_off_target:d"].description


def test_budgets_and_goals():
    ctx = Context(figures(), budgets=[BudgetPace("daily", 100, 70, "EUR", 2.0, 5.0),
                                      BudgetPace("total", 1000, 850, "EUR", None, None)],
                  goals=[GoalPace("g", "500 leads (weekly)", "leads", 100, 500, 200, False, "Behind…")])
    found = codes(ctx)
    assert found["budget_running_out:daily"].value == 0.7
    assert found["budget_mostly_spent:total"].value == 0.85
    assert found["goal_behind:g"].metric == "leads" and found["goal_behind:g"].threshold == 500


def test_recommendations_follow_the_insights_most_urgent_first():
    found, recommended = analyse(Context(figures(completed=200, conversions=4, leads=10, cost=1000)))
    assert [r.priority for r in recommended] == list(range(1, len(recommended) + 1))
    assert recommended[0].code == "high_cost_per_lead" and "costPerLead is 100" in recommended[0].reason
    assert {r.code for r in recommended} <= {i.code for i in found}
