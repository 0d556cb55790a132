"""HTTP shapes of the scheduling endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.scheduling.models`."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.config import CampaignSchedule, Timezone
from campaigns.scheduling.models import Count, Preview


class PreviewEnvelope(ResponseModel):
    preview: Preview


class PreviewRequest(ApiModel):
    """A schedule to try out before saving it."""

    timezone: Timezone = "UTC"
    schedule: CampaignSchedule = Field(default_factory=CampaignSchedule)
    count: Count = 10
    from_: datetime | None = Field(default=None, alias="from", description="Default: now")

    @field_validator("from_")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must be an instant with an offset (e.g. '2026-12-01T08:00:00Z')")
        return value
