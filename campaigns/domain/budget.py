"""Budget caps, as the campaign workflow acts on them.

The analytics side knows what a campaign has spent; when spend reaches a cap it reports a
`BudgetSpend` to the campaign's workflow (a signal, not polling). The workflow then:

* pauses an active campaign (reason `budget_exhausted`), and refuses to resume or
  activate it while a cap is still reached;
* for a daily cap, sets a timer for the next local midnight of the campaign's timezone
  and resumes it then (through the lifecycle, so a schedule that has ended ends it);
* resumes it as soon as the budget is raised or removed.

Spend only grows, so a report that is no longer the latest can only be too low: the
workflow keeps the latest one it was sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

from campaigns.domain import periods
from campaigns.domain.config import CampaignBudget, CampaignStatus

REASON = "budget_exhausted"
RESUME_REASON = "budget_available"

Cap = Literal["total", "daily"]
Action = Literal["pause", "resume"]


class BudgetSpend(BaseModel):
    """A campaign's spend (in its budget's currency) at `at`: all-time, and on local `day`."""

    total: float
    day: date
    today: float
    at: datetime


def exhausted(budget: CampaignBudget | None, spend: BudgetSpend | None, *, now: datetime, tz: str) -> Cap | None:
    """Which cap the spend has reached now, if any (the total cap first)."""
    if budget is None or spend is None:
        return None
    if budget.total is not None and spend.total >= budget.total:
        return "total"
    if budget.daily is not None and spend.today >= budget.daily and spend.day == periods.local_date(now, tz):
        return "daily"
    return None


def due(
    status: CampaignStatus,
    status_reason: str | None,
    budget: CampaignBudget | None,
    spend: BudgetSpend | None,
    *,
    now: datetime,
    tz: str,
) -> Action | None:
    """What the workflow must do about the budget now."""
    cap = exhausted(budget, spend, now=now, tz=tz)
    if status == CampaignStatus.ACTIVE and cap is not None:
        return "pause"
    if status == CampaignStatus.PAUSED and status_reason == REASON and cap is None:
        return "resume"
    return None


def next_wakeup(
    status: CampaignStatus,
    status_reason: str | None,
    budget: CampaignBudget | None,
    spend: BudgetSpend | None,
    *,
    now: datetime,
    tz: str,
) -> datetime | None:
    """When a campaign paused by its daily cap may resume: the next local midnight."""
    if status == CampaignStatus.PAUSED and status_reason == REASON:
        if exhausted(budget, spend, now=now, tz=tz) == "daily":
            return periods.next_midnight(now, tz)
    return None


def refusal(budget: CampaignBudget | None, spend: BudgetSpend | None, *, now: datetime, tz: str) -> str | None:
    """Why a campaign may not go live now, if its budget is the reason."""
    cap = exhausted(budget, spend, now=now, tz=tz)
    if cap is None:
        return None
    assert budget is not None and spend is not None  # a cap is reached only against a budget
    if cap == "total":
        return (
            f"the total budget is spent ({spend.total:.2f} of {budget.total:.2f} {budget.currency}); "
            "raise budget.total to resume"
        )
    if cap == "daily":
        return (
            f"today's budget is spent ({spend.today:.2f} of {budget.daily:.2f} {budget.currency}); "
            f"the campaign resumes by itself at {periods.next_midnight(now, tz).isoformat()}, or raise budget.daily"
        )
    return None
