"""Sample size and duration: how many calls per variant a test needs to detect a given
effect with a given power, and how many days of traffic that is.

Notation: baseline θ_c, minimum detectable effect Δ (absolute; a relative MDE m means
Δ = m · θ_c), significance α (two-sided, 1 − confidence level), power 1 − β, K variants
including control. Each of the K − 1 comparisons with control is made at α' = α / (K − 1),
the first step of Holm's correction (so the figure is slightly conservative for K > 2).

Fixed horizon, proportions (p₁ = θ_c, p₂ = θ_c + Δ, p̄ = (p₁ + p₂)/2, q = 1 − p):

    n = ( z_{1−α'/2} √(2 p̄ q̄) + z_{1−β} √(p₁q₁ + p₂q₂) )² / Δ²

Fixed horizon, means (σ the per-unit standard deviation, the same in both variants):

    n = 2 σ² ( z_{1−α'/2} + z_{1−β} )² / Δ²

Sequential (always-valid, see `sequential`): the interval's half-width at the planned
horizon is c_α' √V_N instead of z_{1−α'/2} √V_N, and its test uses the unpooled variance,
so the test has power 1 − β at that horizon when Δ = (c_α' + z_{1−β}) √V_N:

    proportions  n = (c_α' + z_{1−β})² (p₁q₁ + p₂q₂) / Δ²
    means        n = (c_α' + z_{1−β})² 2 σ² / Δ²

The ratio of the two is the price of looking at any time (about 1.9 at α = 0.05, power 0.8).
It is conservative: a sequential test that crosses its boundary before N stops there, and
a larger true effect stops it sooner.

Duration: with equal weights, each variant gets 1/K of the daily traffic, so
days = ⌈K n / traffic⌉.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import special

from campaigns.domain.abtest.sequential import boundary_constant

Mode = Literal["fixed", "sequential", "bandit"]


def _z(p: float) -> float:
    return float(special.ndtri(p))


def per_comparison_alpha(alpha: float, variants: int) -> float:
    return alpha / max(variants - 1, 1)


@dataclass(frozen=True)
class SampleSize:
    fixed: int  # calls per variant, fixed horizon
    sequential: int  # calls per variant, always-valid
    absolute_effect: float
    alpha_per_comparison: float

    @property
    def inflation(self) -> float:
        return self.sequential / self.fixed

    def for_mode(self, mode: Mode) -> int:
        return self.fixed if mode == "fixed" else self.sequential


MAX_CALLS = 10**12  # per variant: beyond this no test is practical, and floats stop being counts


def _calls(numerator: float, effect: float) -> int:
    """`numerator / effect²` as a whole number of calls, or ValueError if the effect is too
    small for that to be a number (it underflows, or the answer overflows)."""
    squared = effect * effect
    calls = numerator / squared if squared > 0 else math.inf
    if not math.isfinite(calls) or calls > MAX_CALLS:
        raise ValueError(
            f"the effect is too small to detect: a test would need more than {MAX_CALLS:.0e} calls per variant"
        )
    return math.ceil(calls)


def proportions(*, baseline: float, effect: float, alpha: float, power: float, variants: int = 2) -> SampleSize:
    """Calls per variant to detect an absolute change `effect` from rate `baseline`."""
    if not 0 < baseline < 1:
        raise ValueError("a baseline rate must be strictly between 0 and 1")
    p1, p2 = baseline, baseline + effect
    if not 0 < p2 < 1:
        raise ValueError(f"baseline + effect = {p2:g} is not a rate strictly between 0 and 1")
    if effect == 0:
        raise ValueError("the effect must not be 0")
    a = per_comparison_alpha(alpha, variants)
    za, zb = _z(1 - a / 2), _z(power)
    pbar = (p1 + p2) / 2
    spread = p1 * (1 - p1) + p2 * (1 - p2)
    fixed = _calls((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(spread)) ** 2, effect)
    seq = _calls((boundary_constant(a) + zb) ** 2 * spread, effect)
    return SampleSize(fixed, seq, effect, a)


def means(*, sd: float, effect: float, alpha: float, power: float, variants: int = 2) -> SampleSize:
    """Calls per variant to detect an absolute change `effect` in a mean with per-call SD `sd`."""
    if sd <= 0:
        raise ValueError("the standard deviation must be positive")
    if effect == 0:
        raise ValueError("the effect must not be 0")
    a = per_comparison_alpha(alpha, variants)
    za, zb = _z(1 - a / 2), _z(power)
    fixed = _calls(2 * sd * sd * (za + zb) ** 2, effect)
    seq = _calls(2 * sd * sd * (boundary_constant(a) + zb) ** 2, effect)
    return SampleSize(fixed, seq, effect, a)


def days_needed(calls_per_variant: int, variants: int, daily_traffic: float) -> int:
    """Days of traffic for every variant to reach `calls_per_variant` at equal weights."""
    return math.ceil(calls_per_variant * variants / daily_traffic)


def detectable_effect(*, variance_at_n: float, alpha: float, power: float, sequential: bool) -> float:
    """The absolute effect a test detects with the given power once the variance of its
    difference has fallen to `variance_at_n` (the inverse of the formulas above)."""
    zb = _z(power)
    crit = boundary_constant(alpha) if sequential else _z(1 - alpha / 2)
    return (crit + zb) * math.sqrt(variance_at_n)
