"""HTTP shapes of the analytics endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.analytics.models`."""

from __future__ import annotations

from campaigns.analytics.models import Analytics, RealTimeMetrics
from campaigns.domain.base import ResponseModel


class RealTimeEnvelope(ResponseModel):
    metrics: RealTimeMetrics


class AnalyticsEnvelope(ResponseModel):
    analytics: Analytics
