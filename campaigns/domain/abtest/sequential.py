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
  0 lies outside the intersection exactly when the running p-value is ≤ α (each look's
  interval excludes 0 exactly when that look's p-value is ≤ α, and an intersection of
  intervals that all contain 0 contains 0). `look_bounds` enforces that equivalence at the
  rounding level too, so a decision, its p-value and its interval can never disagree.

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

The relative lift, by Fieller's construction
--------------------------------------------
The ratio ρ = θ_t / θ_c is tested at each ρ by the same mixture applied to
D_ρ = θ̂_t − ρ θ̂_c, whose variance is V(ρ) = V_t + ρ² V_c, with the mixing variance scaled
like the variance, τ²(ρ) = τ² V(ρ) / V(1). The ratio r = τ²/V is then the same for every ρ,
so the half-width in standard errors, c = h / √V, is too, and the look's confidence set is
Fieller's:

    {ρ : (θ̂_t − ρ θ̂_c)² ≤ c² (V_t + ρ² V_c)}

(`estimates.fieller`). At ρ = 1 this is |Δ̂| ≤ c √V, the absolute interval's own condition,
so the relative interval excludes 0 exactly when the absolute one does, by construction. It is
a bounded interval within (0, ∞) — a relative lift above −100 % — when both variants' values
are distinguishable from 0 (θ̂² > c² V for each); before that (a handful of conversions) the
relative lift is reported as undefined rather than as an interval that means nothing.

The running state, per comparison, at several levels
----------------------------------------------------
Holm's step-down (see `holm`) tests the comparison ranked i-th of m at α/(m − i + 1), so the
running intervals are kept at every level γ ∈ {α/m, α/(m − 1), …, α/1} (m = K − 1, the
treatments; one level for an A/B test). All levels share one mixture (τ² tuned at α/m), so
one running p-value serves them all: 0 lies outside the level-γ intersection exactly when
the running p-value is ≤ γ.

Two cases break the running intersection, and neither may leave a verdict behind that its
own numbers contradict:

- the new look's interval is disjoint from the running one (at any level, absolute or
  relative): the looks disagree beyond their error bounds, so a model assumption is broken
  (the effect drifts over time). The state restarts from the latest look — p-value and
  intervals together — and says so;
- the look has no variance (every value the same): nothing is learnt, and the state is
  carried forward unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from campaigns.domain.abtest.estimates import agree_half_width


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


def half_width(variance, tau2, alpha):
    """h = √(V (V + τ²)/τ² · (2 log(1/α) + log((V + τ²)/V))). Works on arrays (of α too)."""
    if isinstance(variance, float) and isinstance(tau2, float) and isinstance(alpha, float):
        # The API's case: plain floats are faster.
        return math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log1p(tau2 / variance)))
    v = np.asarray(variance, dtype=float)
    t = np.asarray(tau2, dtype=float)
    out = np.sqrt(v * (v + t) / t * (2 * np.log(1 / np.asarray(alpha, dtype=float)) + np.log1p(t / v)))
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


def look_bounds(delta: float, variance: float, tau2: float, gammas: np.ndarray) -> tuple[float, np.ndarray]:
    """One look: its mixture p-value and the half-width h of its interval at each level γ.

    h is adjusted at the rounding level (1e-12 relative) so that |Δ̂| > h exactly when
    p ≤ γ: the two are the same condition, Λ(0) ≥ 1/γ, computed two ways."""
    p = p_value(float(delta), float(variance), float(tau2))
    h = np.atleast_1d(half_width(np.full(gammas.shape, float(variance)), float(tau2), gammas))
    return p, agree_half_width(abs(delta), h, p <= gammas)


@dataclass(frozen=True)
class Running:
    """What one comparison (a metric, a variant against control) has shown so far: the running
    minimum p-value and, at each level γ of `gammas`, the intersected intervals of the
    difference and of the relative lift (±inf where no look has bounded the relative lift)."""

    gammas: tuple[float, ...] = ()
    p_value: float = 1.0
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    rel_lower: tuple[float, ...] = ()
    rel_upper: tuple[float, ...] = ()
    looks: int = 0
    restarts: int = 0  # how often the looks disagreed beyond their error bounds
    restarted: bool = False  # … at the latest look

    @property
    def started(self) -> bool:
        return self.looks > 0

    def index(self, gamma: float) -> int:
        return next(i for i, g in enumerate(self.gammas) if math.isclose(g, gamma, rel_tol=1e-9))

    def kept_at(self, gammas: tuple[float, ...]) -> bool:
        """Whether this state holds intervals at exactly these levels (stored states come back
        through JSON, so the comparison allows for the last digit)."""
        return len(gammas) == len(self.gammas) and all(
            math.isclose(a, b, rel_tol=1e-9) for a, b in zip(gammas, self.gammas, strict=True)
        )

    def to_json(self) -> dict:
        return {
            "v": 2,
            "gammas": list(self.gammas),
            "p": self.p_value,
            "lo": _json_bounds(self.lower),
            "hi": _json_bounds(self.upper),
            "rlo": _json_bounds(self.rel_lower),
            "rhi": _json_bounds(self.rel_upper),
            "looks": self.looks,
            "restarts": self.restarts,
            "restarted": self.restarted,
        }

    @classmethod
    def from_json(cls, raw: dict | None) -> Running:
        """The stored state; a state of the earlier single-level form starts afresh (its
        relative interval was not Fieller's and it kept no levels for Holm)."""
        if not raw or raw.get("v") != 2:
            return cls()
        return cls(
            gammas=tuple(raw["gammas"]),
            p_value=raw["p"],
            lower=tuple(_or(x, -math.inf) for x in raw["lo"]),
            upper=tuple(_or(x, math.inf) for x in raw["hi"]),
            rel_lower=tuple(_or(x, -math.inf) for x in raw["rlo"]),
            rel_upper=tuple(_or(x, math.inf) for x in raw["rhi"]),
            looks=raw.get("looks", 0),
            restarts=raw.get("restarts", 0),
            restarted=raw.get("restarted", False),
        )


def _json_bounds(xs: tuple[float, ...]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in xs]


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def advance(
    previous: Running,
    gammas: tuple[float, ...],
    *,
    p: float,
    delta: float,
    h: np.ndarray,
    rel_lower: np.ndarray,
    rel_upper: np.ndarray,
) -> Running:
    """Fold one look into the running state: minimum p-value, intersected intervals at every
    level; restart from this look if it is disjoint from the running state (see above)."""
    lo, hi = delta - h, delta + h
    rlo = np.where(np.isnan(rel_lower), -math.inf, rel_lower)
    rhi = np.where(np.isnan(rel_upper), math.inf, rel_upper)
    fresh = Running(gammas, p, _t(lo), _t(hi), _t(rlo), _t(rhi), looks=previous.looks + 1, restarts=previous.restarts)
    if not previous.started or not previous.kept_at(gammas):
        return fresh
    lo_run, hi_run = np.maximum(previous.lower, lo), np.minimum(previous.upper, hi)
    rlo_run, rhi_run = np.maximum(previous.rel_lower, rlo), np.minimum(previous.rel_upper, rhi)
    if (lo_run > hi_run).any() or (rlo_run > rhi_run).any():
        return Running(
            gammas,
            p,
            _t(lo),
            _t(hi),
            _t(rlo),
            _t(rhi),
            looks=previous.looks + 1,
            restarts=previous.restarts + 1,
            restarted=True,
        )
    return Running(
        gammas,
        min(previous.p_value, p),
        _t(lo_run),
        _t(hi_run),
        _t(rlo_run),
        _t(rhi_run),
        looks=previous.looks + 1,
        restarts=previous.restarts,
    )


def _t(a: np.ndarray) -> tuple[float, ...]:
    return tuple(np.asarray(a, dtype=float).tolist())
