"""Campaign endpoints: `/api/campaigns` and what hangs directly off one campaign."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response

from campaigns.analytics.service import campaign_response, enrich
from campaigns.api.bodies import JsonRoute
from campaigns.api.campaigns.schemas import AuditList, CampaignEnvelope, CampaignList
from campaigns.api.deps import Analytics, AppSettings, Cache, Db, Reader, Temporal, Writer
from campaigns.campaigns import service
from campaigns.campaigns.models import CampaignCreate, CampaignPatch, Changed, CloneRequest, ConfigurationPatch
from campaigns.domain.config import CampaignChannel, CampaignStatus, CampaignType
from campaigns.domain.validators import Count, NonNegativeReal, Rate
from campaigns.errors import invalid

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], route_class=JsonRoute)

CampaignId = Annotated[UUID, Path(alias="id", description="The campaign's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Send the same key when retrying: the request takes effect once.",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="The ETag you read; 412 if it changed.")]
Page = Annotated[int, Query(ge=1, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=100)]


def _csv(values: list[str] | None, enum: type[Enum], field: str) -> list[str] | None:
    """Accept `?status=active,paused` as well as `?status=active&status=paused`."""
    if not values:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    allowed = {e.value for e in enum}
    bad = [v for v in items if v not in allowed]
    if bad:
        raise invalid([{"field": f"query.{field}", "reason": f"unknown value(s) {bad}; allowed: {sorted(allowed)}"}])
    return items


def _envelope(response: Response, campaign) -> dict:
    response.headers["ETag"] = service.etag(campaign)
    return {"campaign": campaign}


def _changed(response: Response, changed: Changed) -> dict:
    """A change's answer: 202 while a status change it asked for is pending (pendingStatusChange)."""
    if changed.pending:
        response.status_code = 202
    if changed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _envelope(response, changed.campaign)


# A status change may also be accepted and still pending.
_PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CampaignEnvelope, "description": "Accepted: the change is pending (pendingStatusChange)"}
}


@router.post("", status_code=201, response_model=CampaignEnvelope)
async def create_campaign(
    body: CampaignCreate,
    caller: Writer,
    db: Db,
    settings: AppSettings,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Create a draft campaign (its workflow starts with its first status change)."""
    campaign, replayed = await service.create(
        pool=db,
        settings=settings,
        principal=caller,
        body=body,
        idempotency_key=idempotency_key,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/api/campaigns/{campaign.id}"
    return _envelope(response, campaign)


@router.get("", response_model=CampaignList)
async def list_campaigns(
    caller: Reader,
    db: Db,
    analytics: Analytics,
    status: Annotated[
        list[str] | None,
        Query(description="Filter; comma-separated or repeated. Archived campaigns are listed only when asked for."),
    ] = None,
    type: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Name contains (case-insensitive)")] = None,
    sort: Annotated[
        str, Query(description="Field to sort on, '-' prefix for descending: " + ", ".join(service.SORT_KEYS))
    ] = "-createdAt",
    page: Page = 1,
    limit: Limit = 20,
    organization_id: Annotated[str | None, Query(alias="organizationId")] = None,
    min_conversion_rate: Annotated[Rate | None, Query(alias="minConversionRate")] = None,
    max_conversion_rate: Annotated[Rate | None, Query(alias="maxConversionRate")] = None,
    min_qualified_leads: Annotated[Count | None, Query(alias="minQualifiedLeads")] = None,
    max_cost_per_lead: Annotated[NonNegativeReal | None, Query(alias="maxCostPerLead")] = None,
    min_total_calls: Annotated[Count | None, Query(alias="minTotalCalls")] = None,
) -> dict:
    """List the organization's campaigns with their performance (filter and sort on it too)."""
    if sort.lstrip("-") not in service.SORT_KEYS:
        raise invalid(
            [{"field": "query.sort", "reason": f"must be one of {list(service.SORT_KEYS)} (optionally with '-')"}]
        )
    rows, campaigns, total = await service.list_(
        pool=db,
        principal=caller,
        statuses=_csv(status, CampaignStatus, "status"),
        types=_csv(type, CampaignType, "type"),
        channels=_csv(channel, CampaignChannel, "channel"),
        search=q,
        sort=sort,
        page=page,
        limit=limit,
        performance={
            "min_conversion_rate": min_conversion_rate,
            "max_conversion_rate": max_conversion_rate,
            "min_qualified_leads": min_qualified_leads,
            "max_cost_per_lead": max_cost_per_lead,
            "min_total_calls": min_total_calls,
        },
    )
    await enrich(analytics.realtime, db, rows, campaigns, trends=False)
    return {"campaigns": campaigns, "total": total, "page": page, "limit": limit}


@router.get("/{id}", response_model=CampaignEnvelope)
async def get_campaign(campaign_id: CampaignId, caller: Reader, db: Db, cache: Cache, analytics: Analytics) -> Response:
    """Get a campaign, with today's figures and its recent trends."""
    # Rendered by the service (once per version, kept in memory): no model to validate here.
    body, etag = await campaign_response(
        pool=db, cache=cache, realtime=analytics.realtime, principal=caller, campaign_id=campaign_id
    )
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.put("/{id}", response_model=CampaignEnvelope, responses=_PENDING)
async def update_campaign(
    campaign_id: CampaignId,
    body: CampaignPatch,
    request: Request,
    response: Response,
    caller: Writer,
    db: Db,
    cache: Cache,
    temporal: Temporal,
    settings: AppSettings,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Partially update a campaign (JSON merge patch); a status change goes through its workflow."""
    changed = await service.update(
        pool=db,
        cache=cache,
        temporal=temporal,
        settings=settings,
        principal=caller,
        campaign_id=campaign_id,
        patch=await request.json(),
        if_match=if_match,
        idempotency_key=idempotency_key,
    )
    return _changed(response, changed)


@router.delete("/{id}", response_model=CampaignEnvelope, responses=_PENDING)
async def archive_campaign(
    campaign_id: CampaignId,
    caller: Writer,
    db: Db,
    cache: Cache,
    temporal: Temporal,
    settings: AppSettings,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Archive a campaign (its workflow completes; the data stays readable)."""
    changed = await service.change_status(
        pool=db,
        cache=cache,
        temporal=temporal,
        settings=settings,
        principal=caller,
        campaign_id=campaign_id,
        target=CampaignStatus.ARCHIVED,
        idempotency_key=idempotency_key,
    )
    return _changed(response, changed)


@router.put("/{id}/configuration", response_model=CampaignEnvelope)
async def update_configuration(
    campaign_id: CampaignId,
    body: ConfigurationPatch,
    request: Request,
    response: Response,
    caller: Writer,
    db: Db,
    cache: Cache,
    temporal: Temporal,
    settings: AppSettings,
    if_match: IfMatch = None,
) -> dict:
    """Update the configuration (merge patch); invalid input lists every error."""
    changed = await service.update(
        pool=db,
        cache=cache,
        temporal=temporal,
        settings=settings,
        principal=caller,
        campaign_id=campaign_id,
        patch=await request.json(),
        if_match=if_match,
        configuration_only=True,
    )
    return _changed(response, changed)


@router.post("/{id}/clone", status_code=201, response_model=CampaignEnvelope)
async def clone_campaign(
    campaign_id: CampaignId,
    caller: Writer,
    db: Db,
    cache: Cache,
    settings: AppSettings,
    response: Response,
    body: CloneRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Copy a campaign's whole configuration into a new draft."""
    campaign, replayed = await service.clone(
        pool=db,
        cache=cache,
        settings=settings,
        principal=caller,
        campaign_id=campaign_id,
        body=body or CloneRequest(),
        idempotency_key=idempotency_key,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/api/campaigns/{campaign.id}"
    return _envelope(response, campaign)


@router.get("/{id}/audit", response_model=AuditList)
async def campaign_audit(
    campaign_id: CampaignId, caller: Reader, db: Db, cache: Cache, page: Page = 1, limit: Limit = 50
) -> dict:
    """Who changed what and when (configuration and status), oldest first."""
    entries, total = await service.audit(
        pool=db, cache=cache, principal=caller, campaign_id=campaign_id, page=page, limit=limit
    )
    return {"audit": entries, "total": total, "page": page, "limit": limit}


def _action_route(path: str, target: CampaignStatus, doc: str) -> None:
    async def action(
        campaign_id: CampaignId,
        caller: Writer,
        db: Db,
        cache: Cache,
        temporal: Temporal,
        settings: AppSettings,
        response: Response,
        idempotency_key: IdempotencyKey = None,
        reason: Annotated[str | None, Query(max_length=500, description="Kept in the audit log")] = None,
    ) -> dict:
        changed = await service.change_status(
            pool=db,
            cache=cache,
            temporal=temporal,
            settings=settings,
            principal=caller,
            campaign_id=campaign_id,
            target=target,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        return _changed(response, changed)

    action.__doc__ = doc
    router.add_api_route(
        f"/{{id}}/{path}",
        action,
        methods=["POST"],
        response_model=CampaignEnvelope,
        responses=_PENDING,
        name=f"{path}_campaign",
        summary=doc.rstrip("."),
    )


_action_route("activate", CampaignStatus.ACTIVE, "Activate a draft campaign (scheduled if its start lies ahead).")
_action_route("pause", CampaignStatus.PAUSED, "Pause a campaign.")
_action_route("resume", CampaignStatus.ACTIVE, "Resume a paused campaign (re-evaluated against its schedule).")
_action_route("end", CampaignStatus.ENDED, "End a campaign.")
