"""The campaign workflow's id, names and messages: what the API, the workflow and its
activities say to each other.

Pure pydantic models (the Temporal client and worker use the pydantic data converter),
so the workflow sandbox can import them freely. Activities are named here and called by
name, so the workflow never imports the modules that do I/O. The names are the ones
recorded in existing histories: changing one breaks the replay of running campaigns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import (
    CampaignBudget,
    CampaignChannel,
    CampaignGoal,
    CampaignSchedule,
    CampaignStatus,
    CampaignType,
)
from campaigns.domain.pipeline import PipelineApplied
from campaigns.messages.common import Actor, PlatformEvent

WORKFLOW = "CampaignWorkflow"
RUN_WINDOW_WORKFLOW = "RunWindowWorkflow"

# Its Updates, signals and query.
CHANGE_STATUS = "change_status"
START_AB_TEST = "start_ab_test"
CONFIGURATION_CHANGED = "configuration_changed"
RUN_WINDOW_FIRED = "run_window_fired"
SPEND_REPORTED = "spend_reported"
CURRENT = "current"

# The activities it runs.
PERSIST_TRANSITION = "persist_transition"
RECORD_EVENT = "record_event"  # records a PlatformEvent
PERSIST_WINDOW = "persist_window"
SYNC_PIPELINE = "sync_pipeline"
MISSING_KNOWLEDGE_BASES = "missing_knowledge_bases"
SYNC_RECURRENCE = "sync_recurrence"
RECURRENCE_ACTIVE = "recurrence_active"


def workflow_id(campaign_id: str) -> str:
    return f"campaign-{campaign_id}"


def schedule_id(campaign_id: str) -> str:
    """The Temporal Schedule of the campaign's recurrence."""
    return f"campaign-{campaign_id}-recurrence"


def run_workflow_id(campaign_id: str) -> str:
    """Prefix of the workflows the recurrence's Schedule starts (Temporal appends the fire time)."""
    return f"campaign-{campaign_id}-run"


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
    # The knowledge bases an activation must find (None: not known, as in configurations sent
    # before this field existed, so they are checked).
    knowledge_base_ids: list[str] | None = None


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
    spend: BudgetSpend | None = None  # the latest spend reported against a budget cap
    runs: int = 1  # how many runs this campaign's history spans (continue-as-new)
    window: CallingWindowState = Field(default_factory=lambda: CallingWindowState())
    pipeline: PipelineApplied | None = None  # what the voice-AI pipeline last confirmed
    # The status requests this campaign applied most recently (at most REMEMBERED_REQUESTS),
    # carried across continue-as-new: Temporal recognizes a re-sent update id only within
    # one run, so a request re-sent after a hand-over is answered from here, not applied again.
    applied_requests: list[AppliedRequest] = Field(default_factory=list)


REMEMBERED_REQUESTS = 100


class StatusRequest(BaseModel):
    """A status change. `request_id` names the request recorded in Postgres (it is also the
    update id); `config` is the configuration as the request saw it, which the workflow
    takes first if it is newer than its own (so a change never plans on an older one)."""

    target: CampaignStatus
    actor: Actor = Field(default_factory=Actor)
    reason: str | None = None
    request_id: str | None = None
    config: WorkflowConfig | None = None


class StatusResult(BaseModel):
    previous: CampaignStatus
    status: CampaignStatus
    status_reason: str | None
    changed_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class AppliedRequest(BaseModel):
    request_id: str
    result: StatusResult


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
    window: PersistWindow | None = None  # the calling-window change the status change causes
    request_id: str | None = None  # the status request this applies, marked applied in the same transaction


# --- Calling windows and recurring runs ------------------------------------------------


class RunWindow(BaseModel):
    """A run window the recurrence opened. `key` names its occurrence (nominal local time,
    e.g. '2027-03-14T09:00'), so a Schedule that fires twice opens it once."""

    key: str
    opens_at: datetime
    closes_at: datetime
    source: Literal["schedule", "workflow", "manual"] = "schedule"


class CallingWindowState(BaseModel):
    """What the campaign workflow knows about its calling window (part of CampaignState)."""

    open: bool = False
    next_change: datetime | None = None  # as last persisted
    changed_at: datetime | None = None  # when it last opened or closed
    flips: int = 0  # how many times it opened or closed: numbers its events
    checked_at: datetime | None = None  # when the workflow last looked
    runs: list[RunWindow] = Field(default_factory=list)
    # Run windows on clock-change days (which the Schedule leaves out) up to here are handled.
    shifted_checked_until: datetime | None = None
    recurrence: str = ""  # fingerprint of the Schedule state last written ('' = no Schedule)
    recurrence_version: int = 0


class RunWindowFired(BaseModel):
    """Sent to the campaign workflow when its recurrence's Temporal Schedule fires."""

    fired_at: datetime
    workflow_id: str | None = None


class RunWindowRequest(BaseModel):
    """The Schedule's action input: which campaign to tell."""

    campaign_id: str


class PersistWindow(BaseModel):
    """The calling-window projection and, when it opened or closed, its event: written in
    one transaction, at most once (the event by id; a projection older than the row's is
    ignored)."""

    campaign_id: str
    open: bool
    next_change: datetime | None
    at: datetime
    event: PlatformEvent | None = None


class SyncRecurrence(BaseModel):
    """The Temporal Schedule a campaign's recurrence should have (schedule None: none)."""

    campaign_id: str
    organization_id: str
    name: str
    timezone: str
    schedule: CampaignSchedule | None
    paused: bool = False
    note: str = ""
    version: int
    as_of: datetime
