"""A recurrence as a Temporal Schedule: the calendar mapping as a pure function, then the
Schedule on the real dev server (its next actions, across clock changes, are exactly
the occurrences our rule predicts, less the ones the campaign workflow opens itself)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.client import Client, ScheduleCalendarSpec

from campaigns.activities.recurrence import (
    RecurrenceActivities,
    build_schedule,
    calendars,
    schedule_id,
)
from campaigns.domain.config import CampaignSchedule, Recurrence, Weekday
from campaigns.domain.schedule import matches, occurrences
from campaigns.domain.timeutil import utc_to_local
from campaigns.messages.campaign import SyncRecurrence

NY = "America/New_York"


def in_ranges(value: int, ranges) -> bool:
    return any(r.start <= value <= r.end and (value - r.start) % r.step == 0 for r in ranges)


def calendar_matches(spec: ScheduleCalendarSpec, local: datetime) -> bool:
    """Temporal's reading of a calendar spec (every field must match; Sunday is 0)."""
    return (
        in_ranges(local.second, spec.second)
        and in_ranges(local.minute, spec.minute)
        and in_ranges(local.hour, spec.hour)
        and in_ranges(local.day, spec.day_of_month)
        and in_ranges(local.month, spec.month)
        and (not spec.year or in_ranges(local.year, spec.year))
        and in_ranges((local.weekday() + 1) % 7, spec.day_of_week)
    )


recurrences = st.fixed_dictionaries(dict(
    at=st.lists(st.integers(0, 1439).map(lambda m: f"{m // 60:02d}:{m % 60:02d}"), min_size=1, max_size=3, unique=True),
    duration_minutes=st.integers(1, 300),
    days_of_week=st.lists(st.sampled_from(list(Weekday)), unique=True, max_size=4),
    weeks_of_month=st.lists(st.integers(1, 5), unique=True, max_size=2),
    months=st.lists(st.integers(1, 12), unique=True, max_size=4).filter(lambda m: not m or len(m) >= 3),
)).map(lambda fields: Recurrence(**fields))


@settings(deadline=None)
@given(recurrences, st.dates(datetime(2020, 1, 1).date(), datetime(2035, 12, 31).date()), st.integers(0, 1439))
def test_the_schedule_calendars_match_exactly_the_occurrences(recurrence, day, minute):
    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    expected = matches(recurrence, day) and minute in recurrence.minutes()
    assert any(calendar_matches(c, local) for c in calendars(recurrence)) == expected


def request(schedule: dict, *, tz: str = NY, paused: bool = False, version: int = 1, campaign_id: str | None = None,
            as_of: datetime | None = None) -> SyncRecurrence:
    return SyncRecurrence(
        campaign_id=campaign_id or str(uuid.uuid4()),
        organization_id=str(uuid.uuid4()),
        name="Recurring",
        timezone=tz,
        schedule=CampaignSchedule.model_validate(schedule),
        paused=paused,
        note="campaign active" if not paused else "campaign paused",
        version=version,
        as_of=as_of or datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_build_schedule_in_the_campaigns_timezone():
    req = request({"startAt": "2030-03-09T00:00:00", "endAt": "2030-11-05T00:00:00",
                   "recurrence": {"at": ["01:30", "02:30", "09:00"], "durationMinutes": 90,
                                  "daysOfWeek": ["sunday"]}})
    s = build_schedule(req, "tq")
    assert s.spec.time_zone_name == NY
    assert s.spec.start_at == datetime(2030, 3, 9, 5, 0, tzinfo=UTC) - timedelta(minutes=90)
    assert s.spec.end_at == datetime(2030, 11, 5, 5, 0, tzinfo=UTC)
    assert [c.comment for c in s.spec.calendars] == [f"run window at {t} for 90 min" for t in ("01:30", "02:30", "09:00")]
    # 02:30 is skipped on 10 March 2030 and 01:30 repeated on 3 November: those the workflow opens.
    skipped = [(c.year[0].start, c.month[0].start, c.day_of_month[0].start, c.hour[0].start, c.minute[0].start)
               for c in s.spec.skip]
    assert skipped == [(2030, 3, 10, 2, 30), (2030, 11, 3, 1, 30)]
    assert s.action.workflow == "RunWindowWorkflow" and s.action.task_queue == "tq"
    assert s.policy.catchup_window == timedelta(minutes=90)
    assert not s.state.paused and s.state.note.endswith("[sync 1]")


async def test_the_schedule_fires_at_the_predicted_occurrences_across_clock_changes(temporal_client: Client):
    activities = RecurrenceActivities(temporal_client, "nowhere")
    for tz, start in [(NY, "2030-03-08T12:00:00"), (NY, "2030-11-01T12:00:00"),
                      ("Australia/Lord_Howe", "2030-04-05T12:00:00"), ("America/Santiago", "2030-09-06T12:00:00")]:
        schedule = {"startAt": start, "recurrence": {"at": ["00:30", "01:45", "02:15", "23:30"], "durationMinutes": 1}}
        req = request(schedule, tz=tz)
        await activities.sync_recurrence(req)
        handle = temporal_client.get_schedule_handle(schedule_id(req.campaign_id))
        try:
            fired = list((await handle.describe()).info.next_action_times)
            first, last = fired[0] - timedelta(seconds=1), fired[-1]
            predicted = [o.starts_at for o in occurrences(req.schedule.recurrence, tz, first, last)
                         if o.starts_at > first and o.clock_shift is None]
            assert fired == predicted, tz
            shifted = [o for o in occurrences(req.schedule.recurrence, tz, first, last) if o.clock_shift]
            assert shifted, f"no clock change in the window checked for {tz}"
        finally:
            await activities.sync_recurrence(req.model_copy(update={"schedule": None, "version": 2}))
        assert not await activities.recurrence_active(req.campaign_id)


async def test_a_skipped_time_moved_onto_another_run_fires_once(temporal_client: Client):
    """London, 31 March 2030: 01:00 is skipped and moves forward onto 02:00 BST, the instant
    of the 02:00 run. One run per instant: the Schedule fires once there, as predicted."""
    activities = RecurrenceActivities(temporal_client, "nowhere")
    tz = "Europe/London"
    req = request({"startAt": "2030-03-28T12:00:00", "recurrence": {"at": ["01:00", "02:00"], "durationMinutes": 1}},
                  tz=tz)
    await activities.sync_recurrence(req)
    handle = temporal_client.get_schedule_handle(schedule_id(req.campaign_id))
    try:
        fired = list((await handle.describe()).info.next_action_times)
        first, last = fired[0] - timedelta(seconds=1), fired[-1]
        predicted = [o.starts_at for o in occurrences(req.schedule.recurrence, tz, first, last) if o.starts_at > first]
        assert fired == predicted
        assert datetime(2030, 3, 31, 1, tzinfo=UTC) in fired and datetime(2030, 3, 31, 0, tzinfo=UTC) not in fired
        assert len(fired) == len(set(fired))
    finally:
        await activities.sync_recurrence(req.model_copy(update={"schedule": None, "version": 2}))


async def test_sync_pauses_updates_and_deletes_without_undoing_newer_syncs(temporal_client: Client):
    activities = RecurrenceActivities(temporal_client, "nowhere")
    base = {"recurrence": {"at": ["09:00"], "durationMinutes": 60, "daysOfWeek": ["monday"]}}
    req = request(base, as_of=datetime.now(UTC))
    handle = temporal_client.get_schedule_handle(schedule_id(req.campaign_id))
    await activities.sync_recurrence(req)
    await activities.sync_recurrence(req)  # a retry changes nothing
    assert await activities.recurrence_active(req.campaign_id)

    await activities.sync_recurrence(req.model_copy(update={"paused": True, "note": "campaign paused", "version": 2}))
    d = await handle.describe()
    assert d.schedule.state.paused and d.schedule.state.note == "campaign paused [sync 2]"
    assert not await activities.recurrence_active(req.campaign_id)

    # A late retry of the first sync does not resume it.
    await activities.sync_recurrence(req)
    assert (await handle.describe()).schedule.state.paused

    moved = request({"recurrence": {**base["recurrence"], "at": ["10:15"]}}, campaign_id=req.campaign_id, version=3)
    await activities.sync_recurrence(moved)
    d = await handle.describe()
    assert not d.schedule.state.paused
    assert [(c.hour[0].start, c.minute[0].start) for c in d.schedule.spec.calendars] == [(10, 15)]
    assert all(utc_to_local(t, NY).strftime("%a %H:%M") == "Mon 10:15" for t in d.info.next_action_times)

    # Paused by an operator in the Temporal UI: a sync that would resume it leaves it paused.
    await handle.pause(note="Paused via Web UI")
    await activities.sync_recurrence(moved.model_copy(update={"version": 4}))
    d = await handle.describe()
    assert d.schedule.state.paused and d.schedule.state.note == "Paused via Web UI"

    await activities.sync_recurrence(moved.model_copy(update={"schedule": None, "version": 5}))
    await activities.sync_recurrence(moved.model_copy(update={"schedule": None, "version": 5}))  # idempotent
    assert not await activities.recurrence_active(req.campaign_id)
