"""The Bayesian view: chance to beat control, probability of being best, and the Thompson-
sampling traffic weights of bandit mode. A second view beside the frequentist one: it does
not decide a test (see `decision`), it describes it and steers bandit traffic.

Posteriors
----------
- Proportion, x successes in n: Beta(1 + x, 1 + n − x) (a uniform prior).
- Mean or ratio: N(θ̂, V), the large-sample posterior under a flat prior (θ̂ and V from
  `estimates`).

Chance that treatment beats control (for a metric where higher is better; the complement
where lower is):

- Beta posteriors: P(p_t > p_c) = ∫ f_a(u) · P_b(u) du, integrating over the narrower of the
  two posteriors (a) the probability that the other (b) lies on the right side of u,
  by 64-point Gauss–Legendre quadrature over a's central 1 − 10⁻¹² mass; once both
  posteriors have at least 1,000 successes and 1,000 failures, their normal approximation
  Φ((m_t − m_c) / √(v_t + v_c)) with the Beta means and variances (error below 10⁻⁴);
- normal posteriors: P(θ_t > θ_c) = Φ(Δ̂ / √(V_t + V_c)).

Probability of being best, P(k is best), is estimated from joint posterior draws (seeded, so
a given look always gives the same answer). Thompson sampling allocates traffic in those
proportions; bandit mode keeps a floor f per variant:

    wₖ = f + (1 − K f) · P(k is best)
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np
from scipy import special

from campaigns.domain.abtest.estimates import Estimate, Proportion

_TAIL = 1e-12
_NORMAL_FROM = 1000


@lru_cache(maxsize=1)
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(64)


def _beta_params(s: Proportion) -> tuple[float, float]:
    x = min(max(s.x, 0.0), s.n)
    return 1.0 + x, 1.0 + s.n - x


def _beta_var(a: float, b: float) -> float:
    return a * b / ((a + b) ** 2 * (a + b + 1))


def beta_beats(t: Proportion, c: Proportion) -> float:
    """P(p_t > p_c) under Beta(1 + x, 1 + n − x) posteriors."""
    at, bt = _beta_params(t)
    ac, bc = _beta_params(c)
    if min(at, bt, ac, bc) > _NORMAL_FROM:
        mt, mc = at / (at + bt), ac / (ac + bc)
        return float(special.ndtr((mt - mc) / math.sqrt(_beta_var(at, bt) + _beta_var(ac, bc))))
    # Integrate over the narrower posterior; the other's CDF is smooth on that range.
    if _beta_var(at, bt) <= _beta_var(ac, bc):
        # P(p_c < p_t) = ∫ f_t(u) F_c(u) du
        return _integrate(at, bt, lambda u: special.betainc(ac, bc, u))
    # P(p_t > p_c) = ∫ f_c(u) (1 − F_t(u)) du
    return _integrate(ac, bc, lambda u: special.betaincc(at, bt, u))


def _integrate(a: float, b: float, g) -> float:
    lo = float(special.betaincinv(a, b, _TAIL))
    hi = float(special.betaincinv(a, b, 1 - _TAIL))
    nodes, weights = _nodes()
    u = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
    u = np.clip(u, 1e-300, 1 - 1e-16)
    log_pdf = (a - 1) * np.log(u) + (b - 1) * np.log1p(-u) - special.betaln(a, b)
    value = 0.5 * (hi - lo) * float(np.sum(weights * np.exp(log_pdf) * g(u)))
    return min(max(value, 0.0), 1.0)


def normal_beats(t: Estimate, c: Estimate) -> float:
    """P(θ_t > θ_c) under normal posteriors."""
    assert t.usable and c.usable
    var = t.variance + c.variance  # type: ignore[operator]
    delta = t.value - c.value  # type: ignore[operator]
    if var <= 0:
        return 0.5 if delta == 0 else float(delta > 0)
    return float(special.ndtr(delta / math.sqrt(var)))


def chance_to_beat(t_stats, c_stats, t: Estimate, c: Estimate, *, higher_is_better: bool) -> float | None:
    """The chance the treatment is better than control, in the metric's own direction."""
    if isinstance(t_stats, Proportion) and isinstance(c_stats, Proportion):
        if t_stats.n <= 0 or c_stats.n <= 0:
            return None
        up = beta_beats(t_stats, c_stats)
    else:
        if not (t.usable and c.usable):
            return None
        up = normal_beats(t, c)
    return up if higher_is_better else 1 - up


def draws(stats, est: Estimate, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """Posterior draws of one variant's metric (None if it has no posterior yet)."""
    if isinstance(stats, Proportion):
        a, b = _beta_params(stats)
        return rng.beta(a, b, size)
    if not est.usable:
        return None
    return rng.normal(est.value, math.sqrt(est.variance), size)  # type: ignore[arg-type]


def probability_best(samples: list[np.ndarray | None], *, higher_is_better: bool) -> list[float] | None:
    """P(each variant is best) from joint posterior draws; None if a variant has none yet."""
    if any(s is None for s in samples):
        return None
    matrix = np.vstack(samples)  # type: ignore[arg-type]
    best = matrix.argmax(axis=0) if higher_is_better else matrix.argmin(axis=0)
    counts = np.bincount(best, minlength=len(samples))
    return (counts / counts.sum()).tolist()


def thompson_weights(p_best: list[float], floor: float) -> list[float]:
    """wₖ = f + (1 − K f) · P(k is best)."""
    k = len(p_best)
    spread = 1 - k * floor
    return [floor + spread * p for p in p_best]


def seed_for(test_id: str, look: int) -> int:
    """A seed that depends on the test and the look only: replays draw the same numbers."""
    digest = hashlib.sha256(f"{test_id}:{look}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
