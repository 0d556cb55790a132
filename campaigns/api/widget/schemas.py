"""Request and response shapes of the widget API (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.config import CampaignStatus, VoiceSettings
from campaigns.domain.widget import WidgetBehavior, WidgetIntegration, WidgetStyling


class WidgetPatch(ApiModel):
    """A JSON merge patch (RFC 7386) of the widget: objects merge, lists and values replace,
    null removes (back to the default). The result is validated whole."""

    enabled: bool | None = None
    styling: dict[str, Any] | None = Field(default=None, description="Merge patch of the styling")
    behavior: dict[str, Any] | None = Field(default=None, description="Merge patch of the behaviour")
    integration: dict[str, Any] | None = Field(default=None, description="Merge patch of the integration")


class Widget(ResponseModel):
    campaign_id: str
    name: str
    status: CampaignStatus
    voice_settings: VoiceSettings
    enabled: bool
    styling: WidgetStyling
    behavior: WidgetBehavior
    integration: WidgetIntegration
    publishable_key: str = Field(
        description="Public by design: it can only send this widget's events, from its allowed origins"
    )
    script_url: str
    preview_url: str
    version: int
    updated_at: datetime


class WidgetEnvelope(ResponseModel):
    widget: Widget


class WidgetUpdated(ResponseModel):
    message: str
    widget: Widget


class EmbedCode(ResponseModel):
    html: str
    script_url: str
    preview_url: str
    publishable_key: str
    configuration: dict[str, Any]


class EmbedCodeEnvelope(ResponseModel):
    embed_code: EmbedCode


class WidgetAnalytics(ResponseModel):
    impressions: int = 0
    clicks: int = 0
    click_through_rate: float = 0
    average_display_time: float = Field(default=0, description="Milliseconds the panel stayed open, on average")
    displays: int = 0
    conversions: int = 0
    conversion_rate: float = Field(default=0, description="Conversions of visitors who clicked, per click")
    unique_visitors: int = 0


class WidgetAnalyticsEnvelope(ResponseModel):
    analytics: WidgetAnalytics
