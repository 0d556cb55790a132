"""Campaign analytics endpoints: the report, real-time metrics, their SSE stream, exports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from campaigns.analytics import export, service
from campaigns.api.analytics.schemas import AnalyticsEnvelope, RealTimeEnvelope
from campaigns.api.analytics.stream import MetricsStream
from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import Analytics, AnalyticsReader, AppSettings, Cache, Db, Revocation
from campaigns.errors import invalid

T = TypeVar("T")

router = APIRouter(prefix="/api/campaigns", tags=["analytics"], route_class=JsonRoute)

CampaignId = Annotated[UUID, Path(alias="id", description="The campaign's id")]


class KeyRevoked(Exception):
    """The caller's key was revoked while its export ran: the download is cut off, so the
    client sees a broken transfer rather than a short file it might take for whole."""


async def _until(stop: Awaitable[None], source: AsyncIterator[T]) -> AsyncIterator[T | None]:
    """`source`'s items until `stop` completes; then one None, and the end."""
    stopper = asyncio.ensure_future(stop)
    try:
        while True:
            following = asyncio.ensure_future(anext(source))
            await asyncio.wait({following, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                yield None
                return
            try:
                yield following.result()
            except StopAsyncIteration:
                return
    finally:
        stopper.cancel()
        await source.aclose()  # type: ignore[attr-defined]


@router.get("/{id}/analytics", response_model=AnalyticsEnvelope)
async def campaign_analytics(
    campaign_id: CampaignId,
    caller: AnalyticsReader,
    db: Db,
    cache: Cache,
    timeframe: Annotated[str | None, Query(description="24h, 7d (default), 30d or 90d, ending now")] = None,
    granularity: Annotated[str | None, Query(description="hourly or daily (default: hourly up to 48 hours)")] = None,
    start: Annotated[
        str | None, Query(description="Instead of timeframe: a date (campaign-local) or an ISO date-time with offset")
    ] = None,
    end: Annotated[
        str | None, Query(description="With start: an inclusive date or an exclusive date-time; default now")
    ] = None,
) -> dict:
    """Performance, trends, comparisons, forecasts, insights, recommendations, goals and budget."""
    analytics = await service.get_analytics(
        pool=db,
        cache=cache,
        principal=caller,
        campaign_id=campaign_id,
        timeframe=timeframe,
        granularity=granularity,
        start=start,
        end=end,
    )
    return {"analytics": analytics}


@router.get("/{id}/analytics/real-time", response_model=RealTimeEnvelope)
async def realtime_metrics(
    campaign_id: CampaignId, caller: AnalyticsReader, db: Db, cache: Cache, analytics: Analytics
) -> dict:
    """Today's figures (in the campaign's timezone) and the calls in progress, live."""
    row = await service.campaign_row(db, cache, caller, campaign_id)
    return {"metrics": await service.realtime_metrics(analytics.realtime, service.CampaignInfo.of(row))}


@router.get(
    "/{id}/analytics/stream",
    response_class=MetricsStream,
    status_code=200,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`metrics` events (the real-time metrics as JSON) on every change",
        }
    },
)
async def realtime_stream(
    campaign_id: CampaignId,
    caller: AnalyticsReader,
    db: Db,
    cache: Cache,
    analytics: Analytics,
    settings: AppSettings,
    revoked: Revocation,
) -> MetricsStream:
    """Server-Sent Events: the real-time metrics now, then again whenever they change."""
    row = await service.campaign_row(db, cache, caller, campaign_id)
    lease = await analytics.leases.acquire(
        "streams", caller.organization_id, settings.max_streams_per_organization, what="real-time streams"
    )
    return MetricsStream(analytics.hub, service.CampaignInfo.of(row), lease=lease, revoked=revoked)


@router.get(
    "/{id}/analytics/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {v: {} for v in export.FORMATS.values()},
            "description": "A download (Content-Disposition: attachment), streamed",
        }
    },
)
async def export_analytics(
    campaign_id: CampaignId,
    caller: AnalyticsReader,
    db: Db,
    cache: Cache,
    analytics: Analytics,
    settings: AppSettings,
    revoked: Revocation,
    format: Annotated[str, Query(description="csv, json or ndjson")] = "json",
    dataset: Annotated[str, Query(description="events (default: one row per event), hourly or daily")] = "events",
    start_date: Annotated[
        str | None, Query(alias="startDate", description="A date (campaign-local) or an ISO date-time with offset")
    ] = None,
    end_date: Annotated[
        str | None, Query(alias="endDate", description="An inclusive date or exclusive date-time")
    ] = None,
) -> StreamingResponse:
    """Download the campaign's events or figures, streamed (constant memory at any size)."""
    errors = []
    if format not in export.FORMATS:
        errors.append({"field": "query.format", "reason": f"must be one of {list(export.FORMATS)}"})
    if dataset not in export.DATASETS:
        errors.append({"field": "query.dataset", "reason": f"must be one of {list(export.DATASETS)}"})
    if errors:
        raise invalid(errors)
    row = await service.campaign_row(db, cache, caller, campaign_id)
    info = service.CampaignInfo.of(row)
    now = datetime.now(UTC)
    if start_date is None and end_date is None:
        start, end = datetime(1970, 1, 1, tzinfo=UTC), now + timedelta(days=1)
    else:
        start, end, _ = service.resolve_period(
            timeframe=None,
            granularity="daily",
            start=start_date or "1970-01-01",
            end=end_date,
            tz=info.timezone,
            now=now,
            start_field="startDate",
            end_field="endDate",
            max_span=None,
        )
    name = export.filename(info.id, dataset, start if start_date else row["created_at"], min(end, now), format)
    lease = await analytics.leases.acquire(
        "exports", caller.organization_id, settings.max_exports_per_organization, what="exports"
    )

    async def body() -> AsyncIterator[bytes]:
        chunks = export.stream(
            db, campaign_id=info.id, dataset=dataset, fmt=format, start=start, end=end, tz=info.timezone
        )
        async with lease.kept():
            async for chunk in _until(revoked(), chunks):
                if chunk is None:
                    raise KeyRevoked(f"export of campaign {info.id} cut off: its API key was revoked")
                yield chunk

    return StreamingResponse(
        body(),
        media_type=export.FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
