"""Webhook pages: endpoints with their state and delivery health, one endpoint's deliveries
and attempts, and the actions (redeliver, recover, rotate the secret, test ping).

The same pages serve the organization's endpoints (/console/webhooks) and a campaign's
(/console/campaigns/{id}/webhooks), as the API's routes do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.api.console import views
from campaigns.api.console.deps import WEBHOOKS, Looker, Viewer, api_state, base, form_of
from campaigns.campaigns import service as campaigns_service
from campaigns.domain import charts
from campaigns.errors import NotFound
from campaigns.webhooks import service
from campaigns.webhooks.service import INTEGRATION, WEBHOOK, Scope

router = APIRouter()

KINDS = WEBHOOK + INTEGRATION
DONE = {
    "redelivered": "Redelivery started: a new run with the same webhook-id.",
    "recovered": "Every failed delivery of the last day was sent again.",
    "tested": "Test ping sent; it appears below in a moment.",
}


async def _scope(request: Request, viewer: Viewer, campaign_id: UUID | None) -> tuple[Scope, str, Any]:
    state = api_state(request)
    if campaign_id is None:
        return service.organization_scope(viewer.principal), "/console/webhooks", None
    scope = await service.campaign_scope(state.pool, state.campaign_cache, viewer.principal, campaign_id)
    campaign = await campaigns_service.get(
        pool=state.pool, cache=state.campaign_cache, principal=viewer.principal, campaign_id=campaign_id
    )
    return scope, f"/console/campaigns/{campaign_id}/webhooks", campaign


def _hours(h: service.EndpointHealth, now: datetime) -> tuple[list[charts.Bar], str]:
    by_hour = {x.hour: x for x in h.hours}
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    slots = []
    for k in range(24):
        hour = start + timedelta(hours=k)
        x = by_hour.get(hour)
        label = hour.strftime("%H:00 UTC")
        slots.append((label, x.succeeded if x else 0, (x.attempts - x.succeeded) if x else 0))
    return charts.stacked_bars(slots)


async def _list(request: Request, viewer: Viewer, campaign_id: UUID | None) -> Response:
    state = api_state(request)
    scope, base_path, campaign = await _scope(request, viewer, campaign_id)
    rows, total = await service.list_(pool=state.pool, scope=scope, kinds=KINDS, page=1, limit=100)
    health = await service.health(pool=state.pool, endpoints=rows)
    now = datetime.now(UTC)
    endpoints = [(service.to_webhook(state.settings, r), health[r["id"]], _hours(health[r["id"]], now)) for r in rows]
    return views.page(
        request,
        "webhooks.html",
        {
            **base(viewer, "webhooks"),
            "campaign": campaign,
            "endpoints": endpoints,
            "total": total,
            "base_path": base_path,
        },
    )


@router.get("/webhooks")
async def org_webhooks(request: Request, viewer: Looker) -> Response:
    return await _list(request, viewer, None)


@router.get("/campaigns/{campaign_id}/webhooks")
async def campaign_webhooks(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    return await _list(request, viewer, campaign_id)


async def _endpoint(
    request: Request, viewer: Viewer, campaign_id: UUID | None, webhook_id: UUID, *, secret: str | None = None
) -> Response:
    state = api_state(request)
    scope, base_path, campaign = await _scope(request, viewer, campaign_id)
    row = await service.get_endpoint_row(state.pool, scope, webhook_id, KINDS)
    status = request.query_params.get("status")
    deliveries, total = await service.list_deliveries(
        pool=state.pool,
        scope=scope,
        endpoint_id=webhook_id,
        kinds=KINDS,
        statuses=[status] if status in ("pending", "succeeded", "failed", "cancelled") else None,
        event_types=None,
        since=None,
        until=None,
        page=1,
        limit=25,
    )
    attempts = {}
    for d in deliveries:
        _, rows = await service.get_delivery(
            pool=state.pool, scope=scope, endpoint_id=webhook_id, kinds=KINDS, delivery_id=UUID(d.id)
        )
        attempts[d.id] = [service.to_attempt(a) for a in rows]
    health = (await service.health(pool=state.pool, endpoints=[row]))[row["id"]]
    return views.page(
        request,
        "webhook.html",
        {
            **base(viewer, "webhooks"),
            "campaign": campaign,
            "base_path": base_path,
            "webhook": service.to_webhook(state.settings, row),
            "health": health,
            "bars": _hours(health, datetime.now(UTC)),
            "deliveries": deliveries,
            "attempts": attempts,
            "total": total,
            "status": status or "",
            "secret": secret,
            "notice": DONE.get(request.query_params.get("done") or ""),
        },
    )


@router.get("/webhooks/{webhook_id}")
async def org_endpoint(request: Request, viewer: Looker, webhook_id: UUID) -> Response:
    return await _endpoint(request, viewer, None, webhook_id)


@router.get("/campaigns/{campaign_id}/webhooks/{webhook_id}")
async def campaign_endpoint(request: Request, viewer: Looker, campaign_id: UUID, webhook_id: UUID) -> Response:
    return await _endpoint(request, viewer, campaign_id, webhook_id)


async def _act(
    request: Request,
    viewer: Viewer,
    campaign_id: UUID | None,
    webhook_id: UUID,
    action: str,
    delivery_id: UUID | None = None,
) -> Response:
    viewer.require(*WEBHOOKS)
    await form_of(request, viewer)
    if action not in ("rotate", "recover", "test", "redeliver"):
        raise NotFound("no such action")
    state = api_state(request)
    scope, base_path, _ = await _scope(request, viewer, campaign_id)
    common: dict[str, Any] = {"pool": state.pool, "scope": scope, "endpoint_id": webhook_id, "kinds": KINDS}
    if action == "rotate":
        _, secret = await service.rotate_secret(**common, settings=state.settings, grace_period_s=None)
        # Shown once, on this answer only (as the API does); never in a URL.
        return await _endpoint(request, viewer, campaign_id, webhook_id, secret=secret)
    if action == "redeliver" and delivery_id is not None:
        await service.redeliver(**common, delivery_id=delivery_id)
        done = "redelivered"
    elif action == "recover":
        since = datetime.now(UTC) - timedelta(days=1)
        await service.recover(**common, since=since, until=None)
        done = "recovered"
    else:
        await service.send_test(**common, settings=state.settings)
        done = "tested"
    return RedirectResponse(f"{base_path}/{webhook_id}?done={done}", status_code=303)


@router.post("/webhooks/{webhook_id}/{action}")
async def org_action(request: Request, viewer: Looker, webhook_id: UUID, action: str) -> Response:
    return await _act(request, viewer, None, webhook_id, action)


@router.post("/campaigns/{campaign_id}/webhooks/{webhook_id}/{action}")
async def campaign_action(
    request: Request, viewer: Looker, campaign_id: UUID, webhook_id: UUID, action: str
) -> Response:
    return await _act(request, viewer, campaign_id, webhook_id, action)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def org_redeliver(request: Request, viewer: Looker, webhook_id: UUID, delivery_id: UUID) -> Response:
    return await _act(request, viewer, None, webhook_id, "redeliver", delivery_id)


@router.post("/campaigns/{campaign_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def campaign_redeliver(
    request: Request, viewer: Looker, campaign_id: UUID, webhook_id: UUID, delivery_id: UUID
) -> Response:
    return await _act(request, viewer, campaign_id, webhook_id, "redeliver", delivery_id)
