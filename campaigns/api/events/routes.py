"""`POST /api/events`: the voice-AI pipeline and the widget report what happened."""

from __future__ import annotations

from fastapi import APIRouter, Request

from campaigns.analytics import ingest as service
from campaigns.api.deps import Analytics, Caller, Db
from campaigns.api.events.schemas import IngestResult, batch_schema
from campaigns.domain.analytics_events import MAX_BATCH
from campaigns.errors import AppError, invalid

router = APIRouter(prefix="/api/events", tags=["events"])

MAX_BODY = 16 * 1024 * 1024  # far above 5,000 events of any valid size


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes; send at most {MAX_BATCH} events per batch")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes; send at most {MAX_BATCH} events per batch")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    response_model=IngestResult,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": batch_schema()}}}},
    responses={
        400: {"description": "The batch is unusable, or every event in it was rejected"},
        413: {"description": "Body too large"},
    },
)
async def ingest_events(request: Request, caller: Caller, db: Db, analytics: Analytics) -> dict:
    """Record a batch of up to 5,000 events; an event id already recorded is a no-op."""
    body = await read_body(request)
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
