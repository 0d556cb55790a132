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

Fixed-horizon tests, valid once, at the sample size planned in advance. The test and its
interval use the same variance V_t + V_c and the same critical value, so the interval
excludes 0 exactly when p ≤ 1 − level (`agree_half_width` settles floating-point ties):

- proportions: the unpooled (Wald) two-proportion z-test, z = Δ / √(V_t + V_c),
  p = 2 Φ(−|z|), interval Δ ± z_{1−γ/2} √(V_t + V_c). (The pooled test, Pearson's chi-square,
  uses a different variance from its interval and can disagree with it: 200/2000 against
  66/500 has pooled p = 0.038 but a Wald interval [−0.00045, +0.0645].)
- means: Welch's t-test, t = Δ / √(V_t + V_c) with
  ν = (V_t + V_c)² / (V_t² / (n_t − 1) + V_c² / (n_c − 1)) degrees of freedom,
  interval Δ ± t_{ν, 1−γ/2} √(V_t + V_c);
- ratios: the z-test on the delta-method variance, interval Δ ± z_{1−γ/2} √(V_t + V_c).

The relative lift ρ − 1, ρ = θ_t / θ_c, by Fieller's method with the same critical value
c (z, or Welch's t_ν for means): the ratios ρ that the same test would not reject for
θ_t − ρ θ_c = 0,

    {ρ : (θ̂_t − ρ θ̂_c)² ≤ c² (V_t + ρ² V_c)}

that is, with A = θ̂_c² − c² V_c, B = θ̂_t θ̂_c, C = θ̂_t² − c² V_t, the roots of
A ρ² − 2 B ρ + C = 0:

    ρ_upper = (B + √(B² − AC)) / A        ρ_lower = C / (B + √(B² − AC))

(the second form avoids cancellation), with B² − AC = c² (θ̂_t² V_c + θ̂_c² V_t − c² V_t V_c).
At ρ = 1 the condition is Δ² ≤ c² (V_t + V_c), the absolute interval's: the relative interval
excludes 0 exactly when the absolute one does. When A > 0 and C > 0 (each variant's value is
distinguishable from 0 at c) the set is a bounded interval within (0, ∞), so the relative
lift's bounds stay above −100 %, and it contains the point estimate ρ̂ − 1. Otherwise the set
is unbounded (or reaches 0) and the relative lift is reported as undefined. Unlike the delta
method's symmetric ρ̂ ± c √Var(ρ̂), Fieller's interval is skewed the way a ratio is: an
estimate of +43.7 % from few conversions gets an interval such as [+2 %, +110 %], never one
that crosses 0 while the absolute interval does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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


def z_quantile(level: float) -> float:
    """z_{(1+level)/2}: the two-sided normal critical value for a confidence level."""
    return float(special.ndtri(0.5 + level / 2))


def two_sided_p(z: float) -> float:
    return float(2 * special.ndtr(-abs(z)))


def fieller(t_value, t_var, c_value, c_var, crit) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's interval (lower, upper) for θ_t / θ_c at critical value(s) `crit` (see the
    module docstring); NaN where the set is not a bounded interval within (0, ∞)."""
    c2 = np.square(np.asarray(crit, dtype=float))
    a = c_value * c_value - c2 * c_var
    b = t_value * c_value
    cc = t_value * t_value - c2 * t_var
    ok = (a > 0) & (cc > 0) & (b > 0)
    root = np.sqrt(np.maximum(c2 * (t_value * t_value * c_var + c_value * c_value * t_var - c2 * t_var * c_var), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(ok, (b + root) / np.where(ok, a, 1.0), np.nan)
        lower = np.where(ok, cc / (b + root), np.nan)
    return lower, upper


def agree_half_width(distance, h, excludes):
    """Half-widths h adjusted at the rounding level (1e-12 relative) so that |Δ̂| > h exactly
    where `excludes` (the test's own verdict, p ≤ γ): the same condition computed two ways."""
    return np.where(excludes, np.minimum(h, distance * (1 - 1e-12)), np.maximum(h, distance))


def agree_on_zero(lower, upper, excludes, delta: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative bounds that exclude 0 exactly where the absolute interval does, on the side of
    Δ̂. The conditions are identical in exact arithmetic (see Fieller's above); this settles
    floating-point ties only. NaN (undefined) passes through."""
    tiny = np.finfo(float).tiny
    lower = np.where(excludes & (delta > 0) & (lower <= 0), tiny, lower)
    upper = np.where(excludes & (delta < 0) & (upper >= 0), -tiny, upper)
    lower = np.where(~excludes & (lower > 0), 0.0, lower)
    upper = np.where(~excludes & (upper < 0), 0.0, upper)
    return lower, upper


def relative_bounds(t: Estimate, c: Estimate, crit, excludes, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The relative lift's interval ρ − 1 by Fieller at critical value(s) `crit`, agreeing on 0
    with the absolute interval whose verdict is `excludes`; NaN where undefined."""
    lower, upper = fieller(t.value, t.variance, c.value, c.variance, crit)
    return agree_on_zero(lower - 1, upper - 1, np.asarray(excludes), delta)


def relative_point(t: Estimate, c: Estimate) -> float | None:
    """ρ̂ − 1, or None when control's value is 0."""
    if not c.value or t.value is None:
        return None
    return t.value / c.value - 1


@dataclass(frozen=True)
class FixedTest:
    """The classical comparison: its p-value and statistic, and intervals at any level that
    agree with it (`at`). `absolute` and `relative` are those at the level asked for."""

    p_value: float
    statistic: float
    delta: float
    standard_error: float
    df: float | None  # Welch's degrees of freedom (means); None: normal
    t: Estimate
    c: Estimate
    absolute: Interval
    relative: Interval | None

    def critical(self, gamma: float) -> float:
        """z_{1−γ/2}, or Welch's t_{ν, 1−γ/2}."""
        if self.df is not None:
            return float(special.stdtrit(self.df, 1 - gamma / 2))
        return float(special.ndtri(1 - gamma / 2))

    def at(self, gamma: float) -> tuple[Interval, Interval | None]:
        """The absolute and relative intervals at level 1 − γ."""
        return _fixed_intervals(
            self.t, self.c, self.delta, self.standard_error, self.p_value, self.critical(gamma), gamma
        )


def _fixed_intervals(
    t: Estimate, c: Estimate, delta: float, se: float, p: float, crit: float, gamma: float
) -> tuple[Interval, Interval | None]:
    excludes = p <= gamma
    half = float(agree_half_width(abs(delta), crit * se, excludes))
    absolute = Interval(delta, delta - half, delta + half)
    lo, hi = relative_bounds(t, c, crit, excludes, delta)
    rho = relative_point(t, c)
    if rho is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return absolute, None
    return absolute, Interval(min(max(rho, float(lo)), float(hi)), float(lo), float(hi))


def fixed_test(t_stats: Stats, c_stats: Stats, t: Estimate, c: Estimate, level: float) -> FixedTest | None:
    """Compare treatment with control; intervals at confidence `level`. None if either is not
    usable."""
    if not (t.usable and c.usable):
        return None
    delta, var = difference(t, c)
    se = math.sqrt(var)
    df = None
    if isinstance(t_stats, Mean) and isinstance(c_stats, Mean):
        stat, p, df = welch(t, c)
    elif se > 0:
        stat = delta / se
        p = two_sided_p(stat)
    else:
        # No variance at all (every unit alike in both): the difference is exact.
        stat = 0.0 if delta == 0 else math.copysign(math.inf, delta)
        p = 1.0 if delta == 0 else 0.0
    crit = float(special.stdtrit(df, 0.5 + level / 2)) if df is not None else z_quantile(level)
    absolute, rel = _fixed_intervals(t, c, delta, se, p, crit, 1 - level)
    return FixedTest(p, stat, delta, se, df, t, c, absolute, rel)


def welch(t: Estimate, c: Estimate) -> tuple[float, float, float | None]:
    """Welch's t statistic, two-sided p-value and degrees of freedom."""
    vt, vc = t.variance, c.variance
    assert vt is not None and vc is not None and t.value is not None and c.value is not None
    var = vt + vc
    delta = t.value - c.value
    if var <= 0:
        return (0.0, 1.0, None) if delta == 0 else (math.copysign(math.inf, delta), 0.0, None)
    stat = delta / math.sqrt(var)
    denom = (vt * vt / (t.n - 1) if t.n > 1 else 0.0) + (vc * vc / (c.n - 1) if c.n > 1 else 0.0)
    df = var * var / denom if denom > 0 else None
    if df is None:
        return stat, two_sided_p(stat), None
    return stat, float(2 * special.stdtr(df, -abs(stat))), df
