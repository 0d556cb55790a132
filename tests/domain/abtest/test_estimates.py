"""Estimates, fixed-horizon tests, SRM and Holm against scipy and hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest
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


def test_two_proportions_match_scipy_chi_square_and_wald_interval():
    t, c = Proportion(n=1000, x=130), Proportion(n=1100, x=110)
    et, ec = est.proportion(t), est.proportion(c)
    result = est.fixed_test(t, c, et, ec, 0.95)
    table = [[130, 870], [110, 990]]
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
    se = math.sqrt(0.13 * 0.87 / 1000 + 0.1 * 0.9 / 1100)
    z = sps.norm.ppf(0.975)
    assert result.absolute.lower == pytest.approx(0.03 - z * se)
    assert result.absolute.upper == pytest.approx(0.03 + z * se)


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


def test_relative_lift_by_the_delta_method():
    t, c = est.Estimate(0.12, 0.0001, 1000), est.Estimate(0.10, 0.00008, 1000)
    value, var = est.relative(t, c)
    assert value == pytest.approx(0.2)
    assert var == pytest.approx(0.0001 / 0.01 + 0.0144 * 0.00008 / 0.0001)
    assert est.relative(t, est.Estimate(0.0, 0.0, 10)) is None


def test_srm_matches_scipy_chisquare():
    observed = [5210.0, 4790.0]
    check = srm.check(observed, srm.expected_counts(10_000, [0.5, 0.5]))
    ref = sps.chisquare(observed, [5000, 5000])
    assert check.chi_square == pytest.approx(ref.statistic)
    assert check.p_value == pytest.approx(ref.pvalue)
    assert check.detected  # p ≈ 2.7e-5
    assert not srm.check([5040.0, 4960.0], [5000.0, 5000.0]).detected


def test_srm_with_unequal_weights_and_epochs():
    observed = [2600.0, 1300.0, 1100.0]
    expected = srm.expected_counts(5000, [2, 1, 1])
    ref = sps.chisquare(observed, expected)
    assert srm.check(observed, expected).p_value == pytest.approx(ref.pvalue)
    # Two epochs: 1000 units at 50/50, then 3000 at 80/20.
    assert srm.expected_over_epochs([(1000, [1, 1]), (3000, [0.8, 0.2])]) == pytest.approx([2900, 1100])


def test_srm_waits_for_enough_data():
    assert not srm.check([3.0, 0.0], [1.5, 1.5]).checked


def test_holm_by_hand():
    assert holm.adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm.adjust([0.2]) == [0.2]
    assert holm.adjust([0.6, 0.5]) == pytest.approx([1.0, 1.0])
