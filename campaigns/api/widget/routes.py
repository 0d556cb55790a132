"""Widget endpoints: `/api/campaigns/{id}/widget` and what hangs off it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from campaigns.api.bodies import JsonRoute
from campaigns.api.campaigns.routes import CampaignId, IfMatch
from campaigns.api.deps import AnalyticsReader, AppSettings, Cache, Db, Reader, Writer
from campaigns.api.widget.schemas import (
    EmbedCodeEnvelope,
    WidgetAnalyticsEnvelope,
    WidgetEnvelope,
    WidgetPatch,
    WidgetUpdated,
)
from campaigns.errors import invalid
from campaigns.widget import service

router = APIRouter(prefix="/api/campaigns/{id}/widget", tags=["widget"], route_class=JsonRoute)

Callback = Annotated[
    str | None,
    Query(max_length=200, description="The name of a function on your page (e.g. 'myApp.onCallStart'), not code"),
]


def _etag(response: Response, widget) -> None:
    response.headers["ETag"] = f'W/"{widget.version}"'


@router.get("", response_model=WidgetEnvelope)
async def get_widget(
    campaign_id: CampaignId, caller: Reader, db: Db, cache: Cache, settings: AppSettings, response: Response
) -> dict:
    """Get the campaign's widget: styling, behaviour, integration and publishable key."""
    widget = await service.get(pool=db, cache=cache, principal=caller, campaign_id=campaign_id, settings=settings)
    _etag(response, widget)
    return {"widget": widget}


@router.put(
    "",
    response_model=WidgetUpdated,
    responses={409: {"description": "The campaign is archived: its widget is read-only (`campaign_archived`)."}},
)
async def update_widget(
    campaign_id: CampaignId,
    body: WidgetPatch,
    request: Request,
    response: Response,
    caller: Writer,
    db: Db,
    cache: Cache,
    settings: AppSettings,
    if_match: IfMatch = None,
) -> dict:
    """Update the widget (JSON merge patch); invalid input lists every error."""
    patch = await request.json()
    if not isinstance(patch, dict):
        raise invalid([{"field": "(body)", "reason": "must be a JSON object"}])
    widget = await service.update(
        pool=db,
        cache=cache,
        principal=caller,
        campaign_id=campaign_id,
        patch=patch,
        settings=settings,
        if_match=if_match,
    )
    _etag(response, widget)
    return {"message": "Widget configuration updated", "widget": widget}


@router.post(
    "/rotate-key",
    response_model=WidgetEnvelope,
    responses={409: {"description": "The campaign is archived: its widget is read-only (`campaign_archived`)."}},
)
async def rotate_widget_key(
    campaign_id: CampaignId, caller: Writer, db: Db, cache: Cache, settings: AppSettings
) -> dict:
    """Replace the publishable key; the old key stops working at once."""
    return {
        "widget": await service.rotate_key(
            pool=db, cache=cache, principal=caller, campaign_id=campaign_id, settings=settings
        )
    }


@router.get("/embed-code", response_model=EmbedCodeEnvelope)
async def widget_embed_code(
    campaign_id: CampaignId,
    caller: Reader,
    db: Db,
    cache: Cache,
    settings: AppSettings,
    on_open: Annotated[Callback, Query(alias="onOpen")] = None,
    on_close: Annotated[Callback, Query(alias="onClose")] = None,
    on_call_start: Annotated[Callback, Query(alias="onCallStart")] = None,
    on_call_end: Annotated[Callback, Query(alias="onCallEnd")] = None,
    on_lead_created: Annotated[Callback, Query(alias="onLeadCreated")] = None,
) -> dict:
    """The HTML snippet to paste into a page; callbacks are names of your page's functions."""
    given = {
        "onOpen": on_open,
        "onClose": on_close,
        "onCallStart": on_call_start,
        "onCallEnd": on_call_end,
        "onLeadCreated": on_lead_created,
    }
    code = await service.embed_code(
        pool=db,
        cache=cache,
        principal=caller,
        campaign_id=campaign_id,
        settings=settings,
        callbacks={k: v for k, v in given.items() if v},
    )
    return {"embedCode": code}


@router.get("/analytics", response_model=WidgetAnalyticsEnvelope)
async def widget_analytics(
    campaign_id: CampaignId,
    caller: AnalyticsReader,
    db: Db,
    cache: Cache,
    timeframe: Annotated[Literal["24h", "7d", "30d", "90d", "all"], Query()] = "all",
) -> dict:
    """Impressions, clicks, click-through rate, average display time, conversions and conversion rate."""
    return {
        "analytics": await service.analytics(
            pool=db, cache=cache, principal=caller, campaign_id=campaign_id, timeframe=timeframe
        )
    }
