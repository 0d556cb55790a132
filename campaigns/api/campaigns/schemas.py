"""HTTP shapes of the campaigns endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.campaigns.models`."""

from __future__ import annotations

from campaigns.campaigns.models import AuditEntry, Campaign
from campaigns.domain.base import ResponseModel


class CampaignEnvelope(ResponseModel):
    campaign: Campaign


class CampaignList(ResponseModel):
    campaigns: list[Campaign]
    total: int
    page: int
    limit: int


class AuditList(ResponseModel):
    audit: list[AuditEntry]
    total: int
    page: int
    limit: int
