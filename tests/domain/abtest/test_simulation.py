"""Seeded simulations: under continuous monitoring the sequential test keeps its error rate,
the naive one does not; under a true lift the sequential test has its planned power."""

from __future__ import annotations

import pytest

from campaigns.domain.abtest import analysis, decision, power
from campaigns.domain.abtest import simulation as sim
from campaigns.domain.abtest.config import ABTestCreate, resolve

ALPHA = 0.05
SIZE = power.proportions(baseline=0.10, effect=0.02, alpha=ALPHA, power=0.8)  # 3841 fixed, 7350 sequential


def test_aa_sequential_false_winners_stay_below_alpha_naive_does_not():
    r = sim.proportions(tests=1000, days=30, calls_per_day=500, p_control=0.10, p_treatment=0.10,
                        planned_sequential=SIZE.sequential, planned_fixed=SIZE.fixed, seed=1)
    assert r.sequential <= ALPHA + 3 * r.monte_carlo_error(ALPHA)
    assert r.naive > 0.15  # peeking daily at a fixed-horizon test: roughly one test in four
    assert r.fixed == pytest.approx(ALPHA, abs=3 * r.monte_carlo_error(ALPHA))  # read once, it is fine


def test_aa_skewed_means_keep_the_error_rate():
    r = sim.means_aa(tests=400, days=20, calls_per_day=100, planned_sequential=1500, sigma=1.0, seed=2)
    assert r.sequential <= ALPHA + 3 * r.monte_carlo_error(ALPHA)
    assert r.naive > 0.1


def test_power_under_a_true_lift():
    r = sim.proportions(tests=1000, days=30, calls_per_day=500, p_control=0.10, p_treatment=0.12,
                        planned_sequential=SIZE.sequential, planned_fixed=SIZE.fixed, seed=3)
    se = r.monte_carlo_error(0.8)
    assert r.sequential_by_planned >= 0.8 - 3 * se  # the calculator's promise, at its horizon
    assert r.fixed == pytest.approx(0.8, abs=3 * se)
    assert r.sequential_better == r.sequential  # never the wrong way round here
    assert r.sequential_mean_day < SIZE.sequential / 500  # and it usually stops before the horizon


def test_the_simulation_runs_the_same_procedure_as_the_platform():
    """Daily looks through analysis.look + decision.decide stop on the same day as the
    vectorised simulation, test by test."""
    tests, days, per_day = 40, 14, 500
    xc, xt = sim.draw_proportions(tests=tests, days=days, calls_per_day=per_day, p_control=0.10,
                                  p_treatment=0.115, seed=4)
    design = resolve(ABTestCreate.model_validate({
        "name": "sim", "variants": [{"name": "c"}, {"name": "t"}], "primaryMetric": "conversionRate",
        "sampleSize": SIZE.sequential, "minCallsPerVariant": 0, "minDurationDays": 0, "maxDurationDays": 365,
    }), "sim", ["c", "t"])
    import numpy as np

    from campaigns.domain.abtest import sequential

    n = per_day * np.arange(1, days + 1, dtype=float)[:, None]
    pc, pt = xc / n, xt / n
    var = pc * (1 - pc) / n + pt * (1 - pt) / n
    tau2 = sequential.mixing_variance(var * n / SIZE.sequential, ALPHA)
    hits = np.minimum.accumulate(sequential.p_value(pt - pc, var, tau2), axis=0) <= ALPHA
    declared = 0
    for j in range(tests):
        running: dict = {}
        platform_day = None
        for d in range(days):
            calls = per_day * (d + 1)
            look = analysis.look(design, {
                "c": {"conversionRate:n": calls, "conversionRate:x": xc[d, j], "units:calls": calls},
                "t": {"conversionRate:n": calls, "conversionRate:x": xt[d, j], "units:calls": calls},
            }, running=running)
            running = look.running
            if decision.decide(design, look, runtime_days=d + 1).conclusion in ("winner", "harm"):
                platform_day = d + 1
                break
        simulated_day = int(hits[:, j].argmax()) + 1 if hits[:, j].any() else None
        assert platform_day == simulated_day, j
        declared += platform_day is not None
    assert declared > 5  # the comparison covered both outcomes
