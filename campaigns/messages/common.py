"""What every workflow says: who acted, and the platform events they record.

Platform events (`campaign.activated`, `goal.achieved`…) are what webhooks deliver; they
are not the analytics events (calls, leads, costs) that the pipeline and widget report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy


class Actor(BaseModel):
    """Who asked for a change: an API key, or the platform itself (schedule, budget…)."""

    kind: Literal["api_key", "system", "operator"] = "operator"
    id: str | None = None
    name: str = "temporal-ui"

    def label(self) -> str:
        return f"{self.kind}:{self.name}" + (f" ({self.id})" if self.id else "")


SYSTEM = Actor(kind="system", name="campaign-workflow")


class PlatformEvent(BaseModel):
    """A platform event (campaign.activated, goal.achieved…), recorded once by id."""

    id: str
    organization_id: str
    campaign_id: str | None
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class ActivityOptions(TypedDict):
    """The timeout and retries a workflow gives a kind of activity call, passed as `**options`:
    typed, so that the call is still checked against `execute_activity`'s signature."""

    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy
