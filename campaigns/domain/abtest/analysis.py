"""One look at a test: every treatment against control, on every metric of the test.

For each metric and treatment the look gives the two estimates, the absolute and relative
lift with intervals, a p-value, Holm's adjusted p-value across the treatments, and the
Bayesian chance to beat control; the sample-ratio check runs on the primary metric's units.

Intervals are simultaneous over the K − 1 treatments: each is at level 1 − α/(K − 1)
(Bonferroni), so all of them hold together with probability 1 − α. Decisions use Holm's
adjusted p-values at α, which are never less powerful.

Sequential and bandit modes (see `sequential`): at each look, the mixture p-value and
confidence sequence of the difference and of the relative lift, folded into the running
state (minimum p-value, intersected intervals) carried from look to look. The mixing
variance is tuned at the planned sample size N:

    V_N = V_t · u_t / N + V_c · u_c / N        (u: the variants' units — calls — so far)

or, when N is not known in advance but the minimum detectable effect m is, from the effect
the test must detect: V_N = (m · |θ̂_c| / (c_α' + z_{1−β}))².

Fixed mode: the classical tests of `estimates`, which are valid only once every variant
has reached N units. Before that the look says so (`valid` false) and no decision is made.

Bandit mode pools each variant's data over weight epochs: its shares of traffic change, so
the estimates assume the metric does not drift over the test in step with the re-weighting
(the minimum runtime over whole weeks guards against the commonest drift, the weekly cycle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special

from campaigns.domain.abtest import bayes, holm, sequential, srm
from campaigns.domain.abtest.catalogue import MetricDef, stats, units
from campaigns.domain.abtest.config import ABTestDesign, GuardrailSpec, MetricSpec, Variant
from campaigns.domain.abtest.estimates import (
    Estimate,
    Interval,
    Proportion,
    Stats,
    estimate,
    fixed_test,
)
from campaigns.domain.abtest.sequential import Running

Role = Literal["primary", "secondary", "guardrail"]
Outcome = Literal["better", "worse", "equivalent", "inconclusive"]

Sums = dict[str, float]  # one variant's sums, keyed as `catalogue` describes


@dataclass
class Comparison:
    metric: str
    role: Role
    variant_id: str
    treatment: Estimate
    control: Estimate
    absolute: Interval | None = None
    relative: Interval | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    chance_to_beat: float | None = None
    outcome: Outcome = "inconclusive"
    harmful: bool = False  # guardrails (and the primary metric): significantly worse
    note: str | None = None

    @property
    def significant(self) -> bool:
        return self.outcome in ("better", "worse")


@dataclass
class VariantLook:
    variant: Variant
    units: float
    weight: float
    estimates: dict[str, Estimate] = field(default_factory=dict)


@dataclass
class Look:
    """Everything one look found, and the running state to carry to the next."""

    mode: str
    valid: bool  # fixed mode: reached the planned sample size; other modes: always
    planned: int | None  # calls per variant at the planned horizon (given or projected)
    planned_projected: bool
    variants: list[VariantLook]
    comparisons: list[Comparison]
    srm: srm.SrmCheck
    running: dict[str, dict]
    p_best: list[float] | None = None
    notes: list[str] = field(default_factory=list)

    def for_metric(self, metric: str, role: Role | None = None) -> list[Comparison]:
        return [c for c in self.comparisons if c.metric == metric and (role is None or c.role == role)]

    @property
    def primary(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.role == "primary"]

    @property
    def min_units(self) -> float:
        return min((v.units for v in self.variants), default=0)


def running_key(metric: str, variant_id: str) -> str:
    return f"{metric}:{variant_id}"


def look(
    design: ABTestDesign,
    sums: dict[str, Sums],
    *,
    running: dict[str, dict] | None = None,
    weights: dict[str, float] | None = None,
    srm_epochs: list[srm.Epoch] | None = None,
    seed: int = 0,
) -> Look:
    """Analyse the data of one look. `sums` maps each variant id to its sums; `running` is
    the state the previous look returned; `weights` are the current traffic weights (bandit
    mode changes them); `srm_epochs` the (units, weights) of each weight epoch for the
    sample-ratio check when the weights changed over the test (default: the primary metric's
    units against the configured weights)."""
    running = dict(running or {})
    primary_def = design.primary_metric.definition()
    unit = primary_def.unit
    variant_looks = []
    for v in design.variants:
        s = sums.get(v.id, {})
        vl = VariantLook(v, units(unit, s), (weights or {}).get(v.id, v.weight))
        variant_looks.append(vl)
    control_index = next(i for i, v in enumerate(design.variants) if v.control)

    # Sample-ratio mismatch on the primary metric's units (anytime-valid: see `srm`).
    if srm_epochs is None:
        srm_epochs = [([vl.units for vl in variant_looks], [v.weight for v in design.variants])]
    srm_check = srm.check_epochs(srm_epochs)

    mode = design.mode
    alpha = design.alpha
    level_alpha = design.alpha_per_comparison
    level = 1 - level_alpha
    notes: list[str] = []

    planned, projected = design.planned_sample_size, False
    all_stats: dict[str, list[Stats]] = {}
    for spec in design.metric_specs():
        metric = spec.definition()
        per_variant = [stats(metric, sums.get(v.id, {})) for v in design.variants]
        all_stats[spec.metric] = per_variant
        for vl, st in zip(variant_looks, per_variant, strict=True):
            vl.estimates[spec.metric] = estimate(st)
    if planned is None:
        planned = _projected_planned(design, variant_looks, control_index)
        projected = planned is not None

    valid = True
    if mode == "fixed":
        valid = planned is not None and min(vl.units for vl in variant_looks) >= planned
        if not valid:
            have = int(min(vl.units for vl in variant_looks))
            notes.append(
                f"Fixed-horizon test: its p-values and intervals are valid only once every variant has "
                f"{planned if planned is not None else 'the planned number of'} calls (the least has {have}); "
                "reading them earlier inflates false positives, so no decision is made before then."
            )

    comparisons: list[Comparison] = []
    for role, specs in (
        ("primary", [design.primary_metric]),
        ("secondary", design.secondary_metrics),
        ("guardrail", design.guardrail_metrics),
    ):
        for spec in specs:
            metric = spec.definition()
            st = all_stats[spec.metric]
            control = variant_looks[control_index]
            group = []
            for i, vl in enumerate(variant_looks):
                if i == control_index:
                    continue
                comparison = Comparison(spec.metric, role, vl.variant.id, vl.estimates[spec.metric],
                                        control.estimates[spec.metric])
                problem = _data_problem(metric, st[i]) or _data_problem(metric, st[control_index])
                if problem:
                    comparison.note = problem
                elif comparison.treatment.usable and comparison.control.usable:
                    key = running_key(spec.metric, vl.variant.id)
                    if mode == "fixed":
                        _fixed(comparison, st[i], st[control_index], level)
                    else:
                        new_state = _sequential(
                            comparison, Running.from_json(running.get(key)), design, level_alpha,
                            planned=planned, u_t=vl.units, u_c=control.units,
                            is_primary=role == "primary",
                        )
                        running[key] = new_state.to_json()
                    comparison.chance_to_beat = bayes.chance_to_beat(
                        st[i], st[control_index], comparison.treatment, comparison.control,
                        higher_is_better=spec.higher_is_better,
                    )
                group.append(comparison)
            _holm_and_outcomes(group, spec, alpha, valid, design, role)
            comparisons.extend(group)

    p_best = None
    if mode == "bandit":
        p_best = _probability_best(design, all_stats[design.primary_metric.metric], variant_looks, seed)
    return Look(mode, valid, planned, projected, variant_looks, comparisons, srm_check, running, p_best, notes)


def _data_problem(metric: MetricDef, st: Stats) -> str | None:
    if isinstance(st, Proportion) and st.x > st.n:
        return (f"{metric.label}: more successes ({int(st.x)}) than units ({int(st.n)}); "
                "events are missing or mislabelled")
    return None


def _fixed(c: Comparison, t_stats: Stats, c_stats: Stats, level: float) -> None:
    test = fixed_test(t_stats, c_stats, c.treatment, c.control, level)
    if test is None:
        return
    c.p_value = test.p_value
    c.absolute = test.absolute
    c.relative = test.relative


def _z(p: float) -> float:
    return float(special.ndtri(p))


def _sequential(
    c: Comparison,
    previous: Running,
    design: ABTestDesign,
    level_alpha: float,
    *,
    planned: int | None,
    u_t: float,
    u_c: float,
    is_primary: bool,
) -> Running:
    t, ctl = c.treatment, c.control
    delta = t.value - ctl.value  # type: ignore[operator]
    var = t.variance + ctl.variance  # type: ignore[operator]
    if var <= 0:
        # Degenerate samples (every value the same): nothing to learn from this look.
        return previous
    planned_var = _planned_variance(design, t, ctl, planned, u_t, u_c, level_alpha, is_primary)
    tau2 = sequential.mixing_variance(planned_var, level_alpha)
    p = sequential.p_value(delta, var, tau2)
    h = sequential.half_width(var, tau2, level_alpha)
    rel_lo = rel_hi = None
    rel_value = None
    if ctl.value != 0:
        rel_value = t.value / ctl.value - 1  # type: ignore[operator]
        rel_var = t.variance / ctl.value**2 + t.value**2 * ctl.variance / ctl.value**4  # type: ignore[operator]
        if rel_var > 0:
            # The relative lift's variance falls with the data like the difference's.
            rel_tau2 = sequential.mixing_variance(rel_var * planned_var / var, level_alpha)
            rh = sequential.half_width(rel_var, rel_tau2, level_alpha)
            rel_lo, rel_hi = rel_value - rh, rel_value + rh
    state = sequential.advance(previous, p=p, lower=delta - h, upper=delta + h, rel_lower=rel_lo, rel_upper=rel_hi)
    c.p_value = state.p_value
    c.absolute = Interval(delta, state.lower, state.upper)
    if rel_value is not None and math.isfinite(state.rel_lower) and math.isfinite(state.rel_upper):
        c.relative = Interval(rel_value, state.rel_lower, state.rel_upper)
    if state.conflict:
        c.note = ("successive looks disagree beyond their error bounds (a trend over time?): "
                  "the intervals restart from the latest look")
    return state


def _planned_variance(
    design: ABTestDesign, t: Estimate, c: Estimate, planned: int | None, u_t: float, u_c: float,
    level_alpha: float, is_primary: bool,
) -> float:
    """V_N: the variance of the difference expected at the planned horizon."""
    var_now = t.variance + c.variance  # type: ignore[operator]
    if is_primary and design.planned_sample_size is None and design.minimum_detectable_effect and c.value:
        effect = design.minimum_detectable_effect * abs(c.value)
        crit = sequential.boundary_constant(level_alpha) + _z(design.power)
        return (effect / crit) ** 2
    if planned and u_t > 0 and u_c > 0:
        return t.variance * u_t / planned + c.variance * u_c / planned  # type: ignore[operator]
    return var_now


def _projected_planned(design: ABTestDesign, looks: list[VariantLook], control_index: int) -> int | None:
    """Calls per variant at which the primary comparison reaches the variance it needs to
    detect the minimum detectable effect (sequential mode without a baseline)."""
    mde = design.minimum_detectable_effect
    if not mde:
        return None
    metric = design.primary_metric.metric
    control = looks[control_index]
    c = control.estimates[metric]
    worst = None
    for i, vl in enumerate(looks):
        if i == control_index:
            continue
        t = vl.estimates[metric]
        if not (t.usable and c.usable) or not c.value or vl.units <= 0 or control.units <= 0:
            return None
        crit = sequential.boundary_constant(design.alpha_per_comparison) + _z(design.power)
        target = (mde * abs(c.value) / crit) ** 2
        per_unit = t.variance * vl.units + c.variance * control.units  # type: ignore[operator]
        n = math.ceil(per_unit / target)
        worst = n if worst is None else max(worst, n)
    return worst


def _holm_and_outcomes(
    group: list[Comparison], spec: MetricSpec, alpha: float, valid: bool, design: ABTestDesign, role: Role
) -> None:
    ready = [c for c in group if c.p_value is not None and c.absolute is not None]
    if ready:
        for c, adj in zip(ready, holm.adjust([c.p_value for c in ready]), strict=True):  # type: ignore[misc]
            c.adjusted_p_value = adj
    if not valid:
        return
    up = 1.0 if spec.higher_is_better else -1.0
    for c in ready:
        assert c.absolute is not None and c.adjusted_p_value is not None
        improvement = up * c.absolute.estimate
        if c.adjusted_p_value <= alpha and improvement != 0:
            c.outcome = "better" if improvement > 0 else "worse"
        elif role == "primary" and _equivalent(c, design):
            c.outcome = "equivalent"
        # Harm: the whole interval of the improvement lies below −margin.
        margin = spec.margin if isinstance(spec, GuardrailSpec) else 0.0
        if margin > 0 and c.relative is not None:
            worst_case_best = c.relative.upper if up > 0 else -c.relative.lower
            c.harmful = worst_case_best < -margin
        else:
            worst_case_best = c.absolute.upper if up > 0 else -c.absolute.lower
            c.harmful = worst_case_best < 0


def _equivalent(c: Comparison, design: ABTestDesign) -> bool:
    """The interval of the relative lift lies within ±MDE: no effect worth detecting."""
    mde = design.minimum_detectable_effect
    return bool(mde and c.relative is not None and -mde < c.relative.lower and c.relative.upper < mde)


def _probability_best(
    design: ABTestDesign, per_variant: list[Stats], looks: list[VariantLook], seed: int
) -> list[float] | None:
    rng = np.random.default_rng(seed)
    metric = design.primary_metric.metric
    samples = [bayes.draws(st, vl.estimates[metric], 20_000, rng) for st, vl in zip(per_variant, looks, strict=True)]
    return bayes.probability_best(samples, higher_is_better=design.primary_metric.higher_is_better)
