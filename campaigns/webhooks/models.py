"""Request and response shapes of the webhooks and integrations API (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from campaigns.domain import netguard
from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.integrations import IntegrationType
from campaigns.domain.webhooks import RetryConfig, check_event_filter, check_header_value, check_headers


def _unique(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("event types repeat")
    return value


Url = Annotated[str, AfterValidator(netguard.check_url_shape)]
EventTypes = Annotated[
    list[Annotated[str, AfterValidator(check_event_filter)]],
    AfterValidator(lambda v: _unique(v)),
    Field(min_length=1, max_length=50, description="Exact event names or prefixes like 'campaign.*' ('*': all)."),
]
Headers = Annotated[
    # Checked as sent, before surrounding whitespace is trimmed; a bad value's error names its header.
    dict[str, Annotated[str, BeforeValidator(check_header_value)]],
    AfterValidator(check_headers),
    Field(description="Sent with every request; cannot override the signature or hop-by-hop headers."),
]
Description = Annotated[str, Field(max_length=500)]
Concurrency = Annotated[int, Field(ge=1, le=100, description="Requests in flight to this endpoint at most.")]


class WebhookCreate(ApiModel):
    url: Url
    event_types: EventTypes
    description: Description | None = None
    headers: Headers = Field(default_factory=dict)
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    max_concurrency: Concurrency = 10
    enabled: bool = True


class WebhookUpdate(ApiModel):
    """Fields given replace the current ones; fields left out stay as they are."""

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    headers: Headers | None = None
    retry_config: RetryConfig | None = None
    max_concurrency: Concurrency | None = None
    enabled: bool | None = Field(default=None, description="true re-enables a disabled endpoint.")


class SecretRotation(ResponseModel):
    previous_secret_expires_at: datetime


class Webhook(ResponseModel):
    id: str
    organization_id: str
    campaign_id: str | None
    url: str
    description: str | None
    event_types: list[str]
    headers: dict[str, str]
    retry_config: RetryConfig
    max_concurrency: int
    enabled: bool
    state: Literal["active", "failing", "disabled"]
    disabled_reason: Literal["manual", "gone", "failing"] | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    secret_rotation: SecretRotation | None
    version: int
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(default=None, description="The signing secret: shown once, at creation or rotation.")


class Attempt(ResponseModel):
    run: int
    attempt: int
    started_at: datetime
    latency_ms: float | None
    status_code: int | None
    response_excerpt: str | None
    error_class: str | None
    error: str | None
    retry_after_seconds: float | None


class Delivery(ResponseModel):
    id: str
    webhook_id: str
    message_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event_id: str | None
    event_type: str
    campaign_id: str | None
    sequence: int | None
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    run: int = Field(description="0 for the original send, n for the nth redelivery.")
    attempts: int = Field(description="Attempts made in the current run.")
    last_status_code: int | None
    last_error_class: str | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    payload: Any | None = Field(default=None, description="The body sent (in single-delivery reads).")
    attempt_log: list[Attempt] | None = Field(default=None, description="Every attempt (in single-delivery reads).")


# --- Integrations ----------------------------------------------------------------------


class IntegrationCreate(ApiModel):
    type: IntegrationType
    name: Annotated[str, Field(min_length=1, max_length=200)]
    url: Url
    event_types: EventTypes
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="http_push: {fieldMapping: {outputPath: JMESPath}, includeEvent}; "
        "slack: {template, channel, username, iconEmoji}.",
    )
    headers: Headers = Field(default_factory=dict)
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    max_concurrency: Concurrency = 10
    enabled: bool = True


class IntegrationUpdate(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    url: Url | None = None
    event_types: EventTypes | None = None
    config: dict[str, Any] | None = None
    headers: Headers | None = None
    retry_config: RetryConfig | None = None
    max_concurrency: Concurrency | None = None
    enabled: bool | None = None


class Integration(ResponseModel):
    id: str
    campaign_id: str
    type: IntegrationType
    name: str
    url: str
    event_types: list[str]
    config: dict[str, Any]
    headers: dict[str, str]
    retry_config: RetryConfig
    max_concurrency: int
    enabled: bool
    state: Literal["active", "failing", "disabled"]
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(default=None, description="Signs every request (Standard Webhooks); shown once.")
