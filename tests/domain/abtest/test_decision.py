"""One look at a test and what it decides: gates, SRM, Holm, guardrails, harm, futility,
fixed mode before and at its horizon, and bandit weights."""

from __future__ import annotations

import pytest

from campaigns.domain.abtest import analysis, decision
from campaigns.domain.abtest.config import ABTestCreate, cross_field_problems, resolve


def design(**overrides):
    body = {
        "name": "Greeting test",
        "type": "ab",
        "variants": [{"name": "Control"}, {"name": "Warm greeting", "overrides": {"voiceSettings": {"customGreeting": "Hi!"}}}],
        "primaryMetric": "conversionRate",
        "sampleSize": 2000,
        "minDurationDays": 0,
        "minCallsPerVariant": 100,
        **overrides,
    }
    assert cross_field_problems(body) == []
    parsed = ABTestCreate.model_validate(body)
    return resolve(parsed, "test-1", [f"v{i}" for i in range(len(parsed.variants))])


def conv(n, x, **more):
    """A variant's sums for conversionRate with n completed calls and x conversions."""
    return {"conversionRate:n": n, "conversionRate:x": x, "units:calls": n, **more}


def decide(d, sums, runtime_days=10, running=None, **kw):
    look = analysis.look(d, sums, running=running, **kw)
    return look, decision.decide(d, look, runtime_days=runtime_days)


def test_clear_winner_in_sequential_mode():
    d = design()
    look, verdict = decide(d, {"v0": conv(5000, 500), "v1": conv(5000, 650)})
    c = look.primary[0]
    assert c.outcome == "better" and c.p_value < 0.001
    assert c.relative.lower > 0 and c.absolute.estimate == pytest.approx(0.03)
    assert c.chance_to_beat > 0.99
    assert verdict.conclusion == "winner" and verdict.winner == "v1"
    assert "Warm greeting beats control on conversionRate by +30.0%" in verdict.reason


def test_gates_hold_back_a_winner():
    d = design(minCallsPerVariant=10_000)
    _, verdict = decide(d, {"v0": conv(5000, 500), "v1": conv(5000, 650)})
    assert verdict.conclusion is None and "10000 calls per variant" in verdict.reason
    d = design(minDurationDays=7)
    _, verdict = decide(d, {"v0": conv(5000, 500), "v1": conv(5000, 650)}, runtime_days=3)
    assert verdict.conclusion is None and "minimum runtime" in verdict.reason
    # Out of time, still gated: max_duration.
    _, verdict = decide(design(minCallsPerVariant=10_000, maxDurationDays=5), {"v0": conv(50, 5), "v1": conv(50, 6)},
                        runtime_days=5)
    assert verdict.conclusion == "max_duration"


def test_sample_ratio_mismatch_blocks_any_winner_and_says_why():
    d = design()
    look, verdict = decide(d, {"v0": conv(5000, 500), "v1": conv(4500, 650)})
    assert look.primary[0].outcome == "better"  # the statistics alone would pick it…
    assert look.srm.detected
    assert verdict.conclusion == "invalid" and verdict.winner is None
    assert "sample ratio mismatch" in verdict.reason and "Control 5000 (expected 4750)" in verdict.reason


def test_harm_ends_the_test_without_waiting_for_the_minimum_runtime():
    d = design(minDurationDays=14)
    _, verdict = decide(d, {"v0": conv(5000, 650), "v1": conv(5000, 480)}, runtime_days=2)
    assert verdict.conclusion == "harm"
    assert "significantly worse than control" in verdict.reason


def test_a_guardrail_harm_blocks_the_winner():
    d = design(guardrailMetrics=[{"metric": "customerSatisfaction"}])
    sat = lambda n, mean, sd: {"customerSatisfaction:n": n, "customerSatisfaction:sum": n * mean,  # noqa: E731
                               "customerSatisfaction:sq": (n - 1) * sd * sd + n * mean * mean}
    sums = {"v0": conv(5000, 500, **sat(3000, 4.2, 0.8)), "v1": conv(5000, 650, **sat(3000, 3.9, 0.8))}
    look, verdict = decide(d, sums)
    assert look.primary[0].outcome == "better"
    guard = look.for_metric("customerSatisfaction", "guardrail")[0]
    assert guard.harmful
    assert verdict.conclusion == "harm"  # the only treatment is harmful
    assert verdict.blocked["v1"] == ["better on conversionRate, but", "harms guardrail customerSatisfaction"] or \
        "harms guardrail customerSatisfaction" in verdict.blocked["v1"]


def test_guardrail_margin_tolerates_small_degradation():
    d = design(guardrailMetrics=[{"metric": "customerSatisfaction", "margin": 0.2}])
    sat = lambda n, mean, sd: {"customerSatisfaction:n": n, "customerSatisfaction:sum": n * mean,  # noqa: E731
                               "customerSatisfaction:sq": (n - 1) * sd * sd + n * mean * mean}
    sums = {"v0": conv(5000, 500, **sat(3000, 4.2, 0.8)), "v1": conv(5000, 650, **sat(3000, 3.9, 0.8))}
    _, verdict = decide(d, sums)
    assert verdict.conclusion == "winner"


def test_holm_across_three_treatments_and_the_best_worst_case_wins():
    d = design(type="multivariate", variants=[{"name": n} for n in ("Control", "A", "B", "C")])
    sums = {"v0": conv(8000, 800), "v1": conv(8000, 1000), "v2": conv(8000, 1010), "v3": conv(8000, 790)}
    look, verdict = decide(d, sums)
    ps = {c.variant_id: c for c in look.primary}
    assert ps["v3"].outcome == "inconclusive"
    assert ps["v1"].adjusted_p_value >= ps["v1"].p_value
    # The intervals are simultaneous: level 1 − α/3.
    assert verdict.conclusion == "winner" and verdict.winner == "v2"


def test_futility_when_every_interval_lies_within_the_mde():
    d = design(sampleSize=None, minimumDetectableEffect=0.2, baseline=0.1)
    _, verdict = decide(d, {"v0": conv(60_000, 6000), "v1": conv(60_000, 6030)})
    assert verdict.conclusion == "no_difference"
    assert "20%" in verdict.reason


def test_no_difference_at_the_planned_size():
    d = design(sampleSize=1000)
    _, verdict = decide(d, {"v0": conv(1000, 100), "v1": conv(1000, 104)})
    assert verdict.conclusion == "no_difference" and "planned 1000 calls" in verdict.reason


def test_fixed_mode_says_its_results_are_not_valid_before_the_planned_size():
    d = design(mode="fixed", sampleSize=4000)
    look, verdict = decide(d, {"v0": conv(2000, 200), "v1": conv(2000, 300)})
    assert not look.valid
    assert look.primary[0].p_value < 0.001  # a classical p-value, shown…
    assert look.primary[0].outcome == "inconclusive"  # …but not acted on
    assert "valid only once every variant has 4000 calls" in look.notes[0]
    assert verdict.conclusion is None and "fixed horizon" in verdict.reason
    look, verdict = decide(d, {"v0": conv(4000, 400), "v1": conv(4000, 520)})
    assert look.valid and verdict.conclusion == "winner"


def test_fixed_mode_planned_size_from_the_mde():
    d = design(mode="fixed", sampleSize=None, minimumDetectableEffect=0.2, baseline=0.1)
    assert d.planned_sample_size == 3841


def test_sequential_running_state_carries_over():
    d = design()
    first, _ = decide(d, {"v0": conv(3000, 300), "v1": conv(3000, 420)})
    p_first = first.primary[0].p_value
    # The effect then fades: the p-value cannot go back up, the intervals only shrink.
    second, _ = decide(d, {"v0": conv(6000, 600), "v1": conv(6000, 640)}, running=first.running)
    c = second.primary[0]
    assert c.p_value == p_first
    assert c.absolute.lower >= first.primary[0].absolute.lower


def test_sequential_without_baseline_projects_the_planned_size():
    d = design(sampleSize=None, minimumDetectableEffect=0.1)
    look, _ = decide(d, {"v0": conv(1000, 100), "v1": conv(1000, 105)})
    assert look.planned_projected and look.planned > 10_000


def test_means_and_ratios_are_compared():
    d = design(primaryMetric="revenuePerCall", secondaryMetrics=["costPerLead"], sampleSize=2000)
    rev = lambda n, mean, sd: {"revenuePerCall:n": n, "revenuePerCall:sum": n * mean * 1e6,  # noqa: E731
                               "revenuePerCall:sq": (n - 1) * sd * sd + n * mean * mean, "units:calls": n}
    cpl = lambda m, y, x: {"costPerLead:m": m, "costPerLead:sy": y * 1e6, "costPerLead:sx": x,  # noqa: E731
                           "costPerLead:syy": (y / m) ** 2 * m * 1.1e12, "costPerLead:sxx": (x / m) ** 2 * m * 1.1,
                           "costPerLead:sxy": (x / m) * (y / m) * m * 1.05e6}
    sums = {"v0": {**rev(3000, 20.0, 30.0), **cpl(200, 6000, 300)}, "v1": {**rev(3000, 24.0, 30.0), **cpl(200, 5000, 300)}}
    look, verdict = decide(d, sums)
    revenue = look.for_metric("revenuePerCall")[0]
    assert revenue.absolute.estimate == pytest.approx(4.0)
    cost = look.for_metric("costPerLead")[0]
    assert cost.treatment.value == pytest.approx(5000 / 300) and cost.control.value == pytest.approx(20.0)
    assert cost.chance_to_beat > 0.5  # lower is better
    assert verdict.conclusion == "winner"


def test_bad_data_is_reported_not_compared():
    d = design()
    look, verdict = decide(d, {"v0": conv(1000, 1200), "v1": conv(1000, 100)})
    assert "more successes" in look.primary[0].note
    assert look.primary[0].p_value is None
    assert verdict.conclusion is None


def test_bandit_weights_follow_the_evidence_with_a_floor():
    d = design(mode="bandit", type="multivariate", variants=[{"name": n} for n in ("C", "A", "B")],
               bandit={"floor": 0.1})
    look = analysis.look(d, {"v0": conv(2000, 200), "v1": conv(2000, 260), "v2": conv(2000, 190)}, seed=7)
    weights = decision.bandit_weights(d, look)
    assert sum(weights.values()) == pytest.approx(1)
    assert weights["v1"] > 0.75 and min(weights.values()) >= 0.1
    # Before every variant is warm the weights stay.
    cold = analysis.look(d, {"v0": conv(50, 5), "v1": conv(50, 9), "v2": conv(50, 4)}, seed=7)
    assert decision.bandit_weights(d, cold) is None
    assert decision.bandit_weights(design(), analysis.look(design(), {"v0": conv(50, 5), "v1": conv(50, 9)})) is None
