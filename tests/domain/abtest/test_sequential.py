"""The always-valid mixture test, the Bayesian view and the power calculator, by hand and
against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from campaigns.domain.abtest import bayes, power, sequential
from campaigns.domain.abtest.estimates import Estimate, Proportion
from campaigns.domain.abtest.sequential import Running


def test_optimal_ratio_solves_its_equation():
    for alpha in (0.01, 0.05, 0.1, 0.005):
        r = sequential.optimal_ratio(alpha)
        assert r == pytest.approx(2 * math.log(1 / alpha) + math.log(1 + r), abs=1e-10)
    assert sequential.optimal_ratio(0.05) == pytest.approx(8.212, abs=1e-3)
    assert sequential.boundary_constant(0.05) == pytest.approx(3.035, abs=1e-3)


def test_optimal_ratio_minimises_the_half_width():
    alpha, v = 0.05, 1.0
    r = sequential.optimal_ratio(alpha)
    best = sequential.half_width(v, r * v, alpha)
    for other in (r * 0.7, r * 1.4, r * 3):
        assert sequential.half_width(v, other * v, alpha) > best
    assert best == pytest.approx(sequential.boundary_constant(alpha))


def test_mixture_p_value_and_half_width_by_hand():
    # V = 1, τ² = 4: Λ(0) = √(1/5) · exp(Δ² · 4 / (2 · 1 · 5)) = exp(0.4 Δ²) / √5.
    delta = 3.0
    lam = math.exp(0.4 * 9) / math.sqrt(5)
    assert sequential.p_value(delta, 1.0, 4.0) == pytest.approx(1 / lam)
    # h² = V (V + τ²)/τ² · (2 log(1/α) + log((V + τ²)/V)) = 5/4 · (2 log 20 + log 5).
    assert sequential.half_width(1.0, 4.0, 0.05) == pytest.approx(math.sqrt(1.25 * (2 * math.log(20) + math.log(5))))


@pytest.mark.parametrize("delta", [0.5, 2.0, 2.9, 3.3, 4.0])
def test_p_value_and_interval_agree(delta):
    """0 lies outside the confidence sequence exactly when the p-value is at most α."""
    v, tau2, alpha = 0.8, 5.0, 0.05
    h = sequential.half_width(v, tau2, alpha)
    p = sequential.p_value(delta, v, tau2)
    assert (abs(delta) > h) == (p <= alpha)


def test_sequential_is_wider_than_fixed_at_the_horizon():
    z = sps.norm.ppf(0.975)
    assert sequential.boundary_constant(0.05) > z
    # …but only by a factor 1.55 in width at the horizon it is tuned for.
    assert sequential.boundary_constant(0.05) / z == pytest.approx(1.5486, abs=1e-3)


def test_functions_work_on_arrays():
    d = np.array([0.0, 1.0, 5.0])
    assert sequential.p_value(d, 1.0, 8.0).shape == (3,)
    assert sequential.half_width(np.array([1.0, 2.0]), 8.0, 0.05).shape == (2,)


def test_running_state_takes_the_minimum_and_intersects_at_every_level():
    gammas = (0.025, 0.05)
    nan = np.array([np.nan, np.nan])
    s = sequential.advance(
        Running(),
        gammas,
        p=0.3,
        delta=1.0,
        h=np.array([2.5, 2.0]),
        rel_lower=np.array([-0.2, -0.1]),
        rel_upper=np.array([0.4, 0.3]),
    )
    s = sequential.advance(s, gammas, p=0.5, delta=2.0, h=np.array([2.5, 2.0]), rel_lower=nan, rel_upper=nan)
    assert (s.p_value, s.lower, s.upper, s.looks) == (0.3, (-0.5, 0.0), (3.5, 3.0), 2)
    assert (s.rel_lower, s.rel_upper) == ((-0.2, -0.1), (0.4, 0.3))  # an undefined look changes nothing
    assert Running.from_json(s.to_json()) == s
    # Disjoint intervals: the model broke; restart everything from the latest look, and say so.
    s = sequential.advance(s, gammas, p=0.2, delta=5.0, h=np.array([1.0, 0.5]), rel_lower=nan, rel_upper=nan)
    assert (s.p_value, s.lower, s.upper, s.restarted, s.restarts) == (0.2, (4.0, 4.5), (6.0, 5.5), True, 1)
    assert s.rel_lower == (-math.inf, -math.inf)
    assert Running.from_json(None) == Running()
    # A state of the earlier single-level form starts afresh.
    assert Running.from_json({"p": 0.01, "lo": 0.1, "hi": 0.3}) == Running()


def test_look_bounds_agree_with_the_p_value_at_every_level():
    gammas = np.array([0.05 / 3, 0.025, 0.05])
    for delta in np.linspace(0, 5, 501):
        p, h = sequential.look_bounds(float(delta), 1.0, 8.0, gammas)
        assert ((abs(delta) > h) == (p <= gammas)).all()


# --- Bayesian view -----------------------------------------------------------------------


def test_chance_to_beat_exact_small_case():
    # Beta(2, 1) against Beta(1, 2): P(X > Y) = ∫ 2x (2x − x²) dx = 4/3 − 1/2 = 5/6.
    assert bayes.beta_beats(Proportion(n=1, x=1), Proportion(n=1, x=0)) == pytest.approx(5 / 6, abs=1e-9)
    assert bayes.beta_beats(Proportion(n=0, x=0), Proportion(n=0, x=0)) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(("t", "c"), [((1000, 120), (1000, 100)), ((50, 9), (4000, 400)),
                                      ((200_000, 20_300), (200_000, 20_000)), ((30, 0), (30, 2))])
def test_chance_to_beat_matches_monte_carlo(t, c):
    rng = np.random.default_rng(5)
    draws_t = rng.beta(1 + t[1], 1 + t[0] - t[1], 400_000)
    draws_c = rng.beta(1 + c[1], 1 + c[0] - c[1], 400_000)
    expected = float((draws_t > draws_c).mean())
    got = bayes.beta_beats(Proportion(n=t[0], x=t[1]), Proportion(n=c[0], x=c[1]))
    assert got == pytest.approx(expected, abs=0.004)


def test_chance_to_beat_for_means_and_direction():
    t, c = Estimate(10.5, 0.09, 100), Estimate(10.0, 0.16, 100)
    up = bayes.chance_to_beat(None, None, t, c, higher_is_better=True)
    assert up == pytest.approx(sps.norm.cdf(0.5 / math.sqrt(0.25)))
    assert bayes.chance_to_beat(None, None, t, c, higher_is_better=False) == pytest.approx(1 - up)


def test_thompson_weights_keep_the_floor_and_sum_to_one():
    w = bayes.thompson_weights([0.9, 0.1, 0.0], 0.05)
    assert sum(w) == pytest.approx(1)
    assert min(w) == pytest.approx(0.05)
    assert w[0] == pytest.approx(0.05 + 0.85 * 0.9)


def test_probability_best_is_seeded():
    rng1, rng2 = np.random.default_rng(bayes.seed_for("t", 3)), np.random.default_rng(bayes.seed_for("t", 3))
    s = [Proportion(n=500, x=50), Proportion(n=500, x=65)]
    e = [Estimate(0.1, 0.0002, 500), Estimate(0.13, 0.0002, 500)]
    a = bayes.probability_best([bayes.draws(x, y, 1000, rng1) for x, y in zip(s, e, strict=True)], higher_is_better=True)
    b = bayes.probability_best([bayes.draws(x, y, 1000, rng2) for x, y in zip(s, e, strict=True)], higher_is_better=True)
    assert a == b and a[1] > 0.9


# --- Power ---------------------------------------------------------------------------------


def test_sample_size_for_proportions_textbook_value():
    # 10% → 12%, α = 0.05 two-sided, power 0.8: the classic 3,841 per group.
    size = power.proportions(baseline=0.10, effect=0.02, alpha=0.05, power=0.8)
    assert size.fixed == 3841
    p1, p2 = 0.10, 0.12
    seq = (sequential.boundary_constant(0.05) + sps.norm.ppf(0.8)) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / 0.02**2
    assert size.sequential == math.ceil(seq)
    assert 1.8 < size.inflation < 2.0


def test_sample_size_for_means_textbook_value():
    # Effect of 0.2 standard deviations: 393 per group.
    assert power.means(sd=1.0, effect=0.2, alpha=0.05, power=0.8).fixed == 393


def test_sample_size_with_more_variants_uses_bonferroni():
    two = power.proportions(baseline=0.2, effect=0.02, alpha=0.05, power=0.8, variants=2)
    four = power.proportions(baseline=0.2, effect=0.02, alpha=0.05, power=0.8, variants=4)
    assert four.alpha_per_comparison == pytest.approx(0.05 / 3)
    assert four.fixed > two.fixed


def test_days_and_detectable_effect_invert_the_sample_size():
    assert power.days_needed(3841, 2, 1000) == 8
    size = power.means(sd=2.0, effect=0.5, alpha=0.05, power=0.8)
    var_at_n = 2 * 4.0 / size.fixed
    assert power.detectable_effect(variance_at_n=var_at_n, alpha=0.05, power=0.8, sequential=False) == \
        pytest.approx(0.5, rel=0.01)


def test_sample_size_refuses_impossible_inputs():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        power.proportions(baseline=0.95, effect=0.1, alpha=0.05, power=0.8)
    with pytest.raises(ValueError):
        power.means(sd=0, effect=1, alpha=0.05, power=0.8)
