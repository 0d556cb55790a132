"""Goal measures, windows and pacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaigns.domain import goals
from campaigns.domain.config import CampaignGoal, GoalTimeframe, GoalType

SUMS = {"leads": 4, "conversions": 2, "revenue_micros": 12_500_000, "calls_completed": 7, "calls_failed": 1,
        "calls_connected": 5, "widget_clicks": 3}


def test_what_each_goal_type_counts():
    assert goals.value(GoalType.LEADS, SUMS) == 4
    assert goals.value(GoalType.CONVERSIONS, SUMS) == 2
    assert goals.value(GoalType.REVENUE, SUMS) == 12.5
    assert goals.value(GoalType.CALLS, SUMS) == 8
    assert goals.value(GoalType.ENGAGEMENT, SUMS) == 8


def test_windows():
    now = datetime(2026, 5, 6, 12, tzinfo=UTC)  # a Wednesday
    start, end = goals.window(GoalTimeframe.WEEKLY, now=now, tz="UTC")
    assert start == datetime(2026, 5, 4, tzinfo=UTC) and end == datetime(2026, 5, 11, tzinfo=UTC)
    assert goals.window(GoalTimeframe.DAILY, now=now, tz="Asia/Tokyo")[0] == datetime(2026, 5, 5, 15, tzinfo=UTC)
    assert goals.window(GoalTimeframe.CAMPAIGN, now=now, tz="UTC", campaign_start=start) == (start, None)


def test_pacing():
    goal = CampaignGoal(id="w", type=GoalType.LEADS, target=500, timeframe=GoalTimeframe.WEEKLY)
    start = datetime(2026, 5, 4, tzinfo=UTC)
    end = start + timedelta(days=7)
    on = goals.pace(goal, 300, start=start, end=end, now=start + timedelta(days=3.5))
    assert on.on_track is True and on.projected == 600 and on.elapsed_ratio == 0.5 and on.expected_by_now == 250
    assert on.message.startswith("On track to reach 500 leads this week: 300 so far, projected 600")
    behind = goals.pace(goal, 100, start=start, end=end, now=start + timedelta(days=3.5))
    assert behind.on_track is False and "needs 114 a day" in behind.message
    assert goals.pace(goal, 500, start=start, end=end, now=start).on_track is True
    assert goals.pace(goal, 1, start=start, end=end, now=start + timedelta(minutes=5)).projected is None
    open_ended = CampaignGoal(type=GoalType.REVENUE, target=1000, timeframe=GoalTimeframe.CAMPAIGN)
    assert "no end date" in goals.pace(open_ended, 10, start=start, end=None, now=end).message
