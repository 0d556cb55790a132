"""Goals: which events count toward each type, over which window, and whether the campaign
is on pace.

| goal type   | counts                                                   |
|-------------|----------------------------------------------------------|
| leads       | `lead.qualified` events                                  |
| conversions | `conversion` events                                      |
| revenue     | the revenue of `conversion` events                       |
| calls       | finished calls (`call.completed` + `call.failed`)        |
| engagement  | conversations: connected calls + widget clicks           |

Windows are local to the campaign's timezone: `daily` is today, `weekly` the ISO week
(Monday first), `monthly` the calendar month, `campaign` the whole campaign (to its
schedule's end, when it has one).

Pacing projects the rate so far in the window to its end: "312 leads of 500 this week,
projected 540 by Sunday night — on track".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.domain import periods
from campaigns.domain.config import CampaignGoal, GoalTimeframe, GoalType
from campaigns.domain.metrics import MICROS

# The sums each goal type needs (names from domain.metrics).
SUMS: tuple[str, ...] = (
    "leads",
    "conversions",
    "revenue_micros",
    "calls_completed",
    "calls_failed",
    "calls_connected",
    "widget_clicks",
)

_UNITS = {
    GoalType.LEADS: "leads",
    GoalType.CONVERSIONS: "conversions",
    GoalType.REVENUE: "in revenue",
    GoalType.CALLS: "calls",
    GoalType.ENGAGEMENT: "engagements",
}
_PERIOD_NAMES = {
    GoalTimeframe.DAILY: "today",
    GoalTimeframe.WEEKLY: "this week",
    GoalTimeframe.MONTHLY: "this month",
    GoalTimeframe.CAMPAIGN: "over the campaign",
}


def value(goal_type: GoalType, sums: dict[str, Any]) -> float:
    """The goal's measure from sums over its window."""
    g = lambda n: sums.get(n) or 0  # noqa: E731
    if goal_type == GoalType.LEADS:
        return float(g("leads"))
    if goal_type == GoalType.CONVERSIONS:
        return float(g("conversions"))
    if goal_type == GoalType.REVENUE:
        return round(g("revenue_micros") / MICROS, 6)
    if goal_type == GoalType.CALLS:
        return float(g("calls_completed") + g("calls_failed"))
    return float(g("calls_connected") + g("widget_clicks"))


def window(
    timeframe: GoalTimeframe,
    *,
    now: datetime,
    tz: str,
    campaign_start: datetime | None = None,
    campaign_end: datetime | None = None,
) -> tuple[datetime | None, datetime | None]:
    """The goal's current window `[start, end)`; None where it is open."""
    if timeframe == GoalTimeframe.DAILY:
        return periods.today(now, tz)
    if timeframe == GoalTimeframe.WEEKLY:
        return periods.week_window(now, tz)
    if timeframe == GoalTimeframe.MONTHLY:
        return periods.month_window(now, tz)
    return campaign_start, campaign_end


def achievement_id(campaign_id: str, goal: CampaignGoal, start: datetime | None) -> str:
    """What makes one achievement distinct: the goal and its window (a daily goal can be
    achieved once a day)."""
    return (
        f"goal:{campaign_id}:{goal.id}:{goal.type.value}:{goal.target:g}:{start.isoformat() if start else 'campaign'}"
    )


@dataclass(frozen=True)
class Pacing:
    elapsed_ratio: float | None
    expected_by_now: float | None
    projected: float | None
    on_track: bool | None
    required_per_day: float | None
    message: str


def pace(goal: CampaignGoal, current: float, *, start: datetime | None, end: datetime | None, now: datetime) -> Pacing:
    """Whether the goal will be reached by the end of its window at the rate so far."""
    unit = _UNITS[goal.type]
    period = _PERIOD_NAMES[goal.timeframe]
    amount = _fmt(current, goal.type)
    target = _fmt(goal.target, goal.type)
    if current >= goal.target:
        return Pacing(None, None, None, True, 0.0, f"Reached: {amount} of {target} {unit} {period}.")
    if start is None or end is None or end <= start:
        return Pacing(
            None,
            None,
            None,
            None,
            None,
            f"{amount} of {target} {unit} {period}; no end date to pace against.",
        )
    total = (end - start).total_seconds()
    elapsed = min(max((now - start).total_seconds(), 0.0), total)
    ratio = elapsed / total
    remaining_days = max((end - now).total_seconds(), 0.0) / 86_400
    required = (goal.target - current) / remaining_days if remaining_days > 0 else None
    if ratio < 0.02 or elapsed < 900:
        return Pacing(
            ratio,
            goal.target * ratio,
            None,
            None,
            required,
            f"{amount} of {target} {unit} {period}; too early to project.",
        )
    projected = current / ratio
    on_track = projected >= goal.target
    verdict = "on track" if on_track else "behind"
    when = "by the end of the day" if goal.timeframe == GoalTimeframe.DAILY else f"by {end:%Y-%m-%d %H:%M} UTC"
    need = f"; needs {_fmt(required, goal.type)} a day from now on" if required is not None and not on_track else ""
    return Pacing(
        ratio,
        goal.target * ratio,
        projected,
        on_track,
        required,
        f"{verdict.capitalize()} to reach {target} {unit} {period}: {amount} so far, "
        f"projected {_fmt(projected, goal.type)} {when}{need}.",
    )


def _fmt(x: float, goal_type: GoalType) -> str:
    return f"{x:,.2f}" if goal_type == GoalType.REVENUE else f"{x:,.0f}"


def progress_update(goal: CampaignGoal, current: float) -> dict[str, Any]:
    """The goal as stored, with its progress."""
    return {**goal.model_dump(mode="json", by_alias=True), "current": current, "achieved": current >= goal.target}


def days_between(start: datetime, end: datetime) -> float:
    return (end - start) / timedelta(days=1)
