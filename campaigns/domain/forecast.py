"""Forecasts of a daily series (leads, cost) with prediction intervals.

From the complete local days so far (today, being partial, is left out):

* at least 7 days and a trend that is significant (slope p < 0.05): an ordinary
  least-squares line; the interval at day x0 is ŷ ± t(n−2) · s · √(1 + 1/n + (x0 − x̄)²/Sxx);
* otherwise (or 3–6 days): the mean, with ŷ ± t(n−1) · s · √(1 + 1/n);
* fewer than 3 days: no forecast, and the answer says so.

Values and bounds are floored at 0 (a count or a cost cannot go negative). The intervals
are for one future day each (prediction, not confidence, intervals): 80% and 95%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from scipy import stats

MIN_DAYS = 3
TREND_DAYS = 7


@dataclass(frozen=True)
class Point:
    date: date
    value: float
    lower80: float
    upper80: float
    lower95: float
    upper95: float


@dataclass
class Forecast:
    method: str  # "linear_trend", "mean", "insufficient_data"
    based_on_days: int
    points: list[Point] = field(default_factory=list)
    slope_per_day: float | None = None
    note: str | None = None


def forecast(history: list[float], *, last_day: date, horizon: int = 7) -> Forecast:
    """Forecast the `horizon` days after `last_day`, the day of history's last value."""
    n = len(history)
    if n < MIN_DAYS:
        return Forecast("insufficient_data", n, note=f"needs at least {MIN_DAYS} complete days of data")
    y = np.asarray(history, dtype=float)
    x = np.arange(n, dtype=float)
    method, slope = "mean", None
    if n >= TREND_DAYS and np.ptp(y) > 0:
        fit = stats.linregress(x, y)
        if fit.pvalue < 0.05:
            method, slope = "linear_trend", float(fit.slope)
            intercept = float(fit.intercept)
            residuals = y - (intercept + slope * x)
            dof = n - 2
            s = math.sqrt(float(residuals @ residuals) / dof)
            sxx = float(((x - x.mean()) ** 2).sum())

            def predict(x0: float) -> tuple[float, float]:
                return intercept + slope * x0, s * math.sqrt(1 + 1 / n + (x0 - x.mean()) ** 2 / sxx)

    if method == "mean":
        dof = n - 1
        mean = float(y.mean())
        s = float(y.std(ddof=1)) if n > 1 else 0.0

        def predict(x0: float) -> tuple[float, float]:  # noqa: ARG001 - same for every day
            return mean, s * math.sqrt(1 + 1 / n)

    t80, t95 = float(stats.t.ppf(0.90, dof)), float(stats.t.ppf(0.975, dof))
    points = []
    for h in range(1, horizon + 1):
        value, se = predict(n - 1 + h)
        points.append(
            Point(
                date=last_day + timedelta(days=h),
                value=max(value, 0.0),
                lower80=max(value - t80 * se, 0.0),
                upper80=max(value + t80 * se, 0.0),
                lower95=max(value - t95 * se, 0.0),
                upper95=max(value + t95 * se, 0.0),
            )
        )
    return Forecast(method, n, points, slope)
