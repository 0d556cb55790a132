"""A test's configuration: every rule, and every error at once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from campaigns.domain.abtest.config import ABTestCreate, cross_field_problems, resolve
from campaigns.errors import field_errors

GOOD = {
    "name": "Greeting",
    "variants": [{"name": "Control"}, {"name": "Warm", "overrides": {"voiceSettings": {"customGreeting": "Hi"}}}],
    "primaryMetric": "conversionRate",
    "sampleSize": 1000,
}


def problems(body: dict) -> dict[str, str]:
    out = {}
    try:
        ABTestCreate.model_validate(body)
    except ValidationError as err:
        out.update({e["field"]: e["reason"] for e in field_errors(err.errors())})
    out.update({e["field"]: e["reason"] for e in cross_field_problems(body)})
    return out


def test_a_good_configuration_resolves_with_defaults():
    assert problems(GOOD) == {}
    d = resolve(ABTestCreate.model_validate(GOOD), "t")
    assert d.mode == "sequential" and d.confidence_level == 0.95 and d.type == "ab"
    assert [v.weight for v in d.variants] == [0.5, 0.5]
    assert d.control.name == "Control" and d.variants[0].control
    assert d.variants[1].overrides == {"voiceSettings": {"customGreeting": "Hi"}}
    assert d.variants[0].id.startswith("var_") and d.variants[0].id != d.variants[1].id
    assert d.min_duration_days == 7 and d.max_duration_days == 30
    assert d.primary_metric.metric == "conversionRate" and d.primary_metric.higher_is_better


def test_weights_normalise_and_control_can_be_any_variant():
    body = {**GOOD, "type": "multivariate", "variants": [
        {"name": "A", "weight": 20}, {"name": "B", "weight": 30, "control": True}, {"name": "C", "weight": 50}]}
    d = resolve(ABTestCreate.model_validate(body), "t")
    assert [v.weight for v in d.variants] == pytest.approx([0.2, 0.3, 0.5])
    assert d.control.name == "B"


def test_min_duration_defaults_to_the_max_when_shorter():
    d = resolve(ABTestCreate.model_validate({**GOOD, "maxDurationDays": 3}), "t")
    assert d.min_duration_days == 3


def test_every_error_at_once():
    body = {
        "name": "",
        "type": "ab",
        "variants": [{"name": "A", "weight": -1, "control": True}, {"name": "a", "control": True},
                     {"name": "C"}],
        "primaryMetric": "averageCallDuration",
        "secondaryMetrics": ["conversionRate", "averageCallDuration", {"metric": "nope"}, "conversionRate"],
        "guardrailMetrics": [{"metric": "customerSatisfaction", "margin": 2}],
        "confidenceLevel": 0.5,
        "mode": "fixed",
        "minimumDetectableEffect": 0.1,
        "minDurationDays": 40,
        "maxDurationDays": 30,
        "bandit": {"floor": 0.1},
        "surprise": True,
    }
    got = problems(body)
    assert got["name"].startswith("String should have at least 1 character")
    assert "greater than 0" in got["variants[0].weight"]
    assert "exactly 2 variants" in got["variants"] or "only one variant" in got["variants"]
    assert "repeats the name of variants[0]" in got["variants[1].name"]
    assert "no natural direction" in got["primaryMetric"]
    assert "already the primary metric" in got["secondaryMetrics[1].metric"]
    assert "repeats secondaryMetrics[0]" in got["secondaryMetrics[3].metric"]
    assert "conversionRate" in got["secondaryMetrics[2].metric"]  # lists the known metrics
    assert "less than 1" in got["guardrailMetrics[0].margin"]
    assert "0.8" in got["confidenceLevel"]
    assert "baseline and baselineStdDev" in got["sampleSize"]
    assert "maxDurationDays" in got["minDurationDays"]
    assert "only when mode is 'bandit'" in got["bandit"]
    assert got["surprise"] == "unknown field"


def test_both_control_and_type_errors_are_listed():
    body = {**GOOD, "variants": [{"name": "A", "control": True}, {"name": "B", "control": True}, {"name": "C"}]}
    reasons = [e["reason"] for e in cross_field_problems(body) if e["field"] == "variants"]
    assert any("exactly 2 variants" in r for r in reasons) and any("only one variant" in r for r in reasons)


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"sampleSize": None}, "sampleSize", "minimumDetectableEffect"),
        ({"baseline": 1.5, "minimumDetectableEffect": 0.1}, "baseline", "strictly between 0 and 1"),
        ({"baseline": 0.6, "minimumDetectableEffect": 1.0}, "minimumDetectableEffect", "not a rate below 1"),
        ({"variants": [{"name": "A"}]}, "variants", "at least 2"),
        ({"type": "multivariate", "variants": [{"name": str(i)} for i in range(11)]}, "variants", "at most 10"),
        ({"mode": "bandit", "type": "multivariate", "variants": [{"name": str(i)} for i in range(5)],
          "bandit": {"floor": 0.3}}, "bandit.floor", "at most 0.2"),
        ({"evaluationIntervalSeconds": 86400, "maxDurationDays": 0.5}, "evaluationIntervalSeconds", "longer"),
        ({"evaluationIntervalSeconds": 1}, "evaluationIntervalSeconds", "greater than or equal to 5"),
        ({"primaryMetric": {"metric": "conversionRate", "direction": "sideways"}}, "primaryMetric.direction",
         "increase"),
        ({"mode": "fixed", "sampleSize": None, "minimumDetectableEffect": 0.1, "primaryMetric": "costPerLead"},
         "sampleSize", "give sampleSize"),
        ({"variants": [{"name": "A"}, {"name": "B", "overrides": {"colour": "red"}}]}, "variants[1].overrides.colour",
         "unknown field"),
    ],
)
def test_single_rules(patch, field, words):
    got = problems({**GOOD, **patch})
    assert field in got, got
    assert words in got[field]
