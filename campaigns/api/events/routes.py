"""`POST /api/events`: the voice-AI pipeline and the widget report what happened."""

from __future__ import annotations

from fastapi import APIRouter, Request

from campaigns.analytics import ingest as service
from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import Analytics, Db, EventWriter
from campaigns.api.events.schemas import IngestResult, batch_schema
from campaigns.errors import invalid

router = APIRouter(prefix="/api/events", tags=["events"], route_class=JsonRoute)


@router.post(
    "",
    response_model=IngestResult,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": batch_schema()}}}},
    responses={
        400: {"description": "The batch is unusable, or every event in it was rejected"},
    },
)
async def ingest_events(request: Request, caller: EventWriter, db: Db, analytics: Analytics) -> dict:
    """Record a batch of up to 5,000 events; an event id already recorded is a no-op."""
    body = await request.body()  # at most EVENTS_MAX_BODY_BYTES (api.bodies)
    try:
        result = await service.ingest(
            pool=db,
            realtime=analytics.realtime,
            directory=analytics.directory,
            organization_id=caller.organization_id,
            body=body,
            retention=analytics.retention,
        )
    except service.BatchError as err:
        raise invalid(err.details, "invalid event batch") from None
    if result.rejected and not result.accepted and not result.duplicates:
        raise invalid(
            [
                {
                    "field": f"events[{r.index}].{r.field}" if r.field != "(event)" else f"events[{r.index}]",
                    "reason": r.reason,
                }
                for r in result.rejected
            ],
            "every event in the batch was rejected",
        )
    return {
        "accepted": result.accepted,
        "duplicates": len(result.duplicates),
        "rejected": len(result.rejected),
        "duplicate_events": [{"index": i, "id": event_id} for i, event_id in result.duplicates],
        "rejected_events": [
            {"index": r.index, "id": r.id, "field": r.field, "reason": r.reason} for r in result.rejected
        ],
    }
