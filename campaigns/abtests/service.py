"""A/B test use cases: create, read, list, results, assign, stop, evaluations, sample size.

A test's design belongs to Postgres; its phase (running → concluded) to its workflow
`abtest-<id>`, a child of the campaign's workflow, which evaluates it on a timer and
concludes it. The API starts a test through the campaign's workflow and stops one by asking
the test's workflow; it never writes a test's status itself.

Results are computed on request from the per-variant sums of the analytics rollups (one
indexed aggregate over at most a few thousand rows) and the sequential state of the latest
evaluation: always-valid inference may be looked at any time, so a look between evaluations
is as valid as theirs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError
from temporalio.client import Client

from campaigns.abtests import repository as repo
from campaigns.abtests import workflow_client
from campaigns.abtests.models import (
    ABTest,
    Assignment,
    Evaluation,
    GateResult,
    Lift,
    MetricComparison,
    MetricValue,
    Results,
    SampleSize,
    SampleSizeRequest,
    SrmResult,
    VariantResult,
    VariantView,
    Verdict,
)
from campaigns.auth.principals import Principal
from campaigns.campaigns import repository as campaigns_repo
from campaigns.campaigns.cache import CampaignCache
from campaigns.campaigns.service import get_row as get_campaign_row
from campaigns.campaigns.service import merge_patch
from campaigns.db import Conn
from campaigns.domain import periods
from campaigns.domain.abtest import analysis, assignment, bayes, decision, power, srm
from campaigns.domain.abtest.catalogue import CATALOGUE
from campaigns.domain.abtest.config import (
    ABTestCreate,
    ABTestDesign,
    cross_field_problems,
    resolve,
)
from campaigns.domain.config import FINISHED_STATUSES, CampaignConfiguration, CampaignStatus
from campaigns.errors import Conflict, NotFound, field_errors, invalid
from campaigns.messages.abtest import ABTestStart, StopRequest, workflow_id
from campaigns.messages.common import Actor
from campaigns.settings import Settings

# A draft has no workflow to run a test under (and nothing to test yet): activate it first.
_TESTABLE = {CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.PAUSED}
_OVERRIDABLE = ("flowId", "voiceSettings", "knowledgeBaseIds")


# --- Reading ---------------------------------------------------------------------------------


def design_of(row: asyncpg.Record) -> ABTestDesign:
    return ABTestDesign.model_validate(row["design"])


def to_test(row: asyncpg.Record) -> ABTest:
    d = design_of(row)
    weights = row["weights"] or {}
    return ABTest(
        id=str(row["id"]),
        campaign_id=str(row["campaign_id"]),
        workflow_id=workflow_id(str(row["id"])),
        name=d.name,
        description=d.description,
        type=d.type,
        mode=d.mode,
        status=row["status"],
        conclusion=row["conclusion"],
        conclusion_reason=row["conclusion_reason"],
        winner_variant_id=row["winner_variant_id"],
        promotion=row["promotion"],
        variants=[VariantView(**v.model_dump(), current_weight=weights.get(v.id, v.weight)) for v in d.variants],
        primary_metric=d.primary_metric,
        secondary_metrics=d.secondary_metrics,
        guardrail_metrics=d.guardrail_metrics,
        sample_size=d.sample_size,
        planned_sample_size=d.planned_sample_size,
        minimum_detectable_effect=d.minimum_detectable_effect,
        baseline=d.baseline,
        baseline_std_dev=d.baseline_std_dev,
        power=d.power,
        confidence_level=d.confidence_level,
        min_calls_per_variant=d.min_calls_per_variant,
        min_duration_days=d.min_duration_days,
        max_duration_days=d.max_duration_days,
        evaluation_interval_seconds=d.evaluation_interval_seconds,
        bandit=d.bandit,
        auto_promote_winner=d.auto_promote_winner,
        evaluations=row["evaluations"],
        last_evaluated_at=row["last_evaluated_at"],
        last_decision=(row["last_summary"] or {}).get("reason"),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ends_at=row["ends_at"],
        concluded_at=row["concluded_at"],
    )


async def get_row(
    pool: Conn,
    cache: CampaignCache | None,
    principal: Principal,
    campaign_id: UUID,
    test_id: UUID,
) -> asyncpg.Record:
    row = await repo.get(pool, organization_id=principal.organization_id, campaign_id=campaign_id, test_id=test_id)
    if row is None:
        # Another organization's test (or campaign) is indistinguishable from a missing one.
        await get_campaign_row(pool, cache, principal, campaign_id)
        raise NotFound("A/B test not found", code="ab_test_not_found")
    return row


async def get(
    *, pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID, test_id: UUID
) -> ABTest:
    """Get one test of one of the organization's campaigns."""
    return to_test(await get_row(pool, cache, principal, campaign_id, test_id))


async def list_(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    principal: Principal,
    campaign_id: UUID,
    status: str | None,
    page: int,
    limit: int,
) -> tuple[list[ABTest], int]:
    """The campaign's tests, newest first."""
    await get_campaign_row(pool, cache, principal, campaign_id)
    rows, total = await repo.list_(
        pool,
        organization_id=principal.organization_id,
        campaign_id=campaign_id,
        status=status,
        limit=limit,
        offset=(page - 1) * limit,
    )
    return [to_test(r) for r in rows], total


# --- Creating --------------------------------------------------------------------------------


def validate(body: Any, campaign_config: dict[str, Any]) -> tuple[ABTestCreate | None, list[dict[str, str]]]:
    """The parsed request and every problem with it: field rules, rules across fields, and
    each variant's overrides merged into the campaign's configuration."""
    errors: list[dict[str, str]] = []
    parsed = None
    try:
        parsed = ABTestCreate.model_validate(body)
    except ValidationError as err:
        errors += field_errors(err.errors())
    errors += cross_field_problems(body)
    reported = {e["field"] for e in errors}
    # An override's field rule fails again in the merged configuration: report it once.
    errors += [e for e in overrides_problems(body, campaign_config) if e["field"] not in reported]
    return parsed, errors


def overrides_problems(body: Any, campaign_config: dict[str, Any]) -> list[dict[str, str]]:
    """Each variant's overrides must make a valid campaign configuration (a voice must still
    speak the language, a speaking rate stay within bounds…)."""
    variants = body.get("variants") if isinstance(body, dict) else None
    if not isinstance(variants, list):
        return []
    out = []
    for i, variant in enumerate(variants):
        overrides = variant.get("overrides") if isinstance(variant, dict) else None
        if not isinstance(overrides, dict):
            continue
        patch = {k: overrides[k] for k in _OVERRIDABLE if overrides.get(k) is not None}
        if not patch:
            continue
        try:
            CampaignConfiguration.model_validate(merge_patch(campaign_config, patch))
        except ValidationError as err:
            for e in field_errors(err.errors()):
                if e["field"].split(".")[0].split("[")[0] in patch:
                    out.append({"field": f"variants[{i}].overrides.{e['field']}", "reason": e["reason"]})
    return out


async def create(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    body: Any,
) -> ABTest:
    """Create a test of a campaign and start its workflow (a child of the campaign's)."""
    campaign = await get_campaign_row(pool, cache, principal, campaign_id)
    if campaign["status"] not in _TESTABLE:
        raise Conflict(
            f"a campaign that is {campaign['status']} cannot start an A/B test",
            code="campaign_not_testable",
            details={"status": campaign["status"]},
        )
    parsed, errors = validate(body, campaign["config"])
    if errors or parsed is None:
        raise invalid(errors, "invalid A/B test configuration")
    test_id = uuid.uuid4()
    design = resolve(parsed, str(test_id))
    started_at = datetime.now(UTC)
    ends_at = started_at + timedelta(days=design.max_duration_days)
    weights = {v.id: v.weight for v in design.variants}
    start = ABTestStart(
        test_id=str(test_id),
        campaign_id=str(campaign_id),
        organization_id=str(principal.organization_id),
        name=design.name,
        mode=design.mode,
        started_at=started_at,
        ends_at=ends_at,
        evaluation_interval_seconds=design.evaluation_interval_seconds,
        auto_promote_winner=design.auto_promote_winner,
    )
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.insert(
            conn,
            test_id=test_id,
            organization_id=principal.organization_id,
            campaign_id=campaign_id,
            name=design.name,
            mode=design.mode,
            design=design.model_dump(mode="json", by_alias=True),
            weights=weights,
            started_at=started_at,
            ends_at=ends_at,
        )
        if row is None:
            running = await repo.running_for_campaign(conn, campaign_id)
            raise Conflict(
                "the campaign already has a running A/B test: stop it or let it conclude first",
                code="ab_test_running",
                details={"testId": str(running["id"]) if running else None},
            )
        await repo.insert_epoch(conn, test_id=test_id, version=1, effective_from=started_at, weights=weights)
        await campaigns_repo.add_audit(
            conn,
            organization_id=principal.organization_id,
            campaign_id=campaign_id,
            actor=principal.actor(),
            action="ab_test_started",
            changes={
                "testId": str(test_id),
                "name": design.name,
                "mode": design.mode,
                "variants": [v.name for v in design.variants],
            },
        )
        await campaigns_repo.record_platform_event(
            conn,
            event_id=uuid.uuid4(),
            organization_id=principal.organization_id,
            campaign_id=campaign_id,
            type_="ab_test.started",
            data={
                "campaignId": str(campaign_id),
                "testId": str(test_id),
                "name": design.name,
                "mode": design.mode,
                "variants": [
                    {"id": v.id, "name": v.name, "weight": v.weight, "control": v.control} for v in design.variants
                ],
            },
            occurred_at=started_at,
        )
        # Started inside the transaction: if Temporal refuses, nothing is committed; if the
        # commit fails after, the test's workflow finds no row at its first evaluation and ends.
        await workflow_client.start(temporal, settings, campaign, start)
    return to_test(row)


# --- Looking at a test -----------------------------------------------------------------------


@dataclass
class Snapshot:
    """A look's data: per-variant sums of the slots before `through` (kept with the test by
    each evaluation) and of those since."""

    closed: dict[str, dict[str, float]]
    through: datetime


def _slot_floor(at: datetime) -> datetime:
    return periods.bucket_start(periods.bucket_of(at))


def _add(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Every statistic the repository returns is a sum over slots, so disjoint sets add."""
    out = {v: dict(s) for v, s in a.items()}
    for v, sums in b.items():
        into = out.setdefault(v, {})
        for k, x in sums.items():
            into[k] = into.get(k, 0.0) + x
    return out


async def evaluate_row(
    pool: Conn,
    row: asyncpg.Record,
    *,
    at: datetime,
    running: dict[str, Any],
    look_number: int,
    refresh: bool = False,
) -> tuple[ABTestDesign, analysis.Look, decision.Verdict, Snapshot]:
    """One look at a test from its rollups: the analysis and what it decides.

    An evaluation (`refresh`) sums every slot since the test began (late events land in old
    slots, and this is where they are picked up) and returns the closed slots' sums for the
    test to keep; a results request adds only the slots since the latest evaluation to those
    kept sums, so it reads a handful of rows however long the test has run."""
    design = design_of(row)
    end = row["concluded_at"] or at
    metrics = [spec.definition() for spec in design.metric_specs()]
    ids = [v.id for v in design.variants]

    async def sums(start: datetime, stop: datetime) -> dict[str, dict[str, float]]:
        if stop <= start:
            return {}
        return await repo.variant_sums(
            pool, campaign_id=row["campaign_id"], variant_ids=ids, metrics=metrics, start=start, end=stop
        )

    if refresh or row["sums"] is None or row["sums_through"] is None:
        through = max(_slot_floor(end), row["started_at"])
        snapshot = Snapshot(await sums(row["started_at"], through), through)
    else:
        snapshot = Snapshot(row["sums"], row["sums_through"])
    data = _add(snapshot.closed, await sums(snapshot.through, end))
    srm_epochs = None
    if design.mode == "bandit":
        srm_epochs = _bandit_srm_epochs(design, await repo.epoch_counts(pool, row["id"]))
    look = analysis.look(
        design,
        data,
        running=running,
        weights=row["weights"],
        srm_epochs=srm_epochs,
        seed=bayes.seed_for(str(row["id"]), look_number),
    )
    runtime_days = max((min(end, row["ends_at"]) - row["started_at"]).total_seconds(), 0) / 86_400
    return design, look, decision.decide(design, look, runtime_days=runtime_days), snapshot


def _bandit_srm_epochs(design: ABTestDesign, epochs: list[tuple[dict[str, float], dict[str, int]]]) -> list[srm.Epoch]:
    """Per weight epoch, oldest first: assignments per variant and that epoch's weights."""
    ids = [v.id for v in design.variants]
    return [([float(counts.get(i, 0)) for i in ids], [weights.get(i, 0.0) for i in ids]) for weights, counts in epochs]


async def results(
    *, pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID, test_id: UUID
) -> Results:
    """The test's results now: every variant against control, the checks, and the verdict."""
    row = await get_row(pool, cache, principal, campaign_id, test_id)
    at = datetime.now(UTC)
    design, look, verdict, _ = await evaluate_row(
        pool, row, at=at, running=row["running"] or {}, look_number=row["evaluations"] + 1
    )
    return build_results(row, design, look, verdict, at)


_METHOD = {
    "sequential": "always-valid: normal-mixture confidence sequences (mSPRT) with running-minimum p-values and "
    "intersected intervals, relative lifts by Fieller's method; Holm across treatments",
    "bandit": "Thompson sampling allocates traffic; conclusions by the always-valid test (normal-mixture "
    "confidence sequences, relative lifts by Fieller's method, Holm across treatments)",
    "fixed": "fixed horizon: unpooled z-test for rates, Welch's t-test for means, delta-method z-test for ratios, "
    "relative lifts by Fieller's method; valid at the planned sample size only; Holm across treatments",
}


def _lift(interval) -> Lift | None:
    return Lift(estimate=interval.estimate, lower=interval.lower, upper=interval.upper) if interval else None


def build_results(
    row: asyncpg.Record, design: ABTestDesign, look: analysis.Look, verdict: decision.Verdict, at: datetime
) -> Results:
    directions = {s.metric: ("increase" if s.higher_is_better else "decrease") for s in design.metric_specs()}
    variant_results = []
    for i, vl in enumerate(look.variants):
        v = vl.variant
        comparisons = [
            MetricComparison(
                metric=c.metric,
                role=c.role,
                direction=directions[c.metric],
                control=c.control.value,
                treatment=c.treatment.value,
                absolute_lift=_lift(c.absolute),
                relative_lift=_lift(c.relative),
                interval_level=c.level,
                p_value=c.p_value,
                adjusted_p_value=c.adjusted_p_value,
                chance_to_beat_control=c.chance_to_beat,
                outcome=c.outcome,
                harmful=c.harmful,
                note=c.note,
            )
            for c in look.comparisons
            if c.variant_id == v.id
        ]
        variant_results.append(
            VariantResult(
                variant_id=v.id,
                name=v.name,
                is_control=v.control,
                weight=vl.weight,
                calls=vl.units,
                probability_best=look.p_best[i] if look.p_best else None,
                metrics={
                    name: MetricValue(value=e.value, standard_error=e.standard_error, n=e.n)
                    for name, e in vl.estimates.items()
                },
                comparisons=comparisons,
                eligible=not v.control and v.id not in verdict.blocked,
                blocked_by=verdict.blocked.get(v.id, []),
            )
        )
    names = [v.id for v in design.variants]
    check = look.srm
    concluded = row["status"] == "concluded"
    return Results(
        test_id=str(row["id"]),
        status=row["status"],
        mode=design.mode,
        method=_METHOD[design.mode],
        valid=look.valid,
        confidence_level=design.confidence_level,
        interval_level=1 - design.alpha_per_comparison,
        planned_calls_per_variant=look.planned,
        planned_projected=look.planned_projected,
        evaluated_at=at,
        evaluations=row["evaluations"],
        conclusion=row["conclusion"],
        conclusion_reason=row["conclusion_reason"],
        winner=row["winner_variant_id"] if concluded else None,
        verdict=Verdict(conclusion=verdict.conclusion, winner_variant_id=verdict.winner, reason=verdict.reason),
        srm=SrmResult(
            checked=check.checked,
            detected=check.detected,
            p_value=check.p_value,
            chi_square=check.chi_square,
            observed=dict(zip(names, check.observed, strict=True)),
            expected=dict(zip(names, check.expected, strict=True)),
        ),
        gates=GateResult(
            min_calls_per_variant=verdict.gates.min_calls,
            calls_per_variant=verdict.gates.calls,
            min_calls_met=verdict.gates.calls_met,
            min_duration_days=verdict.gates.min_days,
            runtime_days=round(verdict.gates.days, 4),
            min_runtime_met=verdict.gates.runtime_met,
        ),
        variant_results=variant_results,
        insights=_insights(design, look),
        recommendations=_recommendations(design, look, verdict, row),
    )


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    kind = CATALOGUE[metric].format
    if kind == "rate":
        return f"{value:.2%}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "seconds":
        return f"{value:,.1f} s"
    return f"{value:,.3g}"


def _insights(design: ABTestDesign, look: analysis.Look) -> list[str]:
    names = {v.id: v.name for v in design.variants}
    out = list(look.notes)
    for c in look.primary:
        line = (
            f"{names[c.variant_id]}: {c.metric} {_fmt(c.metric, c.treatment.value)} against "
            f"{_fmt(c.metric, c.control.value)} for control"
        )
        if c.relative is not None:
            line += (
                f" ({c.relative.estimate:+.1%}; {c.level:.1%} interval {c.relative.lower:+.1%} to "
                f"{c.relative.upper:+.1%})"
            )
        if c.chance_to_beat is not None:
            line += f"; chance to beat control {c.chance_to_beat:.1%}"
        out.append(line)
        if c.note:
            out.append(f"{names[c.variant_id]}: {c.note}")
    for c in look.comparisons:
        if c.role == "guardrail" and c.harmful:
            out.append(
                f"{names[c.variant_id]} harms guardrail {c.metric}: {_fmt(c.metric, c.treatment.value)} "
                f"against {_fmt(c.metric, c.control.value)}"
            )
    if look.srm.checked and not look.srm.detected:
        out.append(f"Traffic split matches the weights (sample-ratio check p = {look.srm.p_value:.3g}).")
    return out


def _recommendations(
    design: ABTestDesign, look: analysis.Look, verdict: decision.Verdict, row: asyncpg.Record
) -> list[str]:
    names = {v.id: v.name for v in design.variants}
    conclusion = row["conclusion"] or verdict.conclusion
    winner = row["winner_variant_id"] or verdict.winner
    if conclusion == "winner" and winner:
        promoted = (row["promotion"] or {}).get("promoted")
        if promoted:
            return [f"{names[winner]} won and its overrides were promoted into the campaign's configuration."]
        return [
            f"Ship {names[winner]}: apply its overrides to the campaign (PUT /configuration), or create tests "
            "with autoPromoteWinner to do it automatically."
        ]
    if conclusion == "harm":
        return ["Keep the control: every treatment is harmful."]
    if conclusion == "invalid":
        return [
            "Fix assignment or event logging before testing again: the traffic split does not match the "
            "weights, so these results cannot be trusted."
        ]
    if conclusion == "no_difference":
        return ["No treatment is worth shipping for this metric; test a bolder change."]
    if conclusion in ("max_duration", "stopped"):
        return ["The test ended without a conclusion; a longer test or more traffic per variant would be needed."]
    return [f"Keep the test running: {'; '.join(verdict.pending) or verdict.reason}."]


def summary(design: ABTestDesign, look: analysis.Look, verdict: decision.Verdict) -> dict[str, Any]:
    """What an evaluation records: per variant its units and, per comparison, the figures."""
    return {
        "winner": verdict.winner,
        "valid": look.valid,
        "planned": look.planned,
        "srm": {"pValue": look.srm.p_value, "detected": look.srm.detected},
        "gates": {"calls": verdict.gates.calls, "days": round(verdict.gates.days, 4)},
        "variants": {vl.variant.id: {"calls": vl.units, "weight": vl.weight} for vl in look.variants},
        "comparisons": [
            {
                "metric": c.metric,
                "role": c.role,
                "variantId": c.variant_id,
                "treatment": c.treatment.value,
                "control": c.control.value,
                "lift": c.absolute.estimate if c.absolute else None,
                "lower": c.absolute.lower if c.absolute else None,
                "upper": c.absolute.upper if c.absolute else None,
                "relativeLift": c.relative.estimate if c.relative else None,
                "relativeLower": c.relative.lower if c.relative else None,
                "relativeUpper": c.relative.upper if c.relative else None,
                "level": c.level,
                "pValue": c.p_value,
                "adjustedPValue": c.adjusted_p_value,
                "outcome": c.outcome,
                "harmful": c.harmful,
            }
            for c in look.comparisons
        ],
        "pBest": look.p_best,
        "blocked": verdict.blocked,
    }


# --- Assignment ------------------------------------------------------------------------------


async def assign(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    principal: Principal,
    campaign_id: UUID,
    test_id: UUID,
    subject_id: str,
) -> Assignment:
    """The subject's variant: the same every time, split by the weights."""
    row = await repo.get_for_assignment(
        pool, organization_id=principal.organization_id, campaign_id=campaign_id, test_id=test_id
    )
    if row is None:
        row = await get_row(pool, cache, principal, campaign_id, test_id)  # raises the right 404
    if row["status"] != "running":
        raise Conflict(
            f"the test has concluded ({row['conclusion']}): assignment has stopped; use the campaign's configuration",
            code="ab_test_concluded",
            details={
                "conclusion": row["conclusion"],
                "winnerVariantId": row["winner_variant_id"],
                "promoted": bool((row["promotion"] or {}).get("promoted")),
            },
        )
    if row["campaign_status"] in FINISHED_STATUSES:
        # Its workflow concludes the test at its next evaluation; no one is assigned meanwhile.
        raise Conflict(
            f"the campaign is {row['campaign_status']}: assignment has stopped",
            code="campaign_ended",
            details={"campaignStatus": row["campaign_status"]},
        )
    design = design_of(row)
    if design.mode == "bandit":
        weights = row["weights"]
        index = assignment.assign(str(test_id), subject_id, [weights.get(v.id, 0.0) for v in design.variants])
        # Weights change in bandit mode; a subject keeps its first variant.
        chosen = await repo.sticky_assignment(
            pool,
            test_id=test_id,
            subject_id=subject_id,
            variant_id=design.variants[index].id,
            epoch=row["weights_version"],
        )
        variant = next(v for v in design.variants if v.id == chosen)
    else:
        variant = design.variants[assignment.assign(str(test_id), subject_id, [v.weight for v in design.variants])]
    base = {k: row["campaign_config"].get(k) for k in _OVERRIDABLE}
    return Assignment(
        test_id=str(test_id),
        subject_id=subject_id,
        variant_id=variant.id,
        variant_name=variant.name,
        is_control=variant.control,
        overrides=variant.overrides,
        configuration=merge_patch(base, variant.overrides),
    )


# --- Stopping --------------------------------------------------------------------------------


async def stop(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    test_id: UUID,
    reason: str | None,
) -> ABTest:
    """Ask the test's workflow to conclude it now (`stopped`); no winner is promoted."""
    row = await get_row(pool, cache, principal, campaign_id, test_id)
    if row["status"] != "running":
        raise Conflict(
            f"the test has already concluded ({row['conclusion']})",
            code="ab_test_concluded",
            details={"conclusion": row["conclusion"]},
        )
    await workflow_client.stop(temporal, settings, row, StopRequest(actor=Actor(**principal.actor()), reason=reason))
    return to_test(await get_row(pool, cache, principal, campaign_id, test_id))


async def evaluations(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    principal: Principal,
    campaign_id: UUID,
    test_id: UUID,
    page: int,
    limit: int,
) -> tuple[list[Evaluation], int]:
    """The workflow's evaluations of the test, newest first."""
    await get_row(pool, cache, principal, campaign_id, test_id)
    rows, total = await repo.list_evaluations(pool, test_id=test_id, limit=limit, offset=(page - 1) * limit)
    return [Evaluation.model_validate(dict(r)) for r in rows], total


# --- Planning --------------------------------------------------------------------------------


def sample_size(body: SampleSizeRequest) -> SampleSize:
    """Calls per variant and days for a test, fixed and sequential."""
    alpha = 1 - body.confidence_level
    effect = body.minimum_detectable_effect * (body.baseline if body.effect_type == "relative" else 1)
    errors = []
    if body.metric_type == "proportion":
        if not 0 < body.baseline < 1:
            errors.append({"field": "baseline", "reason": "a rate strictly between 0 and 1"})
        elif not 0 < body.baseline + effect < 1:
            errors.append(
                {
                    "field": "minimumDetectableEffect",
                    "reason": f"baseline + effect = {body.baseline + effect:g} is not a rate below 1",
                }
            )
        if body.standard_deviation is not None:
            errors.append({"field": "standardDeviation", "reason": "applies to means only (a rate's follows from it)"})
    elif body.standard_deviation is None:
        errors.append({"field": "standardDeviation", "reason": "a mean needs the per-call standard deviation"})
    if body.effect_type == "relative" and body.baseline == 0:
        errors.append({"field": "baseline", "reason": "a relative effect of a 0 baseline is 0"})
    if errors:
        raise invalid(errors, "invalid sample-size request")
    try:
        if body.metric_type == "proportion":
            size = power.proportions(
                baseline=body.baseline, effect=effect, alpha=alpha, power=body.power, variants=body.variants
            )
        else:
            assert body.standard_deviation is not None
            size = power.means(
                sd=body.standard_deviation, effect=effect, alpha=alpha, power=body.power, variants=body.variants
            )
    except ValueError as err:
        raise invalid(
            [{"field": "minimumDetectableEffect", "reason": str(err)}], "invalid sample-size request"
        ) from None
    per_variant = size.for_mode(body.mode)
    notes = [
        f"Each of the {body.variants - 1} comparison(s) with control is made at α = {size.alpha_per_comparison:.4g} "
        "(Holm's first step), two-sided.",
        f"Sequential (always-valid) tests need {size.inflation:.2f}× the fixed-horizon sample at the planned horizon "
        "but may be read at any time, and stop earlier when the true effect is larger than the MDE.",
    ]
    if body.mode == "bandit":
        notes.append("Bandit mode moves traffic to the leading variant, so trailing variants reach this size later.")
    return SampleSize(
        calls_per_variant=per_variant,
        total_calls=per_variant * body.variants,
        days_needed=power.days_needed(per_variant, body.variants, body.daily_traffic) if body.daily_traffic else None,
        fixed_horizon_calls_per_variant=size.fixed,
        sequential_calls_per_variant=size.sequential,
        sequential_inflation=round(size.inflation, 4),
        absolute_effect=effect,
        alpha_per_comparison=size.alpha_per_comparison,
        notes=notes,
    )
