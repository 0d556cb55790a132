"""What the API, the campaign workflow and its activities say to each other.

Pure pydantic models (the Temporal client and worker use the pydantic data
converter), so the workflow sandbox can import them freely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from campaigns.domain.config import (
    CampaignBudget,
    CampaignChannel,
    CampaignGoal,
    CampaignSchedule,
    CampaignStatus,
    CampaignType,
)
from campaigns.domain.pipeline import PipelineApplied


class Actor(BaseModel):
    """Who asked for a change: an API key, or the platform itself (schedule, budget…)."""

    kind: Literal["api_key", "system", "operator"] = "operator"
    id: str | None = None
    name: str = "temporal-ui"

    def label(self) -> str:
        return f"{self.kind}:{self.name}" + (f" ({self.id})" if self.id else "")


SYSTEM = Actor(kind="system", name="campaign-workflow")


class WorkflowConfig(BaseModel):
    """The part of a campaign's configuration its workflow acts on. `version` orders
    updates, so a late signal can never roll the workflow back to an older one."""

    version: int
    name: str
    type: CampaignType
    channel: CampaignChannel
    timezone: str
    schedule: CampaignSchedule = Field(default_factory=CampaignSchedule)
    budget: CampaignBudget | None = None
    goals: list[CampaignGoal] = Field(default_factory=list)
    # Digest of the flow, voice settings and knowledge bases: a change reinitializes the pipeline.
    pipeline_fingerprint: str = ""


class CampaignState(BaseModel):
    """The whole state of a campaign workflow; continue-as-new hands it on unchanged."""

    campaign_id: str
    organization_id: str
    status: CampaignStatus = CampaignStatus.DRAFT
    status_reason: str | None = None
    config: WorkflowConfig
    started_at: datetime | None = None
    ended_at: datetime | None = None
    changed_at: datetime | None = None
    transitions: int = 0
    runs: int = 1  # how many runs this campaign's history spans (continue-as-new)
    pipeline: PipelineApplied | None = None  # what the voice-AI pipeline last confirmed


class StatusRequest(BaseModel):
    target: CampaignStatus
    actor: Actor = Field(default_factory=Actor)
    reason: str | None = None


class StatusResult(BaseModel):
    previous: CampaignStatus
    status: CampaignStatus
    status_reason: str | None
    changed_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class PersistTransition(BaseModel):
    """One status change, written to Postgres at most once (keyed by transition_id)."""

    transition_id: str
    campaign_id: str
    organization_id: str
    source: CampaignStatus
    target: CampaignStatus
    reason: str
    actor: Actor
    at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    event_type: str
    event_data: dict[str, Any] = Field(default_factory=dict)


class DomainEvent(BaseModel):
    """A platform event (campaign.activated, goal.achieved…), recorded once by id."""

    id: str
    organization_id: str
    campaign_id: str | None
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime
