"""Request and response shapes of the scheduling endpoints (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.config import CampaignSchedule, Timezone
from campaigns.domain.dialing import Reason

Count = Annotated[int, Field(ge=1, le=500)]


class PreviewWindow(ResponseModel):
    opens_at: datetime | None = Field(description="UTC; null when open since before anything the schedule defines")
    opens_at_local: datetime | None = Field(
        description="The same instant on the campaign's wall clock, with its offset"
    )
    closes_at: datetime | None = Field(description="UTC; null when the window never closes")
    closes_at_local: datetime | None
    open_at_from: bool = Field(description="Whether this window is already open at `from`")


class Preview(ResponseModel):
    timezone: str
    from_: datetime = Field(alias="from")
    recurring: bool = Field(description="Run windows come from the recurrence's Temporal Schedule (predicted here)")
    windows: list[PreviewWindow]
    more: bool = Field(description="Whether further windows follow within the horizon")


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


class DialCheckRequest(ApiModel):
    """Who is about to be called: their timezone, or their E.164 number (the number's
    prefix must map to one timezone). When both are given, the timezone is used."""

    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    phone_number: Annotated[str, Field(min_length=1, max_length=32)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> DialCheckRequest:
        if self.timezone is None and self.phone_number is None:
            raise ValueError("give the recipient's timezone or phoneNumber")
        return self


class Recipient(ResponseModel):
    timezone: str | None
    source: str = Field(description="Where the timezone came from: 'timezone' or 'phoneNumber'")
    local_time: datetime | None = Field(description="Now on the recipient's wall clock")
    candidates: list[str] = Field(
        default_factory=list, description="The zones the number may be in, when it has more than one"
    )


class DialCheck(ResponseModel):
    allowed: bool
    reason: Reason
    message: str
    next_allowed_at: datetime | None = Field(description="When a dial may next be allowed, when refused and known")
    allowed_until: datetime | None = Field(
        description="When an allowed dial stops being allowed, if within the horizon"
    )
    recipient: Recipient
    checked_at: datetime
