"""Widget events as a page sends them, and their hand-over to the analytics ingestion.

A page chooses each event's id (so a resend is harmless), but the id is recorded as
`widget:<campaignId>:<id>`: ids are unique per organization, and a key anyone can read
must not be able to take an id another event of the organization will use.
The platform's clock dates the event; a visitor's clock can be anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import orjson
from pydantic import Field, model_validator

from campaigns.analytics.runtime import AnalyticsRuntime
from campaigns.api.errors import Unavailable
from campaigns.api.events import service as events_service
from campaigns.domain.base import ApiModel
from campaigns.domain.widget import WIDGET_EVENT_TYPES


class WidgetEvent(ApiModel):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    type: Literal["widget.impression", "widget.click", "widget.display"]
    occurred_at: datetime | None = Field(default=None, description="Ignored: the platform's clock dates events")
    subject_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _data_fits_type(self) -> WidgetEvent:
        if self.type == "widget.display":
            ms = self.data.get("ms")
            if set(self.data) != {"ms"} or isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= 86_400_000:
                raise ValueError('widget.display needs data {"ms": milliseconds shown, 0 to 86400000}')
        elif self.data:
            raise ValueError(f"{self.type} carries no data")
        return self


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def as_analytics_event(event: WidgetEvent, *, campaign_id: UUID, at: datetime) -> dict[str, Any]:
    """The event in the analytics ingestion's shape."""
    out: dict[str, Any] = {
        "id": f"widget:{campaign_id}:{event.id}",
        "campaignId": str(campaign_id),
        "type": event.type,
        "occurredAt": at.isoformat(),
        "data": event.data,
    }
    if event.subject_id:
        out["subjectId"] = event.subject_id
    return out


async def ingest(
    pool: asyncpg.Pool,
    analytics: AnalyticsRuntime,
    *,
    organization_id: UUID,
    campaign_id: UUID,
    events: list[WidgetEvent],
    at: datetime,
) -> IngestResult:
    """Record the events through the analytics ingestion (once per id), which may take
    only widget events of this campaign from here."""
    if not events:
        return IngestResult()
    body = orjson.dumps({"events": [as_analytics_event(e, campaign_id=campaign_id, at=at) for e in events]})
    try:
        result = await events_service.ingest(
            pool=pool,
            realtime=analytics.realtime,
            directory=analytics.directory,
            organization_id=organization_id,
            body=body,
            now=at,
            only_campaign=campaign_id,
            only_types=WIDGET_EVENT_TYPES,
        )
    except events_service.BatchError as err:  # cannot happen with events validated above; say so if it does
        raise Unavailable(f"widget events could not be recorded: {err}", code="ingestion_failed") from None
    if result.accepted:
        analytics.refresher.nudge()
    return IngestResult(
        accepted=result.accepted,
        duplicates=len(result.duplicates),
        rejected=[{"index": r.index, "reason": f"{r.field}: {r.reason}"} for r in result.rejected],
    )
