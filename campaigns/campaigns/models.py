"""Request and response shapes of the campaigns API (camelCase JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from campaigns.domain.base import ApiModel, ResponseModel
from campaigns.domain.config import (
    KPI,
    CampaignBudget,
    CampaignChannel,
    CampaignConfiguration,
    CampaignGoal,
    CampaignSchedule,
    CampaignStatus,
    CampaignType,
    TargetAudience,
    VoiceSettings,
)

Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]


class CampaignCreate(CampaignConfiguration):
    """A new campaign. Only name, type and channel are required; the rest has defaults,
    and KPIs default to those usual for the campaign's type."""

    name: Name
    description: Description | None = None
    type: CampaignType
    channel: CampaignChannel
    organization_id: str | None = Field(
        default=None, description="Optional; when given it must be the API key's organization."
    )


class CampaignPatch(ApiModel):
    """A JSON merge patch (RFC 7386) of the campaign: objects merge, arrays and scalars
    replace, null removes. Each section is validated whole after the merge. A `status`
    change goes through the lifecycle (docs/api.md, "The lifecycle")."""

    name: Name | None = None
    description: Description | None = None
    status: CampaignStatus | None = None
    status_reason: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Why the status is changing; kept in the audit log."
    )
    type: CampaignType | None = None
    channel: CampaignChannel | None = None
    organization_id: str | None = None
    flow_id: str | None = None
    voice_settings: dict[str, Any] | None = Field(default=None, description="Merge patch of VoiceSettings")
    knowledge_base_ids: list[str] | None = None
    target_audience: dict[str, Any] | None = Field(default=None, description="Merge patch of TargetAudience")
    schedule: dict[str, Any] | None = Field(default=None, description="Merge patch of CampaignSchedule")
    timezone: str | None = None
    budget: dict[str, Any] | None = Field(default=None, description="Merge patch of CampaignBudget")
    goals: list[dict[str, Any]] | None = None
    kpis: list[dict[str, Any]] | None = None


class ConfigurationPatch(ApiModel):
    """A JSON merge patch of the campaign's configuration (see CampaignPatch)."""

    organization_id: str | None = None
    flow_id: str | None = None
    voice_settings: dict[str, Any] | None = None
    knowledge_base_ids: list[str] | None = None
    target_audience: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    timezone: str | None = None
    budget: dict[str, Any] | None = None
    goals: list[dict[str, Any]] | None = None
    kpis: list[dict[str, Any]] | None = None


class CloneRequest(ApiModel):
    name: Name | None = Field(default=None, description="Defaults to '<name> (copy)'.")
    description: Description | None = None


class TrendPoint(ResponseModel):
    period: str
    calls: int = 0
    leads: int = 0
    conversions: int = 0
    cost: float = 0


class CampaignPerformance(ResponseModel):
    total_calls: int = 0
    completed_calls: int = 0
    qualified_leads: int = 0
    conversions: int = 0
    conversion_rate: float = 0
    average_call_duration: float = 0
    cost_per_lead: float = 0
    total_cost: float = 0
    revenue: float = 0
    # Live from the real-time counters; while they are unavailable `realTimeAvailable` is
    # false, `activeCalls` null and today's leads and cost come from the rollups.
    active_calls: int | None = 0
    today_leads: int = 0
    today_cost: float = 0
    real_time_available: bool = True
    daily_trends: list[TrendPoint] = Field(default_factory=list)
    hourly_trends: list[TrendPoint] = Field(default_factory=list)


class CostBreakdown(ResponseModel):
    telephony: float = 0
    stt: float = 0
    tts: float = 0
    llm: float = 0
    other: float = 0


class CostTracking(ResponseModel):
    total_cost: float = 0
    today_cost: float = 0
    currency: str = "USD"
    by_category: CostBreakdown = Field(default_factory=CostBreakdown)
    budget_total: float | None = None
    budget_daily: float | None = None
    budget_remaining: float | None = None
    budget_used_ratio: float | None = None
    last_updated: datetime | None = None


class PendingStatusChange(ResponseModel):
    """A status change accepted (recorded) but not applied yet: the campaign's workflow
    applies or refuses it as soon as it can."""

    target: CampaignStatus
    reason: str | None
    requested_at: datetime
    request_id: str


class Campaign(ResponseModel):
    id: str
    organization_id: str
    user_id: str
    name: str
    description: str | None
    status: CampaignStatus
    status_reason: str | None
    type: CampaignType
    channel: CampaignChannel
    flow_id: str | None
    voice_settings: VoiceSettings
    knowledge_base_ids: list[str]
    target_audience: TargetAudience
    schedule: CampaignSchedule
    timezone: str
    budget: CampaignBudget | None
    goals: list[CampaignGoal]
    kpis: list[KPI]
    performance: CampaignPerformance
    cost_tracking: CostTracking
    version: int
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    window_open: bool = Field(
        default=False, description="Whether the campaign is active and inside a calling window now"
    )
    next_window_change: datetime | None = Field(
        default=None, description="When windowOpen next changes (while scheduled: the first opening)"
    )
    pending_status_change: PendingStatusChange | None = Field(
        default=None,
        description="A status change accepted (202) and not yet applied or refused; absent once it is",
    )


@dataclass(frozen=True)
class Changed:
    """What a change answers: the campaign, whether a status change it asked for is still
    pending (accepted, not yet applied: 202), and whether this was a retry of an earlier
    request with the same Idempotency-Key."""

    campaign: Campaign
    pending: bool = False
    replayed: bool = False


class AuditEntry(ResponseModel):
    id: int
    actor: dict[str, Any]
    action: str
    changes: dict[str, Any]
    reason: str | None
    created_at: datetime
