"""HTTP shapes of the webhooks endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.webhooks.models`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.webhooks.models import Attempt, Delivery, Integration, Webhook


class RotateSecret(ApiModel):
    grace_period_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] | None = Field(
        default=None, description="How long the old secret keeps signing too (default 24 h; 0 ends it now)."
    )


class Recover(ApiModel):
    since: datetime = Field(description="Re-send every failed delivery created at or after this instant…")
    until: datetime | None = Field(default=None, description="…and before this one (default: now).")

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2030-01-01T00:00:00Z")
        return value


class WebhookEnvelope(ResponseModel):
    webhook: Webhook


class WebhookList(ResponseModel):
    webhooks: list[Webhook]
    total: int
    page: int
    limit: int


class DeliveryEnvelope(ResponseModel):
    delivery: Delivery


class DeliveryList(ResponseModel):
    deliveries: list[Delivery]
    total: int
    page: int
    limit: int


class AttemptList(ResponseModel):
    attempts: list[Attempt]


class RecoverResult(ResponseModel):
    recovered: int
    deliveries: list[str]


class EventType(ResponseModel):
    type: str
    description: str


class IntegrationEnvelope(ResponseModel):
    integration: Integration


class IntegrationList(ResponseModel):
    integrations: list[Integration]
    total: int
