"""Per-variant estimates and their variances, from sufficient statistics, and the classical
(fixed-horizon) comparison of a variant with control.

Sufficient statistics and estimates
-----------------------------------
Proportion (conversion rate, qualification rate): x successes among n units.

    p̂ = x / n                      Var(p̂) = p̂ (1 − p̂) / n

Mean (revenue per call, call duration): n units with S = Σ yᵢ and Q = Σ yᵢ².

    ȳ = S / n    s² = (Q − S²/n) / (n − 1)    Var(ȳ) = s² / n

Ratio of totals (cost per lead), by the delta method: m independent units j, each with a
numerator total yⱼ and a denominator total xⱼ; given Σy, Σx, Σy², Σx², Σxy.

    R̂ = Σy / Σx                     x̄ = Σx / m
    s_y² = (Σy² − (Σy)²/m) / (m − 1),  s_x² likewise,  s_xy = (Σxy − Σx Σy / m) / (m − 1)
    Var(R̂) ≈ (s_y² − 2 R̂ s_xy + R̂² s_x²) / (m x̄²)

The last line is the first-order Taylor expansion of f(ȳ, x̄) = ȳ / x̄ around the means,
∇f = (1/x̄, −ȳ/x̄²), so Var ≈ ∇fᵀ Σ ∇f / m. Units are whatever the caller aggregates by;
the platform uses each 15-minute slot of a variant's traffic (see `catalogue`), which also
absorbs any correlation between the events of one call or one slot.

A variant against control
-------------------------
Treatment t and control c are independent samples, so for any kind of metric

    Δ = θ̂_t − θ̂_c                    Var(Δ) = V_t + V_c
    ρ = θ̂_t / θ̂_c − 1                Var(ρ) ≈ V_t / θ̂_c² + θ̂_t² V_c / θ̂_c⁴     (delta method)

Fixed-horizon tests, valid once, at the sample size planned in advance:

- proportions: the pooled two-proportion z-test, p̄ = (x_t + x_c) / (n_t + n_c),
  z = Δ / √(p̄ (1 − p̄) (1/n_t + 1/n_c)), p = 2 Φ(−|z|) (identical to Pearson's chi-square on
  the 2×2 table without continuity correction); the interval is Wald's, Δ ± z_{1−α/2} √(V_t + V_c);
- means: Welch's t-test, t = Δ / √(V_t + V_c) with
  ν = (V_t + V_c)² / (V_t² / (n_t − 1) + V_c² / (n_c − 1)) degrees of freedom,
  interval Δ ± t_{ν, 1−α/2} √(V_t + V_c);
- ratios: the z-test on the delta-method variance, interval Δ ± z_{1−α/2} √(V_t + V_c).

The relative lift's interval is ρ ± z_{1−α/2} √Var(ρ) in every case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special


@dataclass(frozen=True)
class Proportion:
    n: float
    x: float


@dataclass(frozen=True)
class Mean:
    n: float
    sum: float
    sumsq: float


@dataclass(frozen=True)
class Ratio:
    """Totals over m units of a numerator y and a denominator x (see the module docstring)."""

    m: float
    sy: float
    sx: float
    syy: float
    sxx: float
    sxy: float


Stats = Proportion | Mean | Ratio


@dataclass(frozen=True)
class Estimate:
    """A variant's value of a metric, the variance of that value, and how many units made it.
    `value` is None while the metric is undefined (no units, or a ratio with no denominator)."""

    value: float | None
    variance: float | None
    n: float

    @property
    def standard_error(self) -> float | None:
        return math.sqrt(self.variance) if self.variance is not None else None

    @property
    def usable(self) -> bool:
        """Enough to compare: a value and a finite, non-negative variance."""
        return self.value is not None and self.variance is not None and math.isfinite(self.variance)

    def parts(self) -> tuple[float, float]:
        """(value, variance) of a usable estimate."""
        assert self.value is not None and self.variance is not None, "the estimate is not usable"
        return self.value, self.variance


def estimate(stats: Stats) -> Estimate:
    if isinstance(stats, Proportion):
        return proportion(stats)
    if isinstance(stats, Mean):
        return mean(stats)
    return ratio(stats)


def proportion(s: Proportion) -> Estimate:
    if s.n <= 0:
        return Estimate(None, None, 0)
    p = min(max(s.x / s.n, 0.0), 1.0)
    return Estimate(p, p * (1 - p) / s.n, s.n)


def sample_variance(n: float, total: float, squares: float) -> float | None:
    """s² from n, Σy and Σy² (None below two observations). Clamped at 0: the subtraction
    can go slightly negative in floating point when every value is the same."""
    if n < 2:
        return None
    return max((squares - total * total / n) / (n - 1), 0.0)


def mean(s: Mean) -> Estimate:
    if s.n <= 0:
        return Estimate(None, None, 0)
    value = s.sum / s.n
    var = sample_variance(s.n, s.sum, s.sumsq)
    return Estimate(value, var / s.n if var is not None else None, s.n)


def ratio(s: Ratio) -> Estimate:
    if s.m <= 0 or s.sx <= 0:
        return Estimate(None, None, s.m)
    r = s.sy / s.sx
    if s.m < 2:
        return Estimate(r, None, s.m)
    m = s.m
    xbar = s.sx / m
    var_y = (s.syy - s.sy * s.sy / m) / (m - 1)
    var_x = (s.sxx - s.sx * s.sx / m) / (m - 1)
    cov = (s.sxy - s.sx * s.sy / m) / (m - 1)
    linearized = max(var_y - 2 * r * cov + r * r * var_x, 0.0)
    return Estimate(r, linearized / (m * xbar * xbar), m)


# --- A variant against control -------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float

    def excludes(self, value: float) -> bool:
        return value < self.lower or value > self.upper


def difference(t: Estimate, c: Estimate) -> tuple[float, float]:
    """(Δ, Var Δ) of two usable estimates."""
    assert t.usable and c.usable
    (tv, tvar), (cv, cvar) = t.parts(), c.parts()
    return tv - cv, tvar + cvar


def relative(t: Estimate, c: Estimate) -> tuple[float, float] | None:
    """(ρ, Var ρ) by the delta method; None when control's value is 0 (no relative lift)."""
    assert t.usable and c.usable
    if c.value == 0:
        return None
    (tc, tvar), (cc, cvar) = t.parts(), c.parts()
    return tc / cc - 1, tvar / cc**2 + tc**2 * cvar / cc**4


def z_quantile(level: float) -> float:
    """z_{(1+level)/2}: the two-sided normal critical value for a confidence level."""
    return float(special.ndtri(0.5 + level / 2))


def two_sided_p(z: float) -> float:
    return float(2 * special.ndtr(-abs(z)))


@dataclass(frozen=True)
class FixedTest:
    """The classical comparison: p-value and intervals (absolute, and relative when defined)."""

    p_value: float
    absolute: Interval
    relative: Interval | None
    statistic: float
    df: float | None = None  # Welch's degrees of freedom (means)


def fixed_test(t_stats: Stats, c_stats: Stats, t: Estimate, c: Estimate, level: float) -> FixedTest | None:
    """Compare treatment with control at confidence `level`; None if either is not usable."""
    if not (t.usable and c.usable):
        return None
    delta, var = difference(t, c)
    se = math.sqrt(var)
    z = z_quantile(level)
    df = None
    if isinstance(t_stats, Proportion) and isinstance(c_stats, Proportion):
        pooled = (t_stats.x + c_stats.x) / (t_stats.n + c_stats.n)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / t_stats.n + 1 / c_stats.n))
        stat = delta / se0 if se0 > 0 else 0.0
        p = two_sided_p(stat) if se0 > 0 else 1.0
        half = z * se
    elif isinstance(t_stats, Mean) and isinstance(c_stats, Mean):
        stat, p, df = welch(t, c)
        half = float(special.stdtrit(df, 0.5 + level / 2)) * se if df is not None else z * se
    else:
        stat = delta / se if se > 0 else 0.0
        p = two_sided_p(stat) if se > 0 else 1.0
        half = z * se
    absolute = Interval(delta, delta - half, delta + half)
    rel = relative(t, c)
    rel_interval = None
    if rel is not None:
        half_r = z * math.sqrt(rel[1])
        rel_interval = Interval(rel[0], rel[0] - half_r, rel[0] + half_r)
    return FixedTest(p, absolute, rel_interval, stat, df)


def welch(t: Estimate, c: Estimate) -> tuple[float, float, float | None]:
    """Welch's t statistic, two-sided p-value and degrees of freedom."""
    vt, vc = t.variance, c.variance
    assert vt is not None and vc is not None and t.value is not None and c.value is not None
    var = vt + vc
    if var <= 0:
        return 0.0, 1.0, None
    stat = (t.value - c.value) / math.sqrt(var)
    denom = (vt * vt / (t.n - 1) if t.n > 1 else 0.0) + (vc * vc / (c.n - 1) if c.n > 1 else 0.0)
    df = var * var / denom if denom > 0 else None
    if df is None:
        return stat, two_sided_p(stat), None
    return stat, float(2 * special.stdtr(df, -abs(stat))), df
