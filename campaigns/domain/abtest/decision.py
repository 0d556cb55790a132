"""What a look means for the test: go on, or conclude — and why.

In order, at every look:

1. `invalid` — a sample-ratio mismatch (the anytime-valid check of `srm`: Bayes factor ≥ 1000,
   p ≤ 0.001, on the primary metric's units): the data cannot be trusted, so no winner is
   ever declared from them.
2. Minimum calls per variant (`minCallsPerVariant`) not reached: go on (or `max_duration`).
3. `harm` — every treatment is significantly worse than control on the primary metric, or
   significantly harms a guardrail: none can win any more. Harm needs the minimum calls but
   not the minimum runtime: a harmful variant should not keep its traffic for a week.
4. Minimum runtime (`minDurationDays`) not reached: go on (or `max_duration`). Weekly cycles
   and novelty effects make early winners unreliable even when the statistics are valid.
5. `winner` — treatments significantly better than control on the primary metric (Holm-
   adjusted p ≤ α, so their interval lies wholly on the better side of 0) that harm no
   guardrail; the one with the best worst case wins: the bound of its relative lift nearest
   0, in the better direction (of the absolute lift if any winner's relative lift is undefined).
6. `no_difference` — futility: every treatment's interval lies within ±MDE of control
   (an effect worth detecting is ruled out), or every variant reached the planned sample size
   without a winner (fixed mode: the one valid analysis, at that size).
7. `max_duration` — the test ran out of time without any of the above.

Every direction (better, worse, harm) is the side of 0 on which the comparison's interval
lies, and the messages quote that same interval (see `analysis`).

Fixed mode decides nothing from the statistics before every variant reaches the planned
sample size (its tests are valid only there); it can still end `invalid` or `max_duration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from campaigns.domain.abtest.analysis import Comparison, Look
from campaigns.domain.abtest.bayes import thompson_weights
from campaigns.domain.abtest.config import ABTestDesign
from campaigns.domain.abtest.srm import THRESHOLD

Conclusion = Literal["winner", "no_difference", "harm", "max_duration", "invalid", "stopped"]


@dataclass
class Gates:
    min_calls: int
    calls: int  # the least any variant has
    min_days: float
    days: float

    @property
    def calls_met(self) -> bool:
        return self.calls >= self.min_calls

    @property
    def runtime_met(self) -> bool:
        return self.days >= self.min_days


@dataclass
class Verdict:
    conclusion: Conclusion | None
    winner: str | None
    reason: str
    gates: Gates
    blocked: dict[str, list[str]] = field(default_factory=dict)  # variant id → why it cannot win
    pending: list[str] = field(default_factory=list)  # what keeps the test going


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def decide(design: ABTestDesign, look: Look, *, runtime_days: float) -> Verdict:
    gates = Gates(design.min_calls_per_variant, int(look.min_units), design.min_duration_days, runtime_days)
    out_of_time = runtime_days >= design.max_duration_days
    names = {v.id: v.name for v in design.variants}
    primary = {c.variant_id: c for c in look.primary}
    metric = design.primary_metric.metric

    if look.srm.detected:
        counts = ", ".join(
            f"{v.name} {int(o)} (expected {e:.0f})"
            for v, o, e in zip(design.variants, look.srm.observed, look.srm.expected, strict=True)
        )
        return Verdict(
            "invalid",
            None,
            f"sample ratio mismatch: {counts}; Bayes factor {look.srm.bayes_factor:.3g} against the weights, "
            f"anytime-valid p = {_fmt_p(look.srm.p_value or 0)} ≤ {THRESHOLD:g}. "
            "Assignment or event logging is broken (a variant losing events, bots, redirects), "
            "so no result of this test can be trusted and no winner is declared.",
            gates,
        )

    blocked: dict[str, list[str]] = {}
    harmful: set[str] = set()
    for variant in design.treatments:
        c = primary.get(variant.id)
        reasons = []
        if c is not None and c.outcome == "worse":
            reasons.append(f"significantly worse than control on {metric}")
            harmful.add(variant.id)
        for g in look.comparisons:
            if g.variant_id == variant.id and g.role == "guardrail" and g.harmful:
                reasons.append(f"harms guardrail {g.metric}")
                harmful.add(variant.id)
        if reasons:
            blocked[variant.id] = reasons

    def go_on(pending: list[str]) -> Verdict:
        if out_of_time:
            return Verdict(
                "max_duration",
                None,
                f"reached its maximum duration ({design.max_duration_days:g} days) without a "
                f"conclusion ({'; '.join(pending)})",
                gates,
                blocked,
                pending,
            )
        return Verdict(None, None, "running: " + "; ".join(pending), gates, blocked, pending)

    if not gates.calls_met:
        return go_on([f"waiting for {design.min_calls_per_variant} calls per variant (the least has {gates.calls})"])
    if not look.valid:
        return go_on([f"fixed horizon: waiting for {look.planned} calls per variant (the least has {gates.calls})"])
    if harmful and len(harmful) == len(design.treatments):
        detail = "; ".join(f"{names[v]}: {', '.join(r)}" for v, r in blocked.items())
        return Verdict("harm", None, f"every treatment is harmful ({detail}); keep the control", gates, blocked)
    if not gates.runtime_met:
        return go_on([f"minimum runtime: {runtime_days:.2f} of {design.min_duration_days:g} days"])

    winners = [c for c in primary.values() if c.outcome == "better" and c.variant_id not in harmful]
    for c in primary.values():
        if c.outcome == "better" and c.variant_id in harmful:
            blocked[c.variant_id].insert(0, f"better on {metric}, but")
    if winners:
        use_relative = all(c.relative is not None for c in winners)
        best = max(winners, key=lambda c: _worst_case(c, relative=use_relative))
        return Verdict("winner", best.variant_id, _winner_reason(design, best, names), gates, blocked)

    undecided = [c for c in primary.values() if c.variant_id not in harmful and c.outcome != "equivalent"]
    if not undecided:
        return Verdict(
            "no_difference",
            None,
            f"no treatment changes {metric} by the minimum detectable effect "
            f"({design.minimum_detectable_effect:.0%}) or more: every interval lies within it",
            gates,
            blocked,
        )
    if look.planned is not None and gates.calls >= look.planned:
        return Verdict(
            "no_difference",
            None,
            f"every variant reached the planned {look.planned} calls without a significant difference on {metric}",
            gates,
            blocked,
        )
    pending = [f"no significant difference on {metric} yet"]
    if look.planned is not None:
        pending.append(f"{gates.calls} of {look.planned} planned calls per variant")
    return go_on(pending)


def _worst_case(c: Comparison, *, relative: bool) -> float:
    """How good the variant is at worst: the bound of its lift nearest 0 on the better side
    (the lower bound where higher is better, minus the upper where lower is)."""
    interval = c.relative if relative else c.absolute
    assert interval is not None
    return interval.lower if c.higher_is_better else -interval.upper


def _winner_reason(design: ABTestDesign, c: Comparison, names: dict[str, str]) -> str:
    level = c.level if c.level is not None else 1 - design.alpha_per_comparison
    parts = [f"{names[c.variant_id]} beats control on {design.primary_metric.metric}"]
    if c.relative is not None:
        parts.append(
            f"by {c.relative.estimate:+.1%} ({level:.1%} interval {c.relative.lower:+.1%} to {c.relative.upper:+.1%})"
        )
    elif c.absolute is not None:
        parts.append(
            f"by {c.absolute.estimate:+.4g} ({level:.1%} interval {c.absolute.lower:+.4g} to {c.absolute.upper:+.4g})"
        )
    parts.append(f"adjusted p = {_fmt_p(c.adjusted_p_value or 0)}")
    reason = " ".join(parts[:2]) + f", {parts[-1]}"
    if c.today is not None:
        # Significance reached at an earlier look stands (that is what keeps it valid under
        # peeking); the reader must still see that today's data alone do not show it.
        reason += (
            f"; the interval is what every look allows together: today's data alone give a difference of "
            f"{c.today:+.4g}, outside it, which the earlier looks rule out"
        )
    return reason


def bandit_weights(design: ABTestDesign, look: Look) -> dict[str, float] | None:
    """Thompson-sampling weights with the configured floor, once every variant is warm;
    None keeps the current weights."""
    if design.mode != "bandit" or look.p_best is None or design.bandit is None:
        return None
    warmup = design.bandit.warmup_calls_per_variant
    if warmup is None:
        warmup = design.min_calls_per_variant
    if look.min_units < max(warmup, 1) or look.srm.detected:
        return None
    weights = thompson_weights(look.p_best, design.bandit.floor)
    return {v.id: w for v, w in zip(design.variants, weights, strict=True)}
