"""The campaign lifecycle: which status may follow which, and what a request resolves to.

Requested by a client (`PUT /api/campaigns/{id}` with a `status`):

| from      | to: active | paused | ended | archived |
|-----------|------------|--------|-------|----------|
| draft     | activate   |        |       | archive  |
| scheduled |            | pause  | end   | archive  |
| active    |            | pause  | end   |          |
| paused    | resume     |        | end   | archive  |
| ended     |            |        |       | archive  |
| archived  | (final)    |        |       |          |

`activate` and `resume` look at the schedule: a start still ahead gives `scheduled`,
an end already passed refuses activation and makes a resumed campaign `ended`.
The workflow moves a campaign by itself from `scheduled` to `active` at its start and
from `active` to `ended` at its end. `scheduled` is never requested directly, and a
live (`active`) campaign must be paused or ended before it can be archived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campaigns.domain.config import CampaignSchedule, CampaignStatus
from campaigns.domain.timeutil import local_to_utc

S = CampaignStatus

REQUESTABLE: dict[CampaignStatus, dict[CampaignStatus, str]] = {
    S.DRAFT: {S.ACTIVE: "activate", S.ARCHIVED: "archive"},
    S.SCHEDULED: {S.PAUSED: "pause", S.ENDED: "end", S.ARCHIVED: "archive"},
    S.ACTIVE: {S.PAUSED: "pause", S.ENDED: "end"},
    S.PAUSED: {S.ACTIVE: "resume", S.ENDED: "end", S.ARCHIVED: "archive"},
    S.ENDED: {S.ARCHIVED: "archive"},
    S.ARCHIVED: {},
}

EVENT_FOR_STATUS = {
    S.SCHEDULED: "campaign.scheduled",
    S.PAUSED: "campaign.paused",
    S.ENDED: "campaign.ended",
    S.ARCHIVED: "campaign.archived",
}


class TransitionError(Exception):
    """A transition that the lifecycle does not allow; `code` is the API's machine code."""

    def __init__(self, message: str, code: str = "invalid_transition") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Transition:
    source: CampaignStatus
    target: CampaignStatus
    action: str
    reason: str

    @property
    def event_type(self) -> str:
        if self.target == S.ACTIVE:
            return "campaign.resumed" if self.source == S.PAUSED else "campaign.activated"
        return EVENT_FOR_STATUS[self.target]


def schedule_bounds(schedule: CampaignSchedule, tz: str) -> tuple[datetime | None, datetime | None]:
    """The schedule's start and end as UTC instants (None where open-ended)."""
    start = local_to_utc(schedule.start_at, tz) if schedule.start_at else None
    end = local_to_utc(schedule.end_at, tz) if schedule.end_at else None
    return start, end


def requestable(current: CampaignStatus, requested: CampaignStatus) -> str:
    """The action a client's request for `requested` means from `current`, or TransitionError."""
    if requested == current:
        raise TransitionError(f"campaign is already {current.value}", code="no_change")
    action = REQUESTABLE[current].get(requested)
    if action is None:
        allowed = ", ".join(t.value for t in REQUESTABLE[current]) or "none (archived is final)"
        hint = ""
        if requested == S.SCHEDULED:
            hint = "; a campaign is scheduled by activating it with a start still ahead"
        elif current == S.ACTIVE and requested == S.ARCHIVED:
            hint = "; pause or end the campaign first"
        raise TransitionError(
            f"invalid status transition: {current.value} -> {requested.value} "
            f"(from {current.value} the allowed targets are: {allowed}){hint}"
        )
    return action


def plan_request(
    current: CampaignStatus,
    requested: CampaignStatus,
    *,
    schedule: CampaignSchedule,
    timezone: str,
    now: datetime,
    reason: str | None = None,
) -> Transition:
    """What a client's request for `requested` does now, or TransitionError."""
    action = requestable(current, requested)
    target = requested
    if action in ("activate", "resume"):
        start, end = schedule_bounds(schedule, timezone)
        if end is not None and end <= now:
            if action == "activate":
                raise TransitionError("cannot activate: the schedule's endAt has already passed", code="schedule_ended")
            target = S.ENDED
            reason = "schedule_end_passed"
        elif start is not None and start > now:
            target = S.SCHEDULED
    return Transition(current, target, action, reason or "requested")


def due_transition(
    status: CampaignStatus, *, schedule: CampaignSchedule, timezone: str, now: datetime
) -> Transition | None:
    """The transition the workflow must make by itself at `now`, if any."""
    start, end = schedule_bounds(schedule, timezone)
    if status in (S.SCHEDULED, S.ACTIVE) and end is not None and end <= now:
        return Transition(status, S.ENDED, "end", "schedule_end")
    if status == S.SCHEDULED and (start is None or start <= now):
        return Transition(status, S.ACTIVE, "start", "schedule_start")
    return None


def next_wakeup(status: CampaignStatus, *, schedule: CampaignSchedule, timezone: str) -> datetime | None:
    """When the workflow must next look at the clock (None: only when told)."""
    start, end = schedule_bounds(schedule, timezone)
    if status == S.SCHEDULED:
        return start or end
    if status == S.ACTIVE:
        return end
    return None
