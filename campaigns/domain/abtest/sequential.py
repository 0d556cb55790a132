"""Always-valid inference, so a test may be looked at as often as anyone likes.

The statistic is the difference Δ̂ of a variant and control (or its relative lift), with
estimated variance V (see `estimates`). Under the normal approximation, Δ̂ is a Gaussian
observation of Δ whose precision 1/V grows as data arrive — a Brownian motion in
"information time". The normal-mixture sequential probability ratio test (mSPRT; Robbins
1970, Johari et al. 2017) mixes the likelihood ratio over a N(0, τ²) prior on Δ:

    Λ(δ) = √(V / (V + τ²)) · exp( (Δ̂ − δ)² τ² / (2 V (V + τ²)) )

Λ(δ) is a nonnegative martingale under Δ = δ, so by Ville's inequality
P(∃ look: Λ(δ) ≥ 1/α) ≤ α, whatever the looks and however the test is stopped. Hence:

- the always-valid p-value at a look is min(1, 1/Λ(0)), and the running minimum over all
  looks so far is still valid: pₖ = min(pₖ₋₁, 1/Λₖ(0));
- the confidence sequence {δ : Λ(δ) < 1/α} is the interval Δ̂ ± h with

      h = √( V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²) / V)) )

  and the running intersection of these intervals over the looks so far is still valid.
  0 lies outside the intersection exactly when the running p-value is ≤ α.

With V estimated from the data (plug-in), these are the asymptotic confidence sequences of
Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2023, "Time-uniform central limit theory"):
valid as the sample grows, which is the regime an A/B test lives in; the simulations in the
test suite check the error rate at realistic sizes.

The mixing variance τ² sets where the sequence is tightest. Writing r = τ²/V, the half-width
is √V · √((1 + r)/r · (2 log(1/α) + log(1 + r))), smallest where

    r = 2 log(1/α) + log(1 + r)                                   (r* ≈ 8.2 at α = 0.05)

so τ² = r* · V_N, V_N being the variance expected at the planned sample size N: the test is
then sharpest at its planned horizon. There the half-width is c_α √V_N with

    c_α = √((1 + r*)/r* · (2 log(1/α) + log(1 + r*)))             (c ≈ 3.04 at α = 0.05,
                                                                    against z = 1.96 fixed)

which is what `power` uses for the sequential sample size. Where V_N cannot be known in
advance it is projected from the current look, V_N = V · n / N (variance falls as 1/n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def optimal_ratio(alpha: float) -> float:
    """r* solving r = 2 log(1/α) + log(1 + r) (a contraction: converges in a few steps)."""
    two_l = 2 * math.log(1 / alpha)
    r = two_l
    for _ in range(100):
        nxt = two_l + math.log1p(r)
        if abs(nxt - r) < 1e-12:
            break
        r = nxt
    return r


@lru_cache(maxsize=64)
def boundary_constant(alpha: float) -> float:
    """c_α: the half-width, in standard errors, at the horizon the mixture is tuned for."""
    r = optimal_ratio(alpha)
    return math.sqrt((1 + r) / r * (2 * math.log(1 / alpha) + math.log1p(r)))


def mixing_variance(planned_variance, alpha: float):
    """τ² = r* · V_N."""
    return optimal_ratio(alpha) * planned_variance


def half_width(variance, tau2, alpha: float):
    """h = √(V (V + τ²)/τ² · (2 log(1/α) + log((V + τ²)/V))). Works on arrays."""
    if isinstance(variance, float) and isinstance(tau2, float):  # the API's case: plain floats are faster
        return math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log1p(tau2 / variance)))
    v = np.asarray(variance, dtype=float)
    t = np.asarray(tau2, dtype=float)
    out = np.sqrt(v * (v + t) / t * (2 * math.log(1 / alpha) + np.log1p(t / v)))
    return out if out.ndim else float(out)


def p_value(delta, variance, tau2):
    """min(1, 1/Λ(0)) at one look. Works on arrays."""
    if isinstance(delta, float) and isinstance(variance, float) and isinstance(tau2, float):
        log_lambda = 0.5 * math.log(variance / (variance + tau2)) + delta * delta * tau2 / (
            2 * variance * (variance + tau2)
        )
        return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    d = np.asarray(delta, dtype=float)
    v = np.asarray(variance, dtype=float)
    t = np.asarray(tau2, dtype=float)
    log_lambda = 0.5 * np.log(v / (v + t)) + d * d * t / (2 * v * (v + t))
    out = np.minimum(1.0, np.exp(-log_lambda))
    return out if out.ndim else float(out)


# --- The running state of one comparison across looks -----------------------------------


@dataclass(frozen=True)
class Running:
    """What one comparison (a metric, a variant against control) has shown so far."""

    p_value: float = 1.0
    lower: float = -math.inf
    upper: float = math.inf
    rel_lower: float = -math.inf
    rel_upper: float = math.inf
    looks: int = 0
    conflict: bool = False  # the looks' intervals stopped overlapping: the model is off

    def to_json(self) -> dict:
        return {
            "p": self.p_value,
            "lo": _finite_or_none(self.lower),
            "hi": _finite_or_none(self.upper),
            "rlo": _finite_or_none(self.rel_lower),
            "rhi": _finite_or_none(self.rel_upper),
            "looks": self.looks,
            "conflict": self.conflict,
        }

    @classmethod
    def from_json(cls, raw: dict | None) -> Running:
        if not raw:
            return cls()
        return cls(
            p_value=raw.get("p", 1.0),
            lower=_or(raw.get("lo"), -math.inf),
            upper=_or(raw.get("hi"), math.inf),
            rel_lower=_or(raw.get("rlo"), -math.inf),
            rel_upper=_or(raw.get("rhi"), math.inf),
            looks=raw.get("looks", 0),
            conflict=raw.get("conflict", False),
        )


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def _intersect(lo1: float, hi1: float, lo2: float, hi2: float) -> tuple[float, float, bool]:
    lo, hi = max(lo1, lo2), min(hi1, hi2)
    if lo > hi:
        # Disjoint intervals cannot both hold: an assumption is broken (e.g. a trend over
        # time). Fall back to the current look rather than report an empty interval.
        return lo2, hi2, True
    return lo, hi, False


def advance(
    previous: Running,
    *,
    p: float,
    lower: float,
    upper: float,
    rel_lower: float | None,
    rel_upper: float | None,
) -> Running:
    """Fold one look into the running state: minimum p-value, intersected intervals."""
    lo, hi, conflict = _intersect(previous.lower, previous.upper, lower, upper)
    rlo, rhi = previous.rel_lower, previous.rel_upper
    if rel_lower is not None and rel_upper is not None:
        rlo, rhi, rel_conflict = _intersect(rlo, rhi, rel_lower, rel_upper)
        conflict = conflict or rel_conflict
    return Running(
        p_value=min(previous.p_value, p),
        lower=lo,
        upper=hi,
        rel_lower=rlo,
        rel_upper=rhi,
        looks=previous.looks + 1,
        conflict=previous.conflict or conflict,
    )
