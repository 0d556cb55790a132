"""What each event contributes, and the figures derived from the sums."""

from __future__ import annotations

import math

import pytest

from campaigns.domain import metrics


def vector(*events: tuple[str, dict]) -> dict:
    v = metrics.zero()
    for type_, data in events:
        metrics.accumulate(v, type_, data)
    return metrics.to_sparse(v)


def test_contributions():
    assert vector(("call.completed", {"durationSec": 30, "outcome": "transferred", "satisfaction": 4})) == {
        "calls_completed": 1, "calls_connected": 1, "duration_sum": 30, "duration_sq": 900,
        "satisfaction_count": 1, "satisfaction_sum": 4, "satisfaction_sq": 16,
    }
    assert vector(("call.completed", {"durationSec": 0, "outcome": "voicemail"})) == {"calls_completed": 1}
    assert vector(("call.started", {})) == {"calls_started": 1}
    assert vector(("call.started", {"waitSec": 3})) == {"calls_started": 1, "wait_count": 1, "wait_sum": 3, "wait_sq": 9}
    assert vector(("cost", {"amount": 0.1, "category": "tts"}), ("cost", {"amount": 0.2, "category": "tts"})) == {
        "cost_micros": 300_000, "cost_tts_micros": 300_000,  # exact, unlike 0.1 + 0.2
    }
    assert vector(("conversion", {})) == {"conversions": 1}
    assert vector(("widget.display", {"ms": 100}))["display_ms_sq"] == 10_000
    assert vector(("unknown.type", {"x": 1})) == {}


def test_figures_from_sums():
    sums = vector(
        ("call.completed", {"durationSec": 60, "outcome": "connected"}),
        ("call.completed", {"durationSec": 20, "outcome": "no_answer"}),
        ("call.failed", {"reason": "x"}),
        ("lead.qualified", {"score": 80}),
        ("conversion", {"revenue": 30}),
        ("cost", {"amount": 20, "category": "llm"}),
        ("widget.impression", {}), ("widget.impression", {}), ("widget.click", {}),
    )
    f = metrics.derive(sums)
    assert (f.total_calls, f.completed_calls, f.connected_calls, f.failed_calls) == (3, 2, 1, 1)
    assert f.connect_rate == pytest.approx(1 / 3) and f.answer_rate == 0.5 and f.conversion_rate == 0.5
    assert f.qualification_rate == 1.0 and f.call_failure_rate == pytest.approx(1 / 3)
    assert f.average_call_duration == 40 and f.cost_per_lead == 20 and f.cost_per_call == pytest.approx(20 / 3)
    assert f.revenue == 30 and f.roi == 0.5 and f.cost_by_category["llm"] == 20
    assert f.widget_click_through_rate == 0.5 and f.customer_satisfaction is None and f.average_wait_time is None


def test_nothing_divided_by_nothing_is_unknown():
    f = metrics.derive({})
    assert f.conversion_rate is None and f.cost_per_lead is None and f.roi is None and f.total_cost == 0
    assert metrics.derive(vector(("cost", {"amount": 5, "category": "other"}))).roi is None  # no revenue reported


def test_standard_deviation_from_sufficient_statistics():
    xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    sd = metrics.stddev(len(xs), sum(xs), sum(x * x for x in xs))
    mean = sum(xs) / len(xs)
    assert sd == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)))
    assert metrics.stddev(1, 3, 9) is None


def test_the_sql_covers_every_metric():
    sql = metrics.sql_select_list()
    assert all(f" AS {name}" in sql for name in metrics.NAMES)
