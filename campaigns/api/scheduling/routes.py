"""Scheduling endpoints: the schedule preview and the dial check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import Db, PipelineCaller, Reader
from campaigns.api.scheduling.schemas import PreviewEnvelope, PreviewRequest
from campaigns.scheduling import service
from campaigns.scheduling.models import DialCheck, DialCheckRequest

router = APIRouter(prefix="/api", tags=["scheduling"], route_class=JsonRoute)

CampaignId = Annotated[UUID, Path(alias="id", description="The campaign's id")]


@router.get("/campaigns/{id}/schedule/preview", response_model=PreviewEnvelope)
async def preview_schedule(
    campaign_id: CampaignId,
    caller: Reader,
    db: Db,
    count: Annotated[int, Query(ge=1, le=500, description="How many windows")] = 10,
    from_: Annotated[
        datetime | None, Query(alias="from", description="Start here instead of now (with an offset)")
    ] = None,
) -> dict:
    """The campaign's next calling windows, in UTC and in its local time."""
    preview = await service.preview(pool=db, principal=caller, campaign_id=campaign_id, count=count, since=from_)
    return {"preview": preview}


@router.post("/schedule/preview", response_model=PreviewEnvelope)
async def preview_unsaved_schedule(body: PreviewRequest, caller: Reader) -> dict:
    """Preview a schedule before saving it (the same computation as a campaign's preview)."""
    since = (body.from_ or datetime.now(UTC)).astimezone(UTC)
    return {"preview": service.preview_of(body.schedule, body.timezone, count=body.count, since=since)}


@router.post("/campaigns/{id}/dial-check", response_model=DialCheck)
async def dial_check(campaign_id: CampaignId, body: DialCheckRequest, caller: PipelineCaller, db: Db) -> DialCheck:
    """Whether the campaign may dial this recipient now (asked before each outbound dial)."""
    return await service.dial_check(pool=db, principal=caller, campaign_id=campaign_id, body=body)
