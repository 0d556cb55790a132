"""A/B test pages: results (intervals, the running interval, SRM, guardrails, verdict,
history), creating a test and stopping one."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.abtests import service
from campaigns.abtests.models import MetricComparison
from campaigns.api.console import views
from campaigns.api.console.deps import WRITE, Looker, api_state, base, form_of
from campaigns.campaigns import service as campaigns_service
from campaigns.domain import charts
from campaigns.errors import AppError

router = APIRouter()

TEMPLATE = {
    "name": "Warmer greeting",
    "variants": [
        {"name": "Control"},
        {"name": "Warm", "overrides": {"voiceSettings": {"speakingStyle": "friendly"}}},
    ],
    "primaryMetric": "conversionRate",
    "guardrailMetrics": [{"metric": "callFailureRate"}],
    "mode": "sequential",
}


def _lift(c: MetricComparison) -> tuple[float, float, float] | None:
    lift = c.relative_lift or c.absolute_lift
    return (lift.estimate, lift.lower, lift.upper) if lift else None


@router.get("/campaigns/{campaign_id}/ab-tests/new")
async def new_test_form(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    state = api_state(request)
    campaign = await campaigns_service.get(
        pool=state.pool, cache=state.campaign_cache, principal=viewer.principal, campaign_id=campaign_id
    )
    values = {"design": json.dumps(TEMPLATE, indent=2)}
    return views.page(
        request, "abtest_new.html", {**base(viewer, "campaigns"), "campaign": campaign, "values": values, "errors": []}
    )


@router.post("/campaigns/{campaign_id}/ab-tests/new")
async def create_test(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    campaign = await campaigns_service.get(
        pool=state.pool, cache=state.campaign_cache, principal=viewer.principal, campaign_id=campaign_id
    )
    errors: list[dict[str, str]] = []
    try:
        body = json.loads(form.get("design") or "")
        test = await service.create(
            pool=state.pool,
            cache=state.campaign_cache,
            temporal=state.temporal,
            settings=state.settings,
            principal=viewer.principal,
            campaign_id=campaign_id,
            body=body,
        )
    except json.JSONDecodeError as err:
        errors = [{"field": "design", "reason": f"not valid JSON: {err.msg} (line {err.lineno})"}]
    except AppError as err:
        if err.status not in (400, 409):
            raise
        errors = err.details if isinstance(err.details, list) else [{"field": "", "reason": err.message}]
    if errors:
        context = {**base(viewer, "campaigns"), "campaign": campaign, "values": form, "errors": errors}
        return views.page(request, "abtest_new.html", context, 400)
    return RedirectResponse(f"/console/campaigns/{campaign_id}/ab-tests/{test.id}", status_code=303)


@router.get("/campaigns/{campaign_id}/ab-tests/{test_id}")
async def test_page(request: Request, viewer: Looker, campaign_id: UUID, test_id: UUID) -> Response:
    state = api_state(request)
    args: dict[str, Any] = {
        "pool": state.pool,
        "cache": state.campaign_cache,
        "principal": viewer.principal,
        "campaign_id": campaign_id,
    }
    campaign = await campaigns_service.get(**args)
    test = await service.get(**args, test_id=test_id)
    results = await service.results(**args, test_id=test_id)
    history, _ = await service.evaluations(**args, test_id=test_id, page=1, limit=200)
    names = {v.id: v.name for v in test.variants}

    # One interval plot per metric: each treatment against control.
    by_metric: dict[str, list[tuple[str, MetricComparison]]] = {}
    for vr in results.variant_results:
        for c in vr.comparisons:
            by_metric.setdefault(c.metric, []).append((vr.name, c))
    plots = []
    for metric, comparisons in by_metric.items():
        role = comparisons[0][1].role
        relative = all(c.relative_lift is not None for _, c in comparisons)
        intervals = [
            charts.Interval(name, *lift, c.outcome) for name, c in comparisons if (lift := _lift(c)) is not None
        ]
        fmt = charts.signed_percent if relative else charts.number
        title = f"{metric} ({role}): {'relative' if relative else 'absolute'} lift against control"
        plots.append((metric, role, charts.interval_plot(intervals, title=title, fmt=fmt), comparisons))

    # The running interval: the primary metric's interval at each evaluation, oldest first.
    primary = test.primary_metric.metric
    running = []
    for variant_id, name in names.items():
        points = []
        for ev in reversed(history):
            for c in ev.summary.get("comparisons", []):
                if c.get("metric") == primary and c.get("variantId") == variant_id:
                    est, lo, hi = c.get("relativeLift"), c.get("relativeLower"), c.get("relativeUpper")
                    if est is None:
                        est, lo, hi = c.get("lift"), c.get("lower"), c.get("upper")
                    when = views.local(ev.evaluated_at, campaign.timezone, "%d %b %H:%M")
                    points.append(
                        charts.Point(when, est, lo, hi, note=f"evaluation {ev.seq}, {views.utc(ev.evaluated_at)}")
                    )
        if points:
            title = f"{name}: {primary} lift against control at each evaluation"
            running.append((variant_id, charts.line_chart(points, title=title, fmt=charts.signed_percent)))
    return views.page(
        request,
        "abtest.html",
        {
            **base(viewer, "campaigns"),
            "campaign": campaign,
            "tz": campaign.timezone,
            "test": test,
            "results": results,
            "history": history,
            "names": names,
            "plots": plots,
            "running": running,
        },
    )


@router.post("/campaigns/{campaign_id}/ab-tests/{test_id}/stop")
async def stop_test(request: Request, viewer: Looker, campaign_id: UUID, test_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    await service.stop(
        pool=state.pool,
        cache=state.campaign_cache,
        temporal=state.temporal,
        settings=state.settings,
        principal=viewer.principal,
        campaign_id=campaign_id,
        test_id=test_id,
        reason=(form.get("reason") or "").strip()[:500] or None,
    )
    return RedirectResponse(f"/console/campaigns/{campaign_id}/ab-tests/{test_id}", status_code=303)
