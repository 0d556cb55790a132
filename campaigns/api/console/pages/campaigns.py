"""Campaign pages: the list, the new-campaign form, one campaign (live tiles, charts,
actions, configuration, audit), its configuration editor, its schedule, and its live stream."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from campaigns.abtests import service as abtests_service
from campaigns.analytics import service as analytics_service
from campaigns.api.analytics.stream import MetricsStream
from campaigns.api.console import present, views
from campaigns.api.console.deps import ANALYTICS, DIAL_CHECK, WRITE, Looker, Viewer, api_state, base, form_of
from campaigns.auth.service import until_revoked
from campaigns.campaigns import service
from campaigns.campaigns.models import CampaignCreate, CloneRequest
from campaigns.domain import lifecycle, periods
from campaigns.domain.config import CampaignChannel, CampaignConfiguration, CampaignStatus, CampaignType
from campaigns.errors import AppError, BadRequest, invalid
from campaigns.scheduling import service as scheduling_service
from campaigns.scheduling.models import DialCheckRequest

router = APIRouter()

PAGE_SIZE = 25
ACTIONS = {
    "activate": CampaignStatus.ACTIVE,
    "resume": CampaignStatus.ACTIVE,
    "pause": CampaignStatus.PAUSED,
    "end": CampaignStatus.ENDED,
    "archive": CampaignStatus.ARCHIVED,
}
DONE = {
    "activate": "Campaign activated.",
    "resume": "Campaign resumed.",
    "pause": "Campaign paused.",
    "end": "Campaign ended.",
    "archive": "Campaign archived.",
    "created": "Campaign created as a draft.",
    "cloned": "This is the copy: a new draft.",
    "saved": "Configuration saved.",
    # The workflow did not confirm in time: the change is recorded and will apply (202).
    "pending": "Change accepted: the campaign's workflow has not confirmed it yet; it applies in a moment.",
}
SORTS = [
    ("-createdAt", "Newest"),
    ("createdAt", "Oldest"),
    ("name", "Name"),
    ("status", "Status"),
    ("-totalCalls", "Most calls"),
    ("-qualifiedLeads", "Most leads"),
    ("-conversionRate", "Best conversion"),
    ("-totalCost", "Highest cost"),
    ("costPerLead", "Lowest cost per lead"),
]


def _choice(values: list[str], allowed: type[StrEnum]) -> list[str] | None:
    ok = {e.value for e in allowed}
    picked = [v for v in values if v in ok]
    return picked or None


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value or default), low), high)
    except ValueError:
        return default


@router.get("/campaigns")
async def campaign_list(request: Request, viewer: Looker) -> Response:
    state = api_state(request)
    qp = request.query_params
    statuses = _choice(qp.getlist("status"), CampaignStatus)
    types = _choice(qp.getlist("type"), CampaignType)
    channels = _choice(qp.getlist("channel"), CampaignChannel)
    search = (qp.get("q") or "").strip()[:200] or None
    sort = qp.get("sort") or "-createdAt"
    if sort.lstrip("-") not in service.SORT_KEYS:
        sort = "-createdAt"
    page_no = _int(qp.get("page"), 1, 1, 100_000)
    rows, campaigns, total = await service.list_(
        pool=state.pool,
        principal=viewer.principal,
        statuses=statuses,
        types=types,
        channels=channels,
        search=search,
        sort=sort,
        page=page_no,
        limit=PAGE_SIZE,
    )
    today: list[Any] = [None] * len(rows)
    if viewer.can(*ANALYTICS) and rows:
        infos = [analytics_service.CampaignInfo.of(r) for r in rows]
        today = list(
            await asyncio.gather(*(analytics_service.realtime_metrics(state.analytics.realtime, i) for i in infos))
        )
    filters = {
        "status": statuses or [],
        "type": types or [],
        "channel": channels or [],
        "q": search or "",
        "sort": sort,
    }

    def link(**changes: Any) -> str:
        params: dict[str, Any] = {**filters, "page": page_no, **changes}
        return "/console/campaigns?" + urlencode({k: v for k, v in params.items() if v}, doseq=True)

    return views.page(
        request,
        "campaigns.html",
        {
            **base(viewer, "campaigns"),
            "items": list(zip(campaigns, today, strict=True)),
            "total": total,
            "page_no": page_no,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "filters": filters,
            "sorts": SORTS,
            "statuses": [s.value for s in CampaignStatus],
            "types": [t.value for t in CampaignType],
            "channels": [c.value for c in CampaignChannel],
            "link": link,
        },
    )


def _new_form(request: Request, viewer: Viewer, values: dict[str, str], errors: dict[str, str], status: int = 200):
    return views.page(
        request,
        "campaign_new.html",
        {
            **base(viewer, "campaigns"),
            "values": values,
            "errors": errors,
            "types": [t.value for t in CampaignType],
            "channels": [c.value for c in CampaignChannel],
            "form_id": values.get("formId") or secrets.token_urlsafe(16),
        },
        status,
    )


@router.get("/campaigns/new")
async def new_campaign_form(request: Request, viewer: Looker) -> Response:
    viewer.require(*WRITE)
    return _new_form(request, viewer, {"timezone": "UTC", "type": "outbound", "channel": "phone"}, {})


def _field_errors(err: AppError) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(err.details, list):
        for d in err.details:
            if isinstance(d, dict) and "field" in d:
                out.setdefault(str(d["field"]).split(".")[0].split("[")[0], str(d.get("reason", "invalid")))
    return out or {"_": err.message}


@router.post("/campaigns/new")
async def create_campaign(request: Request, viewer: Looker) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "type": form.get("type", ""),
        "channel": form.get("channel", ""),
        "timezone": form.get("timezone") or "UTC",
    }
    for name in ("description", "flowId"):
        if form.get(name, "").strip():
            body[name] = form[name].strip()
    budget: dict[str, Any] = {}
    for name in ("total", "daily"):
        if form.get(f"budget_{name}", "").strip():
            budget[name] = form[f"budget_{name}"].strip()
    if budget:
        budget["currency"] = (form.get("budget_currency") or "USD").strip().upper()
        body["budget"] = budget
    try:
        try:
            create = CampaignCreate.model_validate(body)
        except ValidationError as err:
            raise invalid(err) from None
        campaign, _ = await service.create(
            pool=state.pool,
            settings=state.settings,
            principal=viewer.principal,
            body=create,
            idempotency_key=f"console:{form.get('formId', '')}" if form.get("formId") else None,
        )
    except BadRequest as err:
        errors = _field_errors(err)
        if "budget" in errors:
            errors.setdefault("budget_total", errors["budget"])
        return _new_form(request, viewer, form, errors, 400)
    return RedirectResponse(f"/console/campaigns/{campaign.id}?done=created", status_code=303)


async def _campaign_context(request: Request, viewer: Viewer, campaign_id: UUID) -> tuple[Any, dict[str, Any]]:
    state = api_state(request)
    row = await service.get_row(state.pool, state.campaign_cache, viewer.principal, campaign_id)
    campaign = service.to_campaign(row)
    return row, {**base(viewer, "campaigns"), "campaign": campaign, "tz": campaign.timezone}


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    state = api_state(request)
    row, context = await _campaign_context(request, viewer, campaign_id)
    campaign = context["campaign"]
    now = datetime.now(UTC)
    range_key = request.query_params.get("range") or "7d"
    if range_key not in present.RANGES:
        range_key = "7d"
    timeframe, granularity = present.RANGES[range_key]
    report = metrics = None
    chart_set = present.ChartSet()
    if viewer.can(*ANALYTICS):
        info = analytics_service.CampaignInfo.of(row)
        report, metrics = await asyncio.gather(
            analytics_service.get_analytics(
                pool=state.pool,
                cache=state.campaign_cache,
                principal=viewer.principal,
                campaign_id=campaign_id,
                timeframe=timeframe,
                granularity=granularity,
                start=None,
                end=None,
                now=now,
            ),
            analytics_service.realtime_metrics(state.analytics.realtime, info, now=now),
        )
        chart_set = present.trend_charts(report, campaign.timezone, periods.local_date(now, campaign.timezone))
    entries, audit_total = await service.audit(
        pool=state.pool,
        cache=state.campaign_cache,
        principal=viewer.principal,
        campaign_id=campaign_id,
        page=1,
        limit=1,
    )
    last_page = max(1, math.ceil(audit_total / 50))
    entries, _ = await service.audit(
        pool=state.pool,
        cache=state.campaign_cache,
        principal=viewer.principal,
        campaign_id=campaign_id,
        page=last_page,
        limit=50,
    )
    tests, _ = await abtests_service.list_(
        pool=state.pool,
        cache=state.campaign_cache,
        principal=viewer.principal,
        campaign_id=campaign_id,
        status=None,
        page=1,
        limit=10,
    )
    actions = [
        (name, target.value)
        for target, name in lifecycle.REQUESTABLE[CampaignStatus(campaign.status)].items()
        if viewer.can(*WRITE)
    ]
    settings = state.settings
    done = request.query_params.get("done")
    return views.page(
        request,
        "campaign.html",
        {
            **context,
            "metrics": metrics,
            "report": report,
            "charts": chart_set,
            "range": range_key,
            "audit": list(reversed(entries)),
            "tests": tests,
            "actions": actions,
            "notice": DONE.get(done or ""),
            "workflow_url": (
                f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows/campaign-{campaign.id}"
            ),
            "config_json": CampaignConfiguration.model_validate(row["config"]).model_dump(mode="json", by_alias=True),
        },
    )


@router.get("/campaigns/{campaign_id}/confirm")
async def confirm_action(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    """The confirmation step of an action, for browsers without script (script opens a dialog)."""
    viewer.require(*WRITE)
    _, context = await _campaign_context(request, viewer, campaign_id)
    action = request.query_params.get("action", "")
    if action not in ACTIONS and action != "clone":
        raise BadRequest("unknown action")
    return views.page(request, "confirm.html", {**context, "action": action})


@router.post("/campaigns/{campaign_id}/status")
async def change_status(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    action = form.get("action", "")
    if action not in ACTIONS:
        raise BadRequest("unknown action")
    reason = (form.get("reason") or "").strip()[:500]
    if not reason:
        raise invalid([{"field": "reason", "reason": "say why (it goes in the audit log)"}])
    changed = await service.change_status(
        pool=state.pool,
        cache=state.campaign_cache,
        temporal=state.temporal,
        settings=state.settings,
        principal=viewer.principal,
        campaign_id=campaign_id,
        target=ACTIONS[action],
        reason=reason,
        idempotency_key=f"console:{form['formId']}" if form.get("formId") else None,
    )
    done = "pending" if changed.pending else action
    return RedirectResponse(f"/console/campaigns/{campaign_id}?done={done}", status_code=303)


@router.post("/campaigns/{campaign_id}/clone")
async def clone_campaign(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    try:
        body = CloneRequest.model_validate({"name": form.get("name") or None})
    except ValidationError as err:
        raise invalid(err) from None
    copy, _ = await service.clone(
        pool=state.pool,
        cache=state.campaign_cache,
        settings=state.settings,
        principal=viewer.principal,
        campaign_id=campaign_id,
        body=body,
        idempotency_key=f"console:{form['formId']}" if form.get("formId") else None,
    )
    return RedirectResponse(f"/console/campaigns/{copy.id}?done=cloned", status_code=303)


def _editor(request: Request, context: dict[str, Any], row: Any, values: dict[str, str], errors: list, status=200):
    return views.page(request, "campaign_edit.html", {**context, "values": values, "errors": errors}, status)


@router.get("/campaigns/{campaign_id}/edit")
async def edit_form(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    row, context = await _campaign_context(request, viewer, campaign_id)
    config = CampaignConfiguration.model_validate(row["config"]).model_dump(mode="json", by_alias=True)
    values = {
        "name": row["name"],
        "description": row["description"] or "",
        "configuration": json.dumps(config, indent=2, ensure_ascii=False),
        "version": str(row["version"]),
    }
    return _editor(request, context, row, values, [])


@router.post("/campaigns/{campaign_id}/edit")
async def save_configuration(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    row, context = await _campaign_context(request, viewer, campaign_id)
    try:
        config = json.loads(form.get("configuration") or "{}")
    except json.JSONDecodeError as err:
        errors = [{"field": "configuration", "reason": f"not valid JSON: {err.msg} (line {err.lineno})"}]
        return _editor(request, context, row, form, errors, 400)
    if not isinstance(config, dict):
        return _editor(request, context, row, form, [{"field": "configuration", "reason": "must be an object"}], 400)
    patch = {**config, "name": form.get("name", ""), "description": form.get("description") or None}
    try:
        await service.update(
            pool=state.pool,
            cache=state.campaign_cache,
            temporal=state.temporal,
            settings=state.settings,
            principal=viewer.principal,
            campaign_id=campaign_id,
            patch=patch,
            if_match=f'"{form.get("version", "")}"' if form.get("version") else None,
        )
    except AppError as err:
        if err.status not in (400, 409, 412):
            raise
        details = err.details if isinstance(err.details, list) else [{"field": "", "reason": err.message}]
        if err.status == 412:
            details = [{"field": "", "reason": "someone changed this campaign since you opened it; reload to see it"}]
        return _editor(request, context, row, form, details, err.status)
    return RedirectResponse(f"/console/campaigns/{campaign_id}?done=saved", status_code=303)


@router.get("/campaigns/{campaign_id}/stream")
async def live_stream(request: Request, viewer: Looker, campaign_id: UUID) -> MetricsStream:
    """The live tiles' feed: the real-time metrics now, then on every change; the same
    stream as the API's, counted against the organization's streams and ended when the
    session's key is revoked."""
    viewer.require(*ANALYTICS)
    state = api_state(request)
    row = await analytics_service.campaign_row(state.pool, state.campaign_cache, viewer.principal, campaign_id)
    lease = await state.analytics.leases.acquire(
        "streams",
        viewer.principal.organization_id,
        state.settings.max_streams_per_organization,
        what="real-time streams",
    )
    revoked = functools.partial(until_revoked, pool=state.pool, principals=state.principals, key_hash=viewer.key_hash)
    return MetricsStream(state.analytics.hub, analytics_service.CampaignInfo.of(row), lease=lease, revoked=revoked)


@router.get("/campaigns/{campaign_id}/schedule")
async def schedule_page(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    state = api_state(request)
    row, context = await _campaign_context(request, viewer, campaign_id)
    now = datetime.now(UTC)
    preview = await scheduling_service.preview(
        pool=state.pool, principal=viewer.principal, campaign_id=campaign_id, count=40, since=now
    )
    config = CampaignConfiguration.model_validate(row["config"])
    days = present.week(preview, set(config.schedule.blackout_dates), config.timezone, now)
    check = None
    check_error = None
    phone = (request.query_params.get("phone") or "").strip()[:32]
    if phone:
        viewer.require(*DIAL_CHECK)
        try:
            check = await scheduling_service.dial_check(
                pool=state.pool,
                principal=viewer.principal,
                campaign_id=campaign_id,
                body=DialCheckRequest(phone_number=phone),
            )
        except (AppError, ValidationError) as err:
            check_error = err.message if isinstance(err, AppError) else "not a phone number"
    return views.page(
        request,
        "schedule.html",
        {
            **context,
            "nav": "campaigns",
            "preview": preview,
            "days": days,
            "hour_px": present.HOUR_PX,
            "schedule": config.schedule,
            "phone": phone,
            "check": check,
            "check_error": check_error,
            "now": now,
        },
    )
