"""Daily forecasts and their prediction intervals."""

from __future__ import annotations

from datetime import date

import pytest

from campaigns.domain.forecast import forecast

DAY = date(2026, 5, 1)


def test_too_little_history():
    f = forecast([3, 4], last_day=DAY)
    assert f.method == "insufficient_data" and f.points == [] and "3" in f.note


def test_the_mean_with_a_t_interval():
    f = forecast([10, 12, 9, 11, 13], last_day=DAY)
    assert f.method == "mean" and len(f.points) == 7 and f.points[0].date == date(2026, 5, 2)
    p = f.points[0]
    # s = 1.5811, se = s·√(1 + 1/5) = 1.7321, t(0.975, 4) = 2.7764
    assert p.value == 11 and p.upper95 == pytest.approx(11 + 2.7764 * 1.7321, abs=1e-3)
    assert p.lower95 < p.lower80 < p.value < p.upper80 < p.upper95


def test_a_significant_trend_is_extrapolated_and_widens():
    history = [5, 7, 8, 10, 13, 14, 16, 18, 19, 22]
    f = forecast(history, last_day=DAY)
    assert f.method == "linear_trend" and f.slope_per_day == pytest.approx(1.85, abs=0.1)
    assert f.points[0].value > history[-1] and f.points[-1].value > f.points[0].value
    widths = [p.upper95 - p.lower95 for p in f.points]
    assert widths == sorted(widths)


def test_no_trend_means_the_mean_and_nothing_goes_below_zero():
    assert forecast([5, 1, 6, 0, 5, 1, 6, 0], last_day=DAY).method == "mean"
    falling = forecast([30, 25, 20, 15, 10, 5, 1], last_day=DAY)
    assert all(p.value >= 0 and p.lower95 >= 0 for p in falling.points)
    assert falling.points[-1].value == 0
