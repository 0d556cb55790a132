"""Request and response shapes of the A/B testing API (camelCase JSON).

The request to create a test is `campaigns.domain.abtest.config.ABTestCreate`, validated by
the service so that every error is listed at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from campaigns.domain.abtest.config import BanditSettings, GuardrailSpec, MetricSpec, Variant
from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.validators import NonNegativeReal


class VariantView(Variant):
    current_weight: float = Field(description="Share of traffic now (bandit mode moves it).")


class ABTest(ResponseModel):
    id: str
    campaign_id: str
    workflow_id: str
    name: str
    description: str | None
    type: str
    mode: str
    status: Literal["running", "concluded"]
    conclusion: str | None
    conclusion_reason: str | None
    winner_variant_id: str | None
    promotion: dict[str, Any] | None
    variants: list[VariantView]
    primary_metric: MetricSpec
    secondary_metrics: list[MetricSpec]
    guardrail_metrics: list[GuardrailSpec]
    sample_size: int | None
    planned_sample_size: int | None = Field(
        description="Calls per variant at the planned horizon (null: projected from the data as it arrives)."
    )
    minimum_detectable_effect: float | None
    baseline: float | None
    baseline_std_dev: float | None
    power: float
    confidence_level: float
    min_calls_per_variant: int
    min_duration_days: float
    max_duration_days: float
    evaluation_interval_seconds: int
    bandit: BanditSettings | None
    auto_promote_winner: bool
    evaluations: int
    last_evaluated_at: datetime | None
    last_decision: str | None
    created_at: datetime
    started_at: datetime
    ends_at: datetime
    concluded_at: datetime | None


# --- Results ---------------------------------------------------------------------------------


class Lift(ResponseModel):
    estimate: float
    lower: float
    upper: float


class MetricValue(ResponseModel):
    value: float | None
    standard_error: float | None
    n: float


class MetricComparison(ResponseModel):
    metric: str
    role: Literal["primary", "secondary", "guardrail"]
    direction: Literal["increase", "decrease"]
    control: float | None
    treatment: float | None
    absolute_lift: Lift | None
    relative_lift: Lift | None = Field(
        description="Fieller's interval; null while a variant's value cannot yet be told from 0 (the note says so)."
    )
    interval_level: float | None = Field(
        default=None,
        description="Level of this comparison's two intervals: the simultaneous one, or Holm's where it "
        "rejects beyond it. Significant exactly when they exclude 0.",
    )
    p_value: float | None = Field(description="Always-valid (sequential, bandit) or classical (fixed).")
    adjusted_p_value: float | None = Field(description="Holm-adjusted across the treatments.")
    chance_to_beat_control: float | None
    outcome: Literal["better", "worse", "equivalent", "inconclusive"]
    harmful: bool
    note: str | None = None


class VariantResult(ResponseModel):
    variant_id: str
    name: str
    is_control: bool
    weight: float
    calls: float = Field(description="Units of the primary metric (calls, or widget impressions).")
    probability_best: float | None = None
    metrics: dict[str, MetricValue]
    comparisons: list[MetricComparison] = Field(default_factory=list, description="Against control.")
    eligible: bool = Field(description="Could win: not blocked by harm on the primary metric or a guardrail.")
    blocked_by: list[str] = Field(default_factory=list)


class SrmResult(ResponseModel):
    checked: bool
    detected: bool
    p_value: float | None = Field(description="Anytime-valid: 1 / the Dirichlet-multinomial Bayes factor, capped at 1.")
    chi_square: float | None = Field(description="Pearson's statistic of the totals, descriptive only.")
    observed: dict[str, float]
    expected: dict[str, float]
    threshold: float = 0.001


class GateResult(ResponseModel):
    min_calls_per_variant: int
    calls_per_variant: int
    min_calls_met: bool
    min_duration_days: float
    runtime_days: float
    min_runtime_met: bool


class Verdict(ResponseModel):
    conclusion: str | None = Field(description="What the test concludes on this data (null: it goes on).")
    winner_variant_id: str | None
    reason: str


class Results(ResponseModel):
    test_id: str
    status: Literal["running", "concluded"]
    mode: str
    method: str
    valid: bool = Field(description="False for a fixed-horizon test read before its planned sample size.")
    confidence_level: float
    interval_level: float = Field(
        description="Simultaneous level over the treatments (1 − α/(K − 1)); a comparison "
        "Holm rejects beyond it shows its own `intervalLevel`."
    )
    planned_calls_per_variant: int | None
    planned_projected: bool
    evaluated_at: datetime
    evaluations: int
    conclusion: str | None
    conclusion_reason: str | None
    winner: str | None
    verdict: Verdict
    srm: SrmResult
    gates: GateResult
    variant_results: list[VariantResult]
    insights: list[str]
    recommendations: list[str]


class Evaluation(ResponseModel):
    seq: int
    evaluated_at: datetime
    conclusion: str | None
    reason: str
    summary: dict[str, Any]
    weights: dict[str, float] | None


# --- Assignment, stop, sample size -------------------------------------------------------


class Assignment(ResponseModel):
    test_id: str
    subject_id: str
    variant_id: str = Field(description="Put this on the subject's events as `variantId`.")
    variant_name: str
    is_control: bool
    overrides: dict[str, Any]
    configuration: dict[str, Any] = Field(
        description="flowId, voiceSettings and knowledgeBaseIds to use: "
        "the campaign's, with the variant's overrides applied."
    )


class SampleSizeRequest(ApiModel):
    metric_type: Literal["proportion", "mean"] = Field(
        default="proportion", description="A rate (conversion) or a mean (revenue per call, duration)."
    )
    baseline: NonNegativeReal = Field(description="Control's expected rate (proportion) or mean.")
    standard_deviation: Annotated[NonNegativeReal, Field(gt=0)] | None = Field(
        default=None, description="Per-call standard deviation (means only)."
    )
    minimum_detectable_effect: Annotated[NonNegativeReal, Field(gt=0)]
    effect_type: Literal["relative", "absolute"] = "relative"
    power: float = Field(default=0.8, ge=0.5, le=0.99)
    confidence_level: float = Field(default=0.95, ge=0.8, le=0.999)
    variants: int = Field(default=2, ge=2, le=10, description="Including control.")
    daily_traffic: float | None = Field(
        default=None, ge=1, le=1e9, allow_inf_nan=False, description="Calls a day across all variants."
    )
    mode: Literal["fixed", "sequential", "bandit"] = "sequential"


class SampleSize(ResponseModel):
    calls_per_variant: int = Field(description="For the requested mode.")
    total_calls: int
    days_needed: int | None
    fixed_horizon_calls_per_variant: int
    sequential_calls_per_variant: int
    sequential_inflation: float
    absolute_effect: float
    alpha_per_comparison: float
    notes: list[str]
