"""Estimates, fixed-horizon tests, SRM and Holm against scipy and hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from campaigns.domain.abtest import estimates as est
from campaigns.domain.abtest import holm, srm
from campaigns.domain.abtest.estimates import Mean, Proportion, Ratio


def test_proportion_estimate_and_variance():
    e = est.proportion(Proportion(n=400, x=60))
    assert e.value == pytest.approx(0.15)
    assert e.variance == pytest.approx(0.15 * 0.85 / 400)
    assert est.proportion(Proportion(n=0, x=0)).value is None


def test_mean_estimate_matches_numpy():
    rng = np.random.default_rng(3)
    y = rng.gamma(2.0, 30.0, size=257)
    e = est.mean(Mean(n=len(y), sum=float(y.sum()), sumsq=float((y * y).sum())))
    assert e.value == pytest.approx(y.mean())
    assert e.variance == pytest.approx(y.var(ddof=1) / len(y), rel=1e-9)


def test_two_proportions_wald_test_and_its_interval_by_hand():
    t, c = Proportion(n=1000, x=130), Proportion(n=1100, x=110)
    et, ec = est.proportion(t), est.proportion(c)
    result = est.fixed_test(t, c, et, ec, 0.95)
    se = math.sqrt(0.13 * 0.87 / 1000 + 0.1 * 0.9 / 1100)
    assert result.statistic == pytest.approx(0.03 / se)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(0.03 / se))
    z = sps.norm.ppf(0.975)
    assert result.absolute.lower == pytest.approx(0.03 - z * se)
    assert result.absolute.upper == pytest.approx(0.03 + z * se)


def test_fixed_p_value_and_interval_agree_where_pooled_and_unpooled_split():
    """Issue 12, item 4: 200/2000 against 66/500 had a pooled p = 0.038 beside an unpooled
    interval [−0.00045, +0.0645]. Now both come from the same variance."""
    t, c = Proportion(n=500, x=66), Proportion(n=2000, x=200)
    result = est.fixed_test(t, c, est.proportion(t), est.proportion(c), 0.95)
    pooled_p = sps.chi2_contingency([[66, 434], [200, 1800]], correction=False)[1]
    assert pooled_p < 0.05  # the old, disagreeing p-value
    assert result.p_value > 0.05 and result.absolute.lower < 0 < result.absolute.upper
    assert result.relative.lower < 0 < result.relative.upper
    # At every level, the intervals exclude 0 exactly when p is at most 1 − level.
    for gamma in (0.01, 0.05, 0.0533, 0.0532, 0.1, 0.2):
        absolute, relative = result.at(gamma)
        assert absolute.excludes(0) == (result.p_value <= gamma) == relative.excludes(0)


def test_welch_matches_scipy_ttest_ind_from_stats():
    t = Mean(n=40, sum=40 * 12.5, sumsq=0)
    c = Mean(n=55, sum=55 * 10.0, sumsq=0)
    # Choose sums of squares that give sample SDs 4.0 and 6.0.
    t = Mean(n=40, sum=t.sum, sumsq=39 * 16.0 + t.sum**2 / 40)
    c = Mean(n=55, sum=c.sum, sumsq=54 * 36.0 + c.sum**2 / 55)
    et, ec = est.mean(t), est.mean(c)
    result = est.fixed_test(t, c, et, ec, 0.95)
    ref = sps.ttest_ind_from_stats(12.5, 4.0, 40, 10.0, 6.0, 55, equal_var=False)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    df = (16 / 40 + 36 / 55) ** 2 / ((16 / 40) ** 2 / 39 + (36 / 55) ** 2 / 54)
    assert result.df == pytest.approx(df)
    half = sps.t.ppf(0.975, df) * math.sqrt(16 / 40 + 36 / 55)
    assert result.absolute.upper - result.absolute.estimate == pytest.approx(half)


def test_delta_method_ratio_by_hand():
    # Four units: y (cost) = 10, 20, 30, 40; x (leads) = 1, 2, 2, 5. R = 100/10 = 10.
    # Residuals y − R x = 0, 0, 10, −10, so s² of the linearised variable = 200/3, and
    # Var(R) = (200/3) / (m x̄²) = (200/3) / (4 · 2.5²) = 8/3.
    y, x = np.array([10, 20, 30, 40.0]), np.array([1, 2, 2, 5.0])
    e = est.ratio(Ratio(m=4, sy=y.sum(), sx=x.sum(), syy=(y * y).sum(), sxx=(x * x).sum(), sxy=(x * y).sum()))
    assert e.value == pytest.approx(10.0)
    assert e.variance == pytest.approx(8 / 3)
    # The same from the textbook form (s_y² − 2R s_xy + R² s_x²) / (m x̄²).
    s_y2, s_x2, s_xy = y.var(ddof=1), x.var(ddof=1), np.cov(x, y, ddof=1)[0, 1]
    assert e.variance == pytest.approx((s_y2 - 2 * 10 * s_xy + 100 * s_x2) / (4 * 2.5**2))


def test_delta_method_ratio_against_a_simulation():
    """The delta-method standard error agrees with the spread of the ratio over many samples."""
    rng = np.random.default_rng(11)
    ratios, predicted = [], []
    for _ in range(2000):
        x = rng.poisson(3.0, size=200).astype(float)
        y = x * 12.0 + rng.normal(0, 5.0, size=200) + rng.exponential(4.0, size=200)
        e = est.ratio(Ratio(m=200, sy=y.sum(), sx=x.sum(), syy=(y * y).sum(), sxx=(x * x).sum(), sxy=(x * y).sum()))
        ratios.append(e.value)
        predicted.append(e.variance)
    assert np.var(ratios) == pytest.approx(np.mean(predicted), rel=0.1)


def test_fieller_interval_by_hand_and_by_brute_force():
    # θ̂_t = 0.12, V_t = 1e-4; θ̂_c = 0.10, V_c = 8e-5; c = 1.96.
    tv, tvar, cv, cvar, crit = 0.12, 1e-4, 0.10, 8e-5, 1.96
    lo, hi = est.fieller(tv, tvar, cv, cvar, crit)
    a, b, cc = cv**2 - crit**2 * cvar, tv * cv, tv**2 - crit**2 * tvar
    assert hi == pytest.approx((b + math.sqrt(b * b - a * cc)) / a)
    assert lo == pytest.approx((b - math.sqrt(b * b - a * cc)) / a)
    # The set {ρ : (θ̂_t − ρ θ̂_c)² ≤ c² (V_t + ρ² V_c)} on a fine grid.
    rho = np.linspace(0.5, 2.5, 200_001)
    inside = rho[(tv - rho * cv) ** 2 <= crit**2 * (tvar + rho**2 * cvar)]
    assert inside.min() == pytest.approx(lo, abs=2e-5) and inside.max() == pytest.approx(hi, abs=2e-5)
    assert lo < tv / cv < hi  # the point ratio lies inside; skewed upwards, as a ratio is
    assert hi - tv / cv > tv / cv - lo


def test_relative_interval_stays_above_minus_100_percent_or_is_undefined():
    few, many = Proportion(n=500, x=3), Proportion(n=500, x=60)
    # Treatment with 3 conversions: not distinguishable from 0, so the ratio is not bounded away from 0.
    r = est.fixed_test(few, many, est.proportion(few), est.proportion(many), 0.95)
    assert r.absolute.upper < 0 and r.relative is None
    # 5 against 15 conversions of 500: the delta method's ρ̂ ± 1.96 √Var(ρ̂) reaches below −100 %.
    t, c = Proportion(n=500, x=5), Proportion(n=500, x=15)
    et, ec = est.proportion(t), est.proportion(c)
    delta_method_var = et.variance / ec.value**2 + et.value**2 * ec.variance / ec.value**4
    assert et.value / ec.value - 1 - 1.96 * math.sqrt(delta_method_var) < -1
    r = est.fixed_test(t, c, et, ec, 0.95)
    assert -1 < r.relative.lower < r.relative.estimate < r.relative.upper < 0
    assert r.absolute.upper < 0 and r.p_value < 0.05


def test_welch_relative_interval_uses_the_same_t():
    t = Mean(n=6, sum=6 * 14.0, sumsq=5 * 9.0 + 6 * 14.0**2)
    c = Mean(n=5, sum=5 * 10.0, sumsq=4 * 4.0 + 5 * 10.0**2)
    et, ec = est.mean(t), est.mean(c)
    r = est.fixed_test(t, c, et, ec, 0.95)
    crit = sps.t.ppf(0.975, r.df)
    lo, hi = est.fieller(et.value, et.variance, ec.value, ec.variance, crit)
    assert r.relative.lower == pytest.approx(lo - 1) and r.relative.upper == pytest.approx(hi - 1)
    assert r.absolute.excludes(0) == (r.p_value <= 0.05) == r.relative.excludes(0)


def test_srm_bayes_factor_by_hand():
    # Dirichlet–multinomial against the multinomial, A = 1000, 50/50, counts 30 and 20.
    a, o1, o2 = 1000.0, 30, 20
    log_bf = (
        special.gammaln(a)
        - special.gammaln(a + 50)
        + special.gammaln(500 + o1)
        - special.gammaln(500)
        + special.gammaln(500 + o2)
        - special.gammaln(500)
        - 50 * math.log(0.5)
    )
    check = srm.check([30.0, 20.0], [1, 1])
    assert check.log_bayes_factor == pytest.approx(log_bf, rel=1e-9)
    assert check.p_value == pytest.approx(min(1.0, math.exp(-log_bf)))
    # The chi-square beside it is descriptive only.
    assert check.chi_square == pytest.approx(sps.chisquare([30, 20]).statistic)


def test_srm_flags_a_broken_split_not_an_honest_one():
    broken = srm.check([5000.0, 4500.0], [0.5, 0.5])  # a variant losing one unit in ten
    assert broken.detected and broken.p_value < 1e-4 and broken.bayes_factor > 1e4
    assert not srm.check([5040.0, 4960.0], [0.5, 0.5]).detected
    # Unequal weights: 2:1:1 observed as 2600:1300:1100.
    check = srm.check([2600.0, 1300.0, 1100.0], [2, 1, 1])
    assert check.expected == pytest.approx([2500, 1250, 1250]) and check.detected


def test_srm_is_a_martingale_under_the_null():
    """E[BF] = 1 under the null for any fixed n: the mixture's weights sum to one."""
    n = 40
    k = np.arange(n + 1)
    log_bf = srm.log_bayes_factor(np.stack([k, n - k])[None, :, :], np.array([0.3, 0.7])[None, :, None])
    null = sps.binom.pmf(k, n, 0.3)
    assert float((np.exp(log_bf) * null).sum()) == pytest.approx(1.0, rel=1e-9)


def test_srm_over_weight_epochs():
    # Two epochs: 1000 units at 50/50, then 3000 at 80/20.
    check = srm.check_epochs([([500.0, 500.0], [1, 1]), ([2400.0, 600.0], [0.8, 0.2])])
    assert check.expected == pytest.approx([2900, 1100]) and not check.detected
    # A variant with weight 0 that still gets units is a mismatch outright.
    assert srm.check_epochs([([10.0, 3.0], [1.0, 0.0])]).detected
    # A lasting 10 % loss in one variant is caught across many small epochs: evidence accumulates.
    rng = np.random.default_rng(3)
    epochs = []
    for _ in range(200):
        w = rng.dirichlet([5, 5, 5])
        q = w * np.array([1.0, 1.0, 0.9])
        epochs.append((rng.multinomial(60, q / q.sum()).astype(float).tolist(), w.tolist()))
    assert srm.check_epochs(epochs).detected


def test_srm_waits_for_data():
    assert not srm.check([0.0, 0.0], [0.5, 0.5]).checked
    assert srm.check([3.0, 0.0], [0.5, 0.5]).checked and not srm.check([3.0, 0.0], [0.5, 0.5]).detected


def test_holm_by_hand():
    assert holm.adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm.adjust([0.2]) == [0.2]
    assert holm.adjust([0.6, 0.5]) == pytest.approx([1.0, 1.0])
