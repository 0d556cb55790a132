"""What the campaign workflow does about its budget, as pure functions."""

from __future__ import annotations

from datetime import UTC, date, datetime

from campaigns.domain import budget
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignBudget, CampaignStatus

S = CampaignStatus
NOW = datetime(2026, 5, 1, 22, 30, tzinfo=UTC)  # already 2 May in Tokyo
TZ = "Asia/Tokyo"


def spend(total: float, today: float, day: date = date(2026, 5, 2)) -> BudgetSpend:
    return BudgetSpend(total=total, day=day, today=today, at=NOW)


def test_which_cap_is_reached():
    caps = CampaignBudget(total=100, daily=10)
    assert budget.exhausted(caps, spend(100, 0), now=NOW, tz=TZ) == "total"
    assert budget.exhausted(caps, spend(50, 10), now=NOW, tz=TZ) == "daily"
    assert budget.exhausted(caps, spend(50, 10, date(2026, 5, 1)), now=NOW, tz=TZ) is None  # a past day
    assert budget.exhausted(caps, spend(50, 9.99), now=NOW, tz=TZ) is None
    assert budget.exhausted(None, spend(1e9, 1e9), now=NOW, tz=TZ) is None
    assert budget.exhausted(caps, None, now=NOW, tz=TZ) is None


def test_pause_and_resume():
    caps = CampaignBudget(daily=10)
    assert budget.due(S.ACTIVE, None, caps, spend(10, 10), now=NOW, tz=TZ) == "pause"
    assert budget.due(S.PAUSED, "budget_exhausted", caps, spend(10, 10), now=NOW, tz=TZ) is None
    assert budget.due(S.PAUSED, "budget_exhausted", caps, spend(10, 10, date(2026, 5, 1)), now=NOW, tz=TZ) == "resume"
    assert budget.due(S.PAUSED, "budget_exhausted", CampaignBudget(daily=20), spend(10, 10), now=NOW, tz=TZ) == "resume"
    # Paused by a person, or not running: the budget does not move it.
    assert budget.due(S.PAUSED, "requested", caps, spend(10, 0, date(2026, 5, 1)), now=NOW, tz=TZ) is None
    assert budget.due(S.SCHEDULED, None, caps, spend(10, 10), now=NOW, tz=TZ) is None


def test_a_daily_cap_wakes_the_workflow_at_local_midnight():
    caps = CampaignBudget(daily=10, total=1000)
    wake = budget.next_wakeup(S.PAUSED, "budget_exhausted", caps, spend(10, 10), now=NOW, tz=TZ)
    assert wake == datetime(2026, 5, 2, 15, 0, tzinfo=UTC)  # midnight of 3 May in Tokyo
    assert budget.next_wakeup(S.PAUSED, "budget_exhausted", caps, spend(1000, 10), now=NOW, tz=TZ) is None
    assert budget.next_wakeup(S.ACTIVE, None, caps, spend(10, 10), now=NOW, tz=TZ) is None


def test_refusals_say_what_to_do():
    assert "raise budget.total" in budget.refusal(CampaignBudget(total=5), spend(5, 5), now=NOW, tz=TZ)
    daily = budget.refusal(CampaignBudget(daily=5), spend(5, 5), now=NOW, tz=TZ)
    assert "resumes by itself at 2026-05-02T15:00:00+00:00" in daily and "budget.daily" in daily
    assert budget.refusal(CampaignBudget(daily=5), spend(5, 4), now=NOW, tz=TZ) is None
