"""A test's configuration: what a client sends (`ABTestCreate`), every rule it must satisfy,
and the resolved design the platform runs (`ABTestDesign`).

Field rules live on the fields (pydantic); rules across fields live in `cross_field_problems`,
which reads the raw request leniently so it can run even where some fields are invalid:
a client gets every error of its request at once. Overrides are checked against the
campaign's configuration by the service (they are merge patches of it).
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from campaigns.domain.abtest import power
from campaigns.domain.abtest.catalogue import CATALOGUE, NAMES, Direction, MetricDef
from campaigns.domain.base import ApiModel, ResponseModel

MetricName = Literal[NAMES]  # type: ignore[valid-type]
Mode = Literal["fixed", "sequential", "bandit"]
TestType = Literal["ab", "multivariate"]

MAX_VARIANTS = 10
DEFAULT_MIN_DURATION_DAYS = 7.0


def _metric_shorthand(value: Any) -> Any:
    """`"conversionRate"` means `{"metric": "conversionRate"}`."""
    return {"metric": value} if isinstance(value, str) else value


class MetricSpec(ApiModel):
    metric: MetricName
    direction: Direction | None = Field(
        default=None, description="Which way is better; defaults to the metric's natural direction."
    )

    def definition(self) -> MetricDef:
        return CATALOGUE[self.metric]

    @property
    def higher_is_better(self) -> bool:
        return (self.direction or self.definition().direction) != "decrease"


class GuardrailSpec(MetricSpec):
    margin: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Relative degradation tolerated before a variant counts as harmful (0.02 = 2%).",
    )


Metric = Annotated[MetricSpec, BeforeValidator(_metric_shorthand)]
Guardrail = Annotated[GuardrailSpec, BeforeValidator(_metric_shorthand)]


class VariantOverrides(ApiModel):
    """What a variant changes in the campaign: a merge patch of its configuration."""

    flow_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    voice_settings: dict[str, Any] | None = Field(
        default=None, description="Merge patch of voiceSettings: greeting, style, voice, qualificationThreshold…"
    )
    knowledge_base_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=50
    )

    def patch(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class VariantSpec(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(max_length=1000)] | None = None
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Relative share of traffic (normalised over the variants).",
    )
    control: bool = Field(default=False, description="The reference; defaults to the first variant.")
    overrides: VariantOverrides = Field(default_factory=VariantOverrides)


class BanditSettings(ApiModel):
    floor: float = Field(
        default=0.05, ge=0, le=0.5, description="Least share of traffic each variant keeps, whatever its results."
    )
    warmup_calls_per_variant: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000,
        description="Equal weights until every variant has this many calls (default: minCallsPerVariant).",
    )


class ABTestCreate(ApiModel):
    """A new A/B (two variants) or multivariate (up to ten) test of a campaign."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5000)] | None = None
    type: TestType = "ab"
    variants: list[VariantSpec] = Field(min_length=2, max_length=MAX_VARIANTS)
    primary_metric: Metric
    secondary_metrics: list[Metric] = Field(default_factory=list, max_length=10)
    guardrail_metrics: list[Guardrail] = Field(default_factory=list, max_length=10)
    sample_size: int | None = Field(default=None, ge=10, le=1_000_000_000, description="Calls per variant.")
    minimum_detectable_effect: float | None = Field(
        default=None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Smallest relative lift worth detecting (0.1 = 10%).",
    )
    baseline: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False, description="Expected control value of the primary metric."
    )
    baseline_std_dev: float | None = Field(
        default=None,
        gt=0,
        le=1e12,
        allow_inf_nan=False,
        description="Per-call standard deviation of a mean primary metric.",
    )
    power: float = Field(default=0.8, ge=0.5, le=0.99)
    confidence_level: float = Field(default=0.95, ge=0.8, le=0.999)
    mode: Mode = "sequential"
    min_calls_per_variant: int = Field(default=100, ge=0, le=1_000_000_000)
    min_duration_days: float | None = Field(
        default=None, ge=0, le=365, allow_inf_nan=False, description="Default: 7, or maxDurationDays if shorter."
    )
    max_duration_days: float = Field(default=30, gt=0, le=365, allow_inf_nan=False)
    evaluation_interval_seconds: int = Field(default=3600, ge=5, le=86_400)
    bandit: BanditSettings | None = None
    auto_promote_winner: bool = False


# --- Rules across fields -----------------------------------------------------------------


def _get(raw: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(raw, list) or key >= len(raw):
                return None
        elif not isinstance(raw, dict):
            return None
        raw = raw[key] if isinstance(key, int) else raw.get(key)
    return raw


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _metric_name(value: Any) -> str | None:
    name = value if isinstance(value, str) else _get(value, "metric")
    return name if isinstance(name, str) and name in CATALOGUE else None


def cross_field_problems(raw: Any) -> list[dict[str, str]]:
    """Every rule that spans fields, checked on the raw request (fields that are themselves
    invalid are skipped: pydantic reports those)."""
    if not isinstance(raw, dict):
        return []
    out: list[dict[str, str]] = []

    def bad(field: str, reason: str) -> None:
        out.append({"field": field, "reason": reason})

    variants = raw.get("variants") if isinstance(raw.get("variants"), list) else None
    k = len(variants) if variants is not None else None
    if raw.get("type", "ab") == "ab" and k is not None and k != 2 and 2 <= k <= MAX_VARIANTS:
        bad("variants", f"an 'ab' test has exactly 2 variants (got {k}); use type 'multivariate' for 3 to 10")
    if variants is not None:
        controls = [i for i, v in enumerate(variants) if _get(v, "control") is True]
        if len(controls) > 1:
            bad("variants", f"only one variant can be the control (variants {controls} are)")
        seen: dict[str, int] = {}
        for i, v in enumerate(variants):
            name = _get(v, "name")
            if isinstance(name, str) and name.strip():
                key = name.strip().casefold()
                if key in seen:
                    bad(f"variants[{i}].name", f"repeats the name of variants[{seen[key]}]")
                seen.setdefault(key, i)

    primary = _metric_name(raw.get("primaryMetric"))
    _check_direction(raw.get("primaryMetric"), "primaryMetric", bad)
    for group in ("secondaryMetrics", "guardrailMetrics"):
        items = raw.get(group)
        if not isinstance(items, list):
            continue
        names: dict[str, int] = {}
        for i, item in enumerate(items):
            name = _metric_name(item)
            if name is None:
                continue
            _check_direction(item, f"{group}[{i}]", bad)
            if name == primary:
                bad(f"{group}[{i}].metric", f"{name} is already the primary metric")
            elif name in names:
                bad(f"{group}[{i}].metric", f"repeats {group}[{names[name]}]")
            names.setdefault(name, i)

    mode = raw.get("mode", "sequential")
    sample_size, mde = raw.get("sampleSize"), _num(raw.get("minimumDetectableEffect"))
    baseline, sd = _num(raw.get("baseline")), _num(raw.get("baselineStdDev"))
    kind = CATALOGUE[primary].kind if primary else None
    if sample_size is None and raw.get("minimumDetectableEffect") is None:
        bad("sampleSize", "give sampleSize (calls per variant) or minimumDetectableEffect (relative lift)")
    if kind == "proportion" and baseline is not None and not 0 < baseline < 1:
        bad("baseline", f"a {primary} baseline is a rate strictly between 0 and 1")
    elif kind == "proportion" and baseline is not None and mde is not None and not baseline * (1 + mde) < 1:
        bad("minimumDetectableEffect", f"baseline × (1 + effect) = {baseline * (1 + mde):g} is not a rate below 1")
    if mode == "fixed" and sample_size is None and mde is not None and kind is not None:
        missing = [f for f, v in (("baseline", baseline), ("baselineStdDev", sd)) if v is None]
        if kind == "proportion":
            missing = [f for f in missing if f == "baseline"]
        elif kind == "ratio":
            missing = ["sampleSize"]
        if missing:
            bad(
                "sampleSize",
                "a fixed-horizon test needs its sample size before it starts: give sampleSize, "
                f"or {' and '.join(missing)} with minimumDetectableEffect",
            )
    if kind != "proportion" and baseline == 0 and mde is not None:
        bad("baseline", "a relative effect of a 0 baseline is 0: give a positive baseline")

    lo, hi = _num(raw.get("minDurationDays")), _num(raw.get("maxDurationDays", 30))
    if lo is not None and hi is not None and lo > hi:
        bad("minDurationDays", f"must not exceed maxDurationDays ({hi:g})")
    interval = _num(raw.get("evaluationIntervalSeconds", 3600))
    if interval is not None and hi is not None and interval > hi * 86_400:
        bad("evaluationIntervalSeconds", f"longer than the whole test (maxDurationDays {hi:g})")

    bandit = raw.get("bandit")
    if bandit is not None and mode != "bandit":
        bad("bandit", "bandit settings apply only when mode is 'bandit'")
    floor = _num(_get(bandit, "floor"))
    if mode == "bandit" and k and floor is not None and floor * k > 1:
        bad("bandit.floor", f"{k} variants × floor {floor:g} leave nothing to allocate (must be at most {1 / k:g})")
    return out


def _check_direction(spec: Any, field: str, bad) -> None:
    name = _metric_name(spec)
    if name and CATALOGUE[name].direction is None and _get(spec, "direction") is None:
        bad(
            f"{field}.direction" if isinstance(spec, dict) else field,
            f"{name} has no natural direction: say whether 'increase' or 'decrease' is better",
        )


# --- The resolved design -----------------------------------------------------------------


class Variant(ResponseModel):
    id: str = Field(description="Put this on events as `variantId`.")
    name: str
    description: str | None = None
    weight: float = Field(description="Configured share of traffic, normalised to sum to 1.")
    control: bool
    overrides: dict[str, Any] = Field(default_factory=dict)


class ABTestDesign(ResponseModel):
    """Everything the platform runs a test by, resolved from a `ABTestCreate`."""

    test_id: str
    name: str
    description: str | None = None
    type: TestType
    mode: Mode
    variants: list[Variant]
    primary_metric: MetricSpec
    secondary_metrics: list[MetricSpec] = Field(default_factory=list)
    guardrail_metrics: list[GuardrailSpec] = Field(default_factory=list)
    sample_size: int | None = None  # given by the client
    planned_sample_size: int | None = None  # calls per variant for this mode; None: projected from the data
    minimum_detectable_effect: float | None = None
    baseline: float | None = None
    baseline_std_dev: float | None = None
    power: float
    confidence_level: float
    min_calls_per_variant: int
    min_duration_days: float
    max_duration_days: float
    evaluation_interval_seconds: int
    bandit: BanditSettings | None = None
    auto_promote_winner: bool = False

    @property
    def alpha(self) -> float:
        return 1 - self.confidence_level

    @property
    def comparisons(self) -> int:
        return len(self.variants) - 1

    @property
    def alpha_per_comparison(self) -> float:
        """Bonferroni over the comparisons with control: the level of every interval shown."""
        return self.alpha / max(self.comparisons, 1)

    @property
    def control(self) -> Variant:
        return next(v for v in self.variants if v.control)

    @property
    def treatments(self) -> list[Variant]:
        return [v for v in self.variants if not v.control]

    def metric_specs(self) -> list[MetricSpec]:
        return [self.primary_metric, *self.secondary_metrics, *self.guardrail_metrics]


def new_variant_id() -> str:
    return "var_" + uuid.uuid4().hex[:16]


def resolve(body: ABTestCreate, test_id: str, variant_ids: list[str] | None = None) -> ABTestDesign:
    """The design of a valid request (cross_field_problems already empty)."""
    total = sum(v.weight for v in body.variants)
    control = next((i for i, v in enumerate(body.variants) if v.control), 0)
    ids = variant_ids or [new_variant_id() for _ in body.variants]
    variants = [
        Variant(
            id=ids[i],
            name=v.name,
            description=v.description,
            weight=v.weight / total,
            control=i == control,
            overrides=v.overrides.patch(),
        )
        for i, v in enumerate(body.variants)
    ]
    bandit = body.bandit or (BanditSettings() if body.mode == "bandit" else None)

    def directed(spec):  # the direction in force, written down
        return spec.model_copy(update={"direction": spec.direction or spec.definition().direction})

    return ABTestDesign(
        test_id=test_id,
        name=body.name,
        description=body.description,
        type=body.type,
        mode=body.mode,
        variants=variants,
        primary_metric=directed(body.primary_metric),
        secondary_metrics=[directed(m) for m in body.secondary_metrics],
        guardrail_metrics=[directed(m) for m in body.guardrail_metrics],
        sample_size=body.sample_size,
        planned_sample_size=planned_sample_size(body),
        minimum_detectable_effect=body.minimum_detectable_effect,
        baseline=body.baseline,
        baseline_std_dev=body.baseline_std_dev,
        power=body.power,
        confidence_level=body.confidence_level,
        min_calls_per_variant=body.min_calls_per_variant,
        min_duration_days=body.min_duration_days
        if body.min_duration_days is not None
        else min(DEFAULT_MIN_DURATION_DAYS, body.max_duration_days),
        max_duration_days=body.max_duration_days,
        evaluation_interval_seconds=body.evaluation_interval_seconds,
        bandit=bandit,
        auto_promote_winner=body.auto_promote_winner,
    )


def planned_sample_size(body: ABTestCreate) -> int | None:
    """Calls per variant: as given, or from the MDE and the baseline when both are known."""
    if body.sample_size is not None:
        return body.sample_size
    mde, baseline = body.minimum_detectable_effect, body.baseline
    if mde is None or baseline is None or baseline == 0:
        return None
    metric = CATALOGUE[body.primary_metric.metric]
    alpha, k = 1 - body.confidence_level, len(body.variants)
    effect = mde * baseline
    if metric.kind == "proportion":
        size = power.proportions(baseline=baseline, effect=effect, alpha=alpha, power=body.power, variants=k)
    elif metric.kind == "mean" and body.baseline_std_dev is not None:
        size = power.means(sd=body.baseline_std_dev, effect=effect, alpha=alpha, power=body.power, variants=k)
    else:
        return None
    return size.for_mode(body.mode)
