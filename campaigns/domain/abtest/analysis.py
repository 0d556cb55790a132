"""One look at a test: every treatment against control, on every metric of the test.

For each metric and treatment the look gives the two estimates, the absolute and relative
lift with intervals, a p-value, Holm's adjusted p-value across the treatments, and the
Bayesian chance to beat control; the sample-ratio check runs on the primary metric's units.

What is shown never contradicts itself
--------------------------------------
For every comparison, at every look:

- it is significant exactly when Holm's procedure rejects it (adjusted p ≤ α), exactly when
  0 lies outside its absolute interval, exactly when 0 lies outside its relative interval;
- its direction (`better` / `worse`, harm) is the side of 0 on which the interval lies —
  never the sign of today's point estimate, which in sequential mode can lie outside the
  running interval (the intersection of every look's interval);
- the point estimate shown lies in the interval shown: in sequential mode, today's estimate
  if the running interval contains it, otherwise the interval's nearest point, with a note
  giving today's value and why it is not shown;
- relative bounds lie above −100 % (Fieller's interval, see `estimates`), or the relative
  lift is reported as undefined, with the reason.

Levels: Holm's step-down with intervals that agree with it
----------------------------------------------------------
With m = K − 1 treatments, Holm's procedure tests the comparison with the i-th smallest
p-value at α/(m − i + 1) and stops at the first it cannot reject. Each comparison's intervals
are shown at the simultaneous (Bonferroni) level 1 − α/m — unless Holm rejects it where
Bonferroni would not (α/m < p ≤ α/(m − i + 1)), in which case they are shown at the level
1 − α/(m − i + 1) at which Holm rejected it, and that level is reported with the comparison.
Then 0 lies outside the interval exactly when Holm rejects: a rejected comparison's
p-value is at most the level shown; one that is not rejected has p > α/(m − r) ≥ α/m (r
rejected before it). Intervals at the Bonferroni level hold simultaneously with probability
1 − α; the family-wise error of the decisions is α (Holm). No informative intervals are
simultaneous and compatible with Holm's extra rejections, hence the per-comparison level.

The interval shown is the one every decision reads: significance and direction, the winner's
ranking (the best worst case of the relative lift), equivalence (the relative interval within
±MDE), a guardrail's harm (beyond its margin), and the messages.

Sequential and bandit modes (see `sequential`): at each look, the mixture p-value and
confidence sequence of the difference, and Fieller's confidence sequence of the relative
lift, folded into the running state (minimum p-value, intersected intervals at every Holm
level) carried from look to look. The mixing variance is tuned at the planned sample size N:

    V_N = V_t · u_t / N + V_c · u_c / N        (u: the variants' units — calls — so far)

or, when N is not known in advance but the minimum detectable effect m is, from the effect
the test must detect: V_N = (m · |θ̂_c| / (c_α' + z_{1−β}))². A look without variance (every
value alike) changes nothing: the previous state is carried forward, comparison included.

Fixed mode: the classical tests of `estimates`, which are valid only once every variant
has reached N units. Before that the look says so (`valid` false) and no decision is made
(the numbers are shown, and agree with each other, but decide nothing).

Bandit mode pools each variant's data over weight epochs: its shares of traffic change, so
the estimates assume the metric does not drift over the test in step with the re-weighting
(the minimum runtime over whole weeks guards against the commonest drift, the weekly cycle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from scipy import special

from campaigns.domain.abtest import bayes, holm, sequential, srm
from campaigns.domain.abtest.catalogue import MetricDef, stats, units
from campaigns.domain.abtest.config import ABTestDesign, GuardrailSpec, MetricSpec, Variant
from campaigns.domain.abtest.estimates import (
    Estimate,
    FixedTest,
    Interval,
    Proportion,
    Stats,
    difference,
    estimate,
    fixed_test,
    relative_bounds,
    relative_point,
)
from campaigns.domain.abtest.sequential import Running

Role = Literal["primary", "secondary", "guardrail"]
Outcome = Literal["better", "worse", "equivalent", "inconclusive"]

Sums = dict[str, float]  # one variant's sums, keyed as `catalogue` describes


@dataclass(frozen=True)
class Shown:
    """A comparison's intervals at one level, the notes that explain them, and today's
    difference when the estimate shown is not it (it lies outside the running interval)."""

    absolute: Interval
    relative: Interval | None
    notes: list[str]
    today: float | None = None


class Evidence(Protocol):
    """What a comparison's test found, able to give its intervals at any Holm level."""

    @property
    def p_value(self) -> float: ...

    def at(self, gamma: float) -> Shown: ...


@dataclass
class Comparison:
    metric: str
    role: Role
    variant_id: str
    treatment: Estimate
    control: Estimate
    higher_is_better: bool = True
    absolute: Interval | None = None
    relative: Interval | None = None
    level: float | None = None  # confidence level of the two intervals shown
    p_value: float | None = None
    adjusted_p_value: float | None = None
    chance_to_beat: float | None = None
    significant: bool = False  # Holm rejects "no difference"; exactly when 0 lies outside `absolute`
    today: float | None = None  # sequential: today's difference, when it lies outside `absolute` (see `note`)
    outcome: Outcome = "inconclusive"
    harmful: bool = False  # guardrails (and the primary metric): significantly worse
    note: str | None = None
    evidence: Evidence | None = field(default=None, repr=False)

    def add_note(self, text: str) -> None:
        self.note = text if not self.note else f"{self.note}; {text}"


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


def holm_levels(design: ABTestDesign) -> tuple[float, ...]:
    """γ = α/m, α/(m − 1), …, α/1: every level Holm's step-down may test a comparison at."""
    m = max(design.comparisons, 1)
    return tuple(_step_level(design.alpha, j) for j in range(m, 0, -1))


def _step_level(alpha: float, remaining: int) -> float:
    # One expression for every use, so the levels compare equal as floats.
    return alpha / remaining


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
    gammas = holm_levels(design)
    notes: list[str] = []

    planned, projected = design.planned_sample_size, False
    all_stats: dict[str, list[Stats]] = {}
    for spec in design.metric_specs():
        metric = spec.definition()
        per_variant = [stats(metric, sums.get(v.id, {})) for v in design.variants]
        all_stats[spec.metric] = per_variant
        for vl, variant_stats in zip(variant_looks, per_variant, strict=True):
            vl.estimates[spec.metric] = estimate(variant_stats)
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
    roles: tuple[tuple[Role, Sequence[MetricSpec]], ...] = (
        ("primary", [design.primary_metric]),
        ("secondary", design.secondary_metrics),
        ("guardrail", design.guardrail_metrics),
    )
    for role, specs in roles:
        for spec in specs:
            metric = spec.definition()
            st = all_stats[spec.metric]
            control = variant_looks[control_index]
            group = []
            for i, vl in enumerate(variant_looks):
                if i == control_index:
                    continue
                comparison = Comparison(
                    spec.metric,
                    role,
                    vl.variant.id,
                    vl.estimates[spec.metric],
                    control.estimates[spec.metric],
                    spec.higher_is_better,
                )
                problem = _data_problem(metric, st[i]) or _data_problem(metric, st[control_index])
                if problem:
                    comparison.note = problem
                elif comparison.treatment.usable and comparison.control.usable:
                    key = running_key(spec.metric, vl.variant.id)
                    if mode == "fixed":
                        test = fixed_test(
                            st[i], st[control_index], comparison.treatment, comparison.control, 1 - gammas[0]
                        )
                        comparison.evidence = FixedEvidence(test) if test is not None else None
                    else:
                        new_state = _sequential(
                            comparison,
                            Running.from_json(running.get(key)),
                            design,
                            gammas,
                            planned=planned,
                            u_t=vl.units,
                            u_c=control.units,
                            is_primary=role == "primary",
                        )
                        running[key] = new_state.to_json()
                    comparison.chance_to_beat = bayes.chance_to_beat(
                        st[i],
                        st[control_index],
                        comparison.treatment,
                        comparison.control,
                        higher_is_better=spec.higher_is_better,
                    )
                group.append(comparison)
            _holm_and_outcomes(group, spec, design, valid, role)
            comparisons.extend(group)

    p_best = None
    if mode == "bandit":
        p_best = _probability_best(design, all_stats[design.primary_metric.metric], variant_looks, seed)
    return Look(mode, valid, planned, projected, variant_looks, comparisons, srm_check, running, p_best, notes)


def _data_problem(metric: MetricDef, st: Stats) -> str | None:
    if isinstance(st, Proportion) and st.x > st.n:
        return (
            f"{metric.label}: more successes ({int(st.x)}) than units ({int(st.n)}); events are missing or mislabelled"
        )
    return None


def _z(p: float) -> float:
    return float(special.ndtri(p))


# --- Evidence: a comparison's test, able to give its intervals at any level ---------------


@dataclass(frozen=True)
class FixedEvidence:
    test: FixedTest

    @property
    def p_value(self) -> float:
        return self.test.p_value

    def at(self, gamma: float) -> Shown:
        absolute, rel = self.test.at(gamma)
        notes = [] if rel is not None or relative_point(self.test.t, self.test.c) is None else [_UNDEFINED_RELATIVE]
        return Shown(absolute, rel, notes)


_UNDEFINED_RELATIVE = (
    "relative lift undefined at this level: a variant's value is not yet distinguishable "
    "from 0, so no ratio of the two can be bounded (the absolute lift is)"
)


@dataclass(frozen=True)
class SequentialEvidence:
    state: Running
    delta: float  # today's estimates, from all the data so far
    relative: float | None
    carried: bool = False  # this look had no variance: the state is the previous look's

    @property
    def p_value(self) -> float:
        return self.state.p_value

    def at(self, gamma: float) -> Shown:
        s, i = self.state, self.state.index(gamma)
        lo, hi = s.lower[i], s.upper[i]
        notes = []
        if self.carried:
            notes.append(
                "this look's data have no variance (every value alike), so they carry no evidence: "
                "the previous look's result stands"
            )
        if s.restarted and not self.carried:
            notes.append(
                "this look disagrees with the earlier ones beyond their error bounds (the effect "
                "changed over time?): the p-value and intervals restart from this look"
            )
        elif s.restarts:
            notes.append(
                f"the looks disagreed beyond their error bounds {s.restarts} time(s) (the effect "
                "changed over time?); the p-value and intervals restarted then"
            )
        shown = min(max(self.delta, lo), hi)
        if shown != self.delta:
            notes.append(
                f"today's difference ({self.delta:+.4g}) lies outside the interval every look allows together "
                f"([{lo:+.4g}, {hi:+.4g}]): earlier looks rule it out, so the estimate shown is the "
                "interval's nearest point"
            )
        absolute = Interval(shown, lo, hi)
        rlo, rhi = s.rel_lower[i], s.rel_upper[i]
        rel = None
        if self.relative is not None and math.isfinite(rlo) and math.isfinite(rhi):
            if (rlo > 0 or rhi < 0) == absolute.excludes(0):
                rel = Interval(min(max(self.relative, rlo), rhi), rlo, rhi)
            else:
                notes.append(
                    "relative lift withheld: the look that set the difference apart from 0 had too few "
                    "events to bound a ratio, and the looks that did bound it do not exclude 0"
                )
        elif self.relative is not None:
            notes.append(_UNDEFINED_RELATIVE)
        return Shown(absolute, rel, notes, None if shown == self.delta else self.delta)


def _sequential(
    c: Comparison,
    previous: Running,
    design: ABTestDesign,
    gammas: tuple[float, ...],
    *,
    planned: int | None,
    u_t: float,
    u_c: float,
    is_primary: bool,
) -> Running:
    t, ctl = c.treatment, c.control
    delta, var = difference(t, ctl)
    rel_now = relative_point(t, ctl)
    carried_on = previous.started and previous.kept_at(gammas)
    if not var > 0 or not math.isfinite(var):
        # Degenerate samples (every value the same): nothing to learn from this look.
        if carried_on:
            c.evidence = SequentialEvidence(previous, delta, rel_now, carried=True)
        else:
            c.note = "no variance in the data yet (every value alike): nothing to compare"
        return previous
    planned_var = _planned_variance(design, t, ctl, planned, u_t, u_c, gammas[0], is_primary)
    tau2 = sequential.mixing_variance(planned_var, gammas[0])
    levels = np.array(gammas)
    p, h = sequential.look_bounds(delta, var, tau2, levels)
    # Fieller's interval at this look's half-width in standard errors (see `sequential`).
    rlo, rhi = relative_bounds(t, ctl, h / math.sqrt(var), p <= levels, delta)
    state = sequential.advance(
        previous if carried_on else Running(), gammas, p=p, delta=delta, h=h, rel_lower=rlo, rel_upper=rhi
    )
    c.evidence = SequentialEvidence(state, delta, rel_now)
    return state


def _planned_variance(
    design: ABTestDesign,
    t: Estimate,
    c: Estimate,
    planned: int | None,
    u_t: float,
    u_c: float,
    level_alpha: float,
    is_primary: bool,
) -> float:
    """V_N: the variance of the difference expected at the planned horizon."""
    (_, tvar), (cv, cvar) = t.parts(), c.parts()
    var_now = tvar + cvar
    if is_primary and design.planned_sample_size is None and design.minimum_detectable_effect and cv:
        effect = design.minimum_detectable_effect * abs(cv)
        crit = sequential.boundary_constant(level_alpha) + _z(design.power)
        return (effect / crit) ** 2
    if planned and u_t > 0 and u_c > 0:
        return tvar * u_t / planned + cvar * u_c / planned
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
        (_, tvar), (cv, cvar) = t.parts(), c.parts()
        crit = sequential.boundary_constant(design.alpha_per_comparison) + _z(design.power)
        target = (mde * abs(cv) / crit) ** 2
        per_unit = tvar * vl.units + cvar * control.units
        if per_unit <= 0:
            return None
        n = math.ceil(per_unit / target)
        worst = n if worst is None else max(worst, n)
    return worst


# --- Holm, the levels shown, and what each comparison means --------------------------------


def _holm_and_outcomes(
    group: list[Comparison], spec: MetricSpec, design: ABTestDesign, valid: bool, role: Role
) -> None:
    alpha = design.alpha
    evidence = [(c, c.evidence) for c in group if c.evidence is not None]
    if not evidence:
        return
    ready = [c for c, _ in evidence]
    ps = [e.p_value for _, e in evidence]
    for c, p, adj in zip(ready, ps, holm.adjust(ps), strict=True):
        c.p_value, c.adjusted_p_value = p, adj
    # Holm's step-down, at the very levels the intervals are kept at.
    rejected_at: dict[int, float] = {}
    order = sorted(range(len(ready)), key=lambda i: ps[i])
    for step, i in enumerate(order):
        gamma = _step_level(alpha, len(ready) - step)
        if ps[i] > gamma:
            break
        rejected_at[i] = gamma
    simultaneous = _step_level(alpha, max(design.comparisons, 1))
    for i, (c, e) in enumerate(evidence):
        gamma = simultaneous
        if i in rejected_at and ps[i] > simultaneous:
            gamma = rejected_at[i]  # rejected by Holm beyond Bonferroni: shown at Holm's level
        shown = e.at(gamma)
        c.absolute, c.relative, c.today = shown.absolute, shown.relative, shown.today
        c.level = 1 - gamma
        c.significant = i in rejected_at
        for note in shown.notes:
            c.add_note(note)
    if not valid:
        return
    up = 1.0 if spec.higher_is_better else -1.0
    margin = spec.margin if isinstance(spec, GuardrailSpec) else 0.0
    for c in ready:
        assert c.absolute is not None
        if c.significant:
            side = 1.0 if c.absolute.lower > 0 else -1.0  # the side of 0 the interval lies on
            c.outcome = "better" if side * up > 0 else "worse"
        elif role == "primary" and _equivalent(c, design):
            c.outcome = "equivalent"
        c.harmful = _harmful(c, up, margin)


def _harmful(c: Comparison, up: float, margin: float) -> bool:
    """Harm: the whole interval of the improvement lies below −margin (relative), or below 0
    without a margin. Without a relative interval (too few events) the margin is applied to
    control's value: the absolute interval must lie below −margin · |θ̂_c|."""
    assert c.absolute is not None
    if margin > 0 and c.relative is not None:
        best_case = c.relative.upper if up > 0 else -c.relative.lower
        return best_case < -margin
    allowance = margin * abs(c.control.value or 0.0)
    best_case = c.absolute.upper if up > 0 else -c.absolute.lower
    return c.significant and best_case < -allowance


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
