"""HTTP shapes of the widget endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.widget.models`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.widget.models import EmbedCode, Widget, WidgetAnalytics


class WidgetPatch(ApiModel):
    """A JSON merge patch (RFC 7386) of the widget: objects merge, lists and values replace,
    null removes (back to the default). The result is validated whole."""

    enabled: bool | None = None
    styling: dict[str, Any] | None = Field(default=None, description="Merge patch of the styling")
    behavior: dict[str, Any] | None = Field(default=None, description="Merge patch of the behaviour")
    integration: dict[str, Any] | None = Field(default=None, description="Merge patch of the integration")


class WidgetEnvelope(ResponseModel):
    widget: Widget


class WidgetUpdated(ResponseModel):
    message: str
    widget: Widget


class EmbedCodeEnvelope(ResponseModel):
    embed_code: EmbedCode


class WidgetAnalyticsEnvelope(ResponseModel):
    analytics: WidgetAnalytics
