"""Activities that keep a campaign's recurrence in step with its Temporal Schedule.

A recurrence ('weekdays at 09:00 for 2 hours') is a Temporal Schedule in the campaign's
timezone (`time_zone_name`), so ops see its next runs on the Temporal UI's Schedules page
and can pause or trigger it there. Each action starts a RunWindowWorkflow, which tells
the campaign's workflow that a run window opens.

The campaign workflow decides what the Schedule should be (created when the campaign is
scheduled or active, paused while it is paused, deleted when it ends or is archived) and
calls `sync_recurrence`; the call is idempotent, and a stale retry never undoes a newer
sync (each sync carries a version, kept in the Schedule's note).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from campaigns.domain.config import WEEKDAYS, Recurrence
from campaigns.domain.lifecycle import schedule_bounds
from campaigns.domain.schedule import shifted_occurrences
from campaigns.messages import campaign as m
from campaigns.messages import search_attributes as sa
from campaigns.messages.campaign import RunWindowRequest, SyncRecurrence, run_workflow_id, schedule_id

SKIP_HORIZON = timedelta(days=10 * 366)  # clock-change days listed ahead in the Schedule's skip list
NOTE_PREFIX = "campaign"  # notes the platform writes; any other pause is an operator's
_VERSION = re.compile(r"\[sync (\d+)\]")


def calendars(recurrence: Recurrence) -> list[ScheduleCalendarSpec]:
    """One calendar per time of day (a calendar crosses its hours with its minutes)."""
    r = recurrence
    if r.days_of_month:
        days = [ScheduleRange(d) for d in r.days_of_month]
    elif r.weeks_of_month:
        days = [ScheduleRange(7 * w - 6, min(7 * w, 31)) for w in r.weeks_of_month]
    else:
        days = [ScheduleRange(1, 31)]
    months = [ScheduleRange(m) for m in r.months] or [ScheduleRange(1, 12)]
    # Temporal counts weekdays from Sunday = 0; ours run Monday first.
    weekdays = [ScheduleRange((WEEKDAYS.index(d) + 1) % 7) for d in r.days_of_week] or [ScheduleRange(0, 6)]
    return [
        ScheduleCalendarSpec(
            second=[ScheduleRange(0)],
            minute=[ScheduleRange(m % 60)],
            hour=[ScheduleRange(m // 60)],
            day_of_month=days,
            month=months,
            day_of_week=weekdays,
            comment=f"run window at {m // 60:02d}:{m % 60:02d} for {r.duration_minutes} min",
        )
        for m in r.minutes()
    ]


def clock_change_skips(recurrence: Recurrence, tz: str, since: datetime, until: datetime) -> list[ScheduleCalendarSpec]:
    """The occurrences on clock-change days, which the campaign workflow opens itself."""
    return [
        ScheduleCalendarSpec(
            second=[ScheduleRange(0)],
            minute=[ScheduleRange(o.local.minute)],
            hour=[ScheduleRange(o.local.hour)],
            day_of_month=[ScheduleRange(o.local.day)],
            month=[ScheduleRange(o.local.month)],
            year=[ScheduleRange(o.local.year)],
            comment=f"{o.key}: the clock {'skips' if o.clock_shift == 'gap' else 'repeats'} this time; "
            "the campaign workflow opens this run window itself",
        )
        for o in shifted_occurrences(recurrence, tz, since, until)
    ]


def build_schedule(req: SyncRecurrence, task_queue: str) -> Schedule:
    """The Temporal Schedule for a campaign's recurrence (req.schedule has one)."""
    assert req.schedule is not None and req.schedule.recurrence is not None
    recurrence = req.schedule.recurrence
    duration = timedelta(minutes=recurrence.duration_minutes)
    start, end = schedule_bounds(req.schedule, req.timezone)
    # A run window that opens before the campaign starts still counts from the start on.
    spec_start = start - duration if start else None
    skip_from = max(req.as_of, spec_start) if spec_start else req.as_of
    skip_until = min(end, req.as_of + SKIP_HORIZON) if end else req.as_of + SKIP_HORIZON
    return Schedule(
        action=ScheduleActionStartWorkflow(
            m.RUN_WINDOW_WORKFLOW,
            RunWindowRequest(campaign_id=req.campaign_id),
            id=run_workflow_id(req.campaign_id),
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=10),
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ORGANIZATION, req.organization_id)]),
            static_summary=f"Run window of {req.name}"[:200],
        ),
        spec=ScheduleSpec(
            calendars=calendars(recurrence),
            skip=clock_change_skips(recurrence, req.timezone, skip_from, skip_until),
            start_at=spec_start,
            end_at=end,
            time_zone_name=req.timezone,
        ),
        # Late actions (server or worker down) still open what is left of their window.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=max(duration, timedelta(minutes=1))
        ),
        state=ScheduleState(paused=req.paused, note=f"{req.note} [sync {req.version}]"),
    )


def _version(note: str | None) -> int | None:
    m = _VERSION.search(note or "")
    return int(m.group(1)) if m else None


class RecurrenceActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name=m.SYNC_RECURRENCE)
    async def sync_recurrence(self, req: SyncRecurrence) -> None:
        """Create, update, pause or delete the campaign's Schedule to match `req`."""
        handle = self.client.get_schedule_handle(schedule_id(req.campaign_id))
        if req.schedule is None or req.schedule.recurrence is None:
            try:
                await handle.delete()
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
            return
        schedule = build_schedule(req, self.task_queue)
        try:
            await self.client.create_schedule(
                handle.id,
                schedule,
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ORGANIZATION, req.organization_id)]),
            )
            return
        except ScheduleAlreadyRunningError:
            pass

        def updater(current: ScheduleUpdateInput) -> ScheduleUpdate | None:
            state = current.description.schedule.state
            applied = _version(state.note)
            if applied is not None and applied > req.version:
                return None  # a newer sync got there first
            if not req.paused and state.paused and not (state.note or "").startswith(NOTE_PREFIX):
                # Paused by an operator in the Temporal UI: it stays paused until they resume it.
                schedule.state = state
            return ScheduleUpdate(schedule=schedule)

        await handle.update(updater)

    @activity.defn(name=m.RECURRENCE_ACTIVE)
    async def recurrence_active(self, campaign_id: str) -> bool:
        """Whether the campaign's Schedule exists and is not paused."""
        try:
            description = await self.client.get_schedule_handle(schedule_id(campaign_id)).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return not description.schedule.state.paused

    def all(self) -> list:
        return [self.sync_recurrence, self.recurrence_active]
