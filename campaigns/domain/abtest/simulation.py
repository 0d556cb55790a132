"""Seeded Monte-Carlo checks of the error rates, fast enough for the test suite.

Many two-variant tests at once (numpy, one array per quantity), each fed a day of traffic at
a time and looked at after every day — the peeking a dashboard invites. Per look:

- sequential: the always-valid mixture p-value of `sequential`, with the mixing variance
  tuned at the planned sample size exactly as `analysis` does, and its running minimum;
  a test declares a difference the first time that minimum is ≤ α;
- naive: the fixed-horizon pooled z-test of `estimates` read at every look, declaring a
  difference the first time p ≤ α (what the specification's `determineWinner` does);
- fixed: the same z-test read once, at the planned fixed-horizon sample size.

Under no true difference (A/A) the share of tests that ever declare one is the false-
positive rate; under a true lift, the power. The Monte-Carlo standard error of a rate r
over T tests is √(r (1 − r) / T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from campaigns.domain.abtest import sequential


@dataclass(frozen=True)
class Rates:
    tests: int
    days: int
    calls_per_day: int  # per variant
    sequential: float  # share of tests that declared a difference at some look
    naive: float  # … reading the fixed-horizon test at every look
    fixed: float | None  # … reading it once, at the planned fixed horizon (None if beyond `days`)
    sequential_mean_day: float | None  # mean day of the first declaration, among those that did
    sequential_better: float  # declared the treatment better (the right way, under a true lift)
    sequential_by_planned: float | None = None  # … declared a difference by the planned sequential size

    def monte_carlo_error(self, rate: float) -> float:
        return math.sqrt(max(rate * (1 - rate), 1e-12) / self.tests)


def proportions(
    *,
    tests: int,
    days: int,
    calls_per_day: int,
    p_control: float,
    p_treatment: float,
    alpha: float = 0.05,
    planned_sequential: int,
    planned_fixed: int | None = None,
    seed: int = 1,
) -> Rates:
    """Daily looks at `tests` two-variant tests of a conversion rate."""
    xc, xt = draw_proportions(
        tests=tests, days=days, calls_per_day=calls_per_day, p_control=p_control, p_treatment=p_treatment, seed=seed
    )
    n = calls_per_day * np.arange(1, days + 1, dtype=float)[:, None]

    pc, pt = xc / n, xt / n
    vc, vt = pc * (1 - pc) / n, pt * (1 - pt) / n
    var = vc + vt
    delta = pt - pc
    with np.errstate(divide="ignore", invalid="ignore"):
        # Sequential: τ² = r* V_N with V_N projected to the planned size (see analysis).
        planned_var = (vt * n + vc * n) / planned_sequential
        tau2 = sequential.mixing_variance(planned_var, alpha)
        p_seq = np.where(var > 0, sequential.p_value(delta, var, tau2), 1.0)
        running = np.minimum.accumulate(p_seq, axis=0)
        # Naive: the pooled two-proportion z-test at every look.
        pooled = (xc + xt) / (2 * n)
        se0 = np.sqrt(pooled * (1 - pooled) * 2 / n)
        z = np.where(se0 > 0, delta / se0, 0.0)
    p_naive = 2 * special.ndtr(-np.abs(z))

    seq_hit = running <= alpha
    ever_seq = seq_hit.any(axis=0)
    first_day = np.argmax(seq_hit, axis=0) + 1
    better = ever_seq & (delta[np.argmax(seq_hit, axis=0), np.arange(tests)] > 0)
    ever_naive = (p_naive <= alpha).any(axis=0)
    by_planned = None
    planned_day = math.ceil(planned_sequential / calls_per_day)
    if planned_day <= days:
        by_planned = float(seq_hit[:planned_day].any(axis=0).mean())
    fixed = None
    if planned_fixed is not None:
        day = math.ceil(planned_fixed / calls_per_day)
        if day <= days:
            fixed = float((p_naive[day - 1] <= alpha).mean())
    return Rates(
        tests=tests,
        days=days,
        calls_per_day=calls_per_day,
        sequential=float(ever_seq.mean()),
        naive=float(ever_naive.mean()),
        fixed=fixed,
        sequential_mean_day=float(first_day[ever_seq].mean()) if ever_seq.any() else None,
        sequential_better=float(better.mean()),
        sequential_by_planned=by_planned,
    )


def draw_proportions(
    *, tests: int, days: int, calls_per_day: int, p_control: float, p_treatment: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative conversions after each day, shape (days, tests), for control and treatment."""
    rng = np.random.default_rng(seed)
    xc = np.cumsum(rng.binomial(calls_per_day, p_control, size=(days, tests)), axis=0).astype(float)
    xt = np.cumsum(rng.binomial(calls_per_day, p_treatment, size=(days, tests)), axis=0).astype(float)
    return xc, xt


def means_aa(
    *,
    tests: int,
    days: int,
    calls_per_day: int,
    alpha: float = 0.05,
    planned_sequential: int,
    sigma: float = 1.0,
    seed: int = 2,
) -> Rates:
    """Daily looks at A/A tests of a skewed mean (log-normal revenue per call): the plug-in
    variance is where a normal approximation could fail, so it is checked separately."""
    rng = np.random.default_rng(seed)
    shape = (days, tests, calls_per_day)
    sums, squares = [], []
    for _ in range(2):
        values = rng.lognormal(0.0, sigma, size=shape)
        sums.append(np.cumsum(values.sum(axis=2), axis=0))
        squares.append(np.cumsum((values * values).sum(axis=2), axis=0))
    n = calls_per_day * np.arange(1, days + 1, dtype=float)[:, None]
    means_ = [s / n for s in sums]
    variances = [(q - s * s / n) / (n - 1) / n for s, q in zip(sums, squares, strict=True)]
    delta = means_[1] - means_[0]
    var = variances[0] + variances[1]
    planned_var = var * n / planned_sequential
    tau2 = sequential.mixing_variance(planned_var, alpha)
    running = np.minimum.accumulate(sequential.p_value(delta, var, tau2), axis=0)
    ever_seq = (running <= alpha).any(axis=0)
    z = delta / np.sqrt(var)
    ever_naive = (2 * special.ndtr(-np.abs(z)) <= alpha).any(axis=0)
    first_day = np.argmax(running <= alpha, axis=0) + 1
    return Rates(
        tests=tests,
        days=days,
        calls_per_day=calls_per_day,
        sequential=float(ever_seq.mean()),
        naive=float(ever_naive.mean()),
        fixed=None,
        sequential_mean_day=float(first_day[ever_seq].mean()) if ever_seq.any() else None,
        sequential_better=float((ever_seq & (delta[-1] > 0)).mean()),
    )
