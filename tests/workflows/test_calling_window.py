"""The campaign workflow's calling window over weeks of campaign time (time-skipping
server): it starts, opens and closes its windows and ends by itself, exactly at the
instants the pure timeline gives, across a clock change; pauses, resumes and re-plans;
and opens recurring run windows, the clock-change ones by itself."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from campaigns.activities.recurrence import schedule_id
from campaigns.domain.config import CampaignSchedule, CampaignStatus
from campaigns.domain.schedule import campaign_timeline
from campaigns.domain.timeutil import local_to_utc, utc_to_local
from campaigns.messages.campaign import RunWindowFired
from campaigns.worker import sandbox_runner
from campaigns.workflows.campaign import CampaignWorkflow

S = CampaignStatus
NY = "America/New_York"


def next_spring_forward(tz: str, after: datetime) -> datetime:
    """The instant, at least a week after `after`, when the zone's clocks next go forward.
    (The test server's clock only moves on, so each test finds its own.)"""
    z = ZoneInfo(tz)
    lo = after + timedelta(days=7)
    while not (lo + timedelta(days=1)).astimezone(z).utcoffset() > lo.astimezone(z).utcoffset():
        lo += timedelta(days=1)
    hi = lo + timedelta(days=1)
    while hi - lo > timedelta(minutes=1):
        mid = lo + (hi - lo) / 2
        lo, hi = (mid, hi) if mid.astimezone(z).utcoffset() == lo.astimezone(z).utcoffset() else (lo, mid)
    return hi.replace(second=0, microsecond=0)


def window_pairs(events) -> list[tuple[str, str]]:
    return [(e["type"].removeprefix("campaign.window_"), e["data"]["plannedAt"]) for e in events
            if e["type"].startswith("campaign.window_")]


async def test_weeks_of_windows_across_a_clock_change_run_by_themselves(start_campaign, time_env):
    now = await time_env.get_current_time()
    change = next_spring_forward(NY, now)
    start = datetime.combine(utc_to_local(change, NY).date() - timedelta(days=9), time(10, 30))
    end = start + timedelta(days=45, hours=2)
    weekday = ["09:00-12:00", "13:00-17:00"]
    schedule = {
        "startAt": start.isoformat(), "endAt": end.isoformat(),
        "windows": {"monday": weekday, "tuesday": weekday, "wednesday": weekday, "thursday": weekday,
                    "friday": ["09:00-12:00", "22:00-02:00"], "sunday": ["01:00-03:00"]},
        "blackoutDates": [str(start.date() + timedelta(days=3))],
    }
    c = await start_campaign(timezone=NY, schedule=schedule)
    assert (await c.set_status(S.ACTIVE)).status == S.SCHEDULED
    row = await c.row()
    assert row["status"] == "scheduled" and row["window_open"] is False
    assert row["next_window_change"] == local_to_utc(start, NY)  # 10:30 is inside the first window

    await c.sleep_until(local_to_utc(end, NY) + timedelta(hours=6))

    start_utc, end_utc = local_to_utc(start, NY), local_to_utc(end, NY)
    expected = []
    for w in campaign_timeline(CampaignSchedule.model_validate(schedule), NY).upcoming(start_utc, 200):
        expected += [("opened", w.opens_at.isoformat()), ("closed", w.closes_at.isoformat())]
    events = await c.events()
    assert window_pairs(events) == expected
    assert len(expected) > 100
    # The Sunday window on the morning the clocks went forward lasted one hour.
    dst_sunday = [(o, cl) for (_, o), (_, cl) in zip(expected[::2], expected[1::2], strict=True)
                  if datetime.fromisoformat(o).date() == change.date()]
    assert [datetime.fromisoformat(cl) - datetime.fromisoformat(o) for o, cl in dst_sunday] == [timedelta(hours=1)]
    # Each change happened at its planned instant (campaign time), and the status moved by itself.
    for e in events:
        if e["type"].startswith("campaign.window_"):
            assert e["occurred_at"] - datetime.fromisoformat(e["data"]["plannedAt"]) < timedelta(seconds=5)
    statuses = [(e["type"], e["occurred_at"]) for e in events if not e["type"].startswith("campaign.window_")]
    assert [t for t, _ in statuses] == ["campaign.scheduled", "campaign.activated", "campaign.ended"]
    assert statuses[1][1] - start_utc < timedelta(seconds=5) and statuses[2][1] - end_utc < timedelta(seconds=5)
    row = await c.row()
    assert row["status"] == "ended" and row["window_open"] is False and row["next_window_change"] is None

    # Timers, not polling: one timer per change the workflow had to wake up for.
    history = await c.handle.fetch_history()
    timers = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)
    assert timers <= len(expected) + 3
    # Deterministic: six weeks of history replay under the current code.
    await Replayer(workflows=[CampaignWorkflow], data_converter=pydantic_data_converter,
                   workflow_runner=sandbox_runner()).replay_workflow(history)


async def test_a_campaign_activated_while_its_workflow_idles_still_starts_by_itself(start_campaign, time_env):
    c = await start_campaign(timezone="Asia/Kolkata")
    await time_env.sleep(timedelta(minutes=5))  # the workflow is waiting in its main loop, as a draft
    now = await time_env.get_current_time()
    start = utc_to_local(now + timedelta(days=1), "Asia/Kolkata").replace(microsecond=0)
    await c.reconfigure(schedule={"startAt": start.isoformat()})
    assert (await c.set_status(S.ACTIVE)).status == S.SCHEDULED
    await c.sleep_until(now + timedelta(days=1, minutes=1))
    row = await c.row()
    assert row["status"] == "active" and row["window_open"] is True


async def test_moving_a_scheduled_campaigns_start_replans_it(start_campaign, time_env):
    now = await time_env.get_current_time()
    start = utc_to_local(now + timedelta(days=30), "Asia/Kathmandu").replace(microsecond=0)
    c = await start_campaign(timezone="Asia/Kathmandu", schedule={"startAt": start.isoformat()})
    assert (await c.set_status(S.ACTIVE)).status == S.SCHEDULED
    sooner = start - timedelta(days=28)
    await c.reconfigure(schedule={"startAt": sooner.isoformat()})
    await c.sleep_until(local_to_utc(sooner, "Asia/Kathmandu") + timedelta(minutes=1))
    row = await c.row()
    assert row["status"] == "active"
    assert timedelta(0) <= row["started_at"] - local_to_utc(sooner, "Asia/Kathmandu") < timedelta(seconds=5)


async def test_pause_resume_and_edits_replan_the_window(start_campaign, time_env):
    now = await time_env.get_current_time()
    day = now.date() + timedelta(days=1)
    c = await start_campaign(timezone="UTC", schedule={"windows": {d: ["09:00-17:00"] for d in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}})
    await c.set_status(S.ACTIVE)
    at = datetime.combine(day, time(10), tzinfo=UTC)
    await c.sleep_until(at)
    assert (await c.row())["window_open"] is True

    await c.set_status(S.PAUSED)
    row = await c.row()
    assert row["window_open"] is False and row["next_window_change"] is None
    paused_events = len(await c.events())
    await c.sleep_until(at + timedelta(days=3))
    assert len(await c.events()) == paused_events  # nothing happens while paused
    await c.set_status(S.ACTIVE)
    assert (await c.row())["window_open"] is True

    await c.reconfigure(schedule={"windows": {"monday": ["18:00-20:00"]}, "endAt": None})
    monday = at + timedelta(days=3)
    while monday.weekday() != 0:
        monday += timedelta(days=1)
    await c.sleep_until(at + timedelta(days=3, minutes=1))
    row = await c.row()
    assert row["window_open"] is False
    assert row["next_window_change"] == datetime.combine(monday.date(), time(18), tzinfo=UTC)

    # An end set while running ends the campaign at that instant, closing its window.
    end = datetime.combine(monday.date(), time(19))
    await c.reconfigure(schedule={"windows": {"monday": ["18:00-20:00"]}, "endAt": end.isoformat()})
    await c.sleep_until(end.replace(tzinfo=UTC) + timedelta(minutes=1))
    row = await c.row()
    assert row["status"] == "ended" and row["window_open"] is False
    reasons = [(e["type"], e["data"].get("reason")) for e in await c.events("campaign.window_")]
    assert reasons == [
        ("campaign.window_opened", "window"), ("campaign.window_closed", "status"),
        ("campaign.window_opened", "status"), ("campaign.window_closed", "schedule_changed"),
        ("campaign.window_opened", "window"), ("campaign.window_closed", "status"),
    ][-len(reasons):]
    assert len(reasons) >= 5


async def test_a_paused_scheduled_campaign_never_starts_and_resumes_into_ended(start_campaign, time_env):
    now = await time_env.get_current_time()
    start = utc_to_local(now + timedelta(days=2), "Europe/Paris").replace(microsecond=0)
    c = await start_campaign(timezone="Europe/Paris", schedule={
        "startAt": start.isoformat(), "endAt": (start + timedelta(days=7)).isoformat()})
    assert (await c.set_status(S.ACTIVE)).status == S.SCHEDULED
    await c.set_status(S.PAUSED)
    await c.sleep_until(now + timedelta(days=5))
    assert (await c.row())["status"] == "paused"  # its start passed without it
    assert (await c.set_status(S.ACTIVE)).status == S.ACTIVE  # resumed inside its run: active, window open
    assert (await c.row())["window_open"] is True
    await c.set_status(S.PAUSED)
    await c.sleep_until(now + timedelta(days=10))
    result = await c.set_status(S.ACTIVE)  # its end passed while paused
    assert result.status == S.ENDED and result.status_reason == "schedule_end_passed"


async def test_recurring_run_windows_and_the_clock_change_the_schedule_leaves_out(
    start_campaign, time_env, temporal_client: Client
):
    now = await time_env.get_current_time()
    change = next_spring_forward(NY, now)  # a Sunday at 02:00 in New York
    sunday = utc_to_local(change, NY).date()
    start = datetime.combine(sunday - timedelta(days=3), time(0))
    recurrence = {"at": ["02:30", "09:00"], "durationMinutes": 60, "daysOfWeek": ["sunday"]}
    c = await start_campaign(timezone=NY, schedule={
        "startAt": start.isoformat(), "endAt": (start + timedelta(days=14)).isoformat(), "recurrence": recurrence})
    await c.set_status(S.ACTIVE)

    schedule = temporal_client.get_schedule_handle(schedule_id(c.id))
    described = await schedule.describe()
    assert described.schedule.spec.time_zone_name == NY and not described.schedule.state.paused
    skipped = [(k.month[0].start, k.day_of_month[0].start, k.hour[0].start, k.minute[0].start)
               for k in described.schedule.spec.skip]
    assert (sunday.month, sunday.day, 2, 30) in skipped

    def at(local: datetime) -> datetime:
        return local_to_utc(local, NY)

    # 02:30 does not exist that morning: the workflow opens the run at 03:30 by itself.
    await c.sleep_until(at(datetime.combine(sunday, time(3, 31))))
    row = await c.row()
    assert row["window_open"] is True and row["next_window_change"] == at(datetime.combine(sunday, time(4, 30)))

    # 09:00: the Schedule fires (twice, as a retried action would); one run window opens.
    nine = at(datetime.combine(sunday, time(9)))
    await c.sleep_until(nine)
    for _ in range(2):
        await c.handle.signal(CampaignWorkflow.run_window_fired, RunWindowFired(fired_at=nine))
    await c.sleep_until(nine + timedelta(minutes=1))
    assert (await c.row())["window_open"] is True

    # A fire at no occurrence's time (a trigger from the UI) opens a run window from then.
    manual = nine + timedelta(hours=3)
    await c.sleep_until(manual)
    await c.handle.signal(CampaignWorkflow.run_window_fired, RunWindowFired(fired_at=manual))
    await c.sleep_until(manual + timedelta(minutes=1))
    row = await c.row()
    assert row["window_open"] is True and row["next_window_change"] == manual + timedelta(hours=1)

    # A fire that never comes (Schedule paused in the UI): after a grace period the next
    # expected opening is shown instead.
    next_sunday = sunday + timedelta(days=7)
    expected = at(datetime.combine(next_sunday, time(2, 30)))
    await c.sleep_until(expected + timedelta(seconds=10))
    row = await c.row()
    assert row["window_open"] is False and row["next_window_change"] == expected
    await c.sleep_until(expected + timedelta(minutes=1))
    assert (await c.row())["next_window_change"] == at(datetime.combine(next_sunday, time(9)))

    assert window_pairs(await c.events()) == [
        ("opened", at(datetime.combine(sunday, time(3, 30))).isoformat()),
        ("closed", at(datetime.combine(sunday, time(4, 30))).isoformat()),
        ("opened", nine.isoformat()),
        ("closed", (nine + timedelta(hours=1)).isoformat()),
        ("opened", manual.isoformat()),
        ("closed", (manual + timedelta(hours=1)).isoformat()),
    ]

    # The Schedule follows the campaign: paused, resumed, deleted when it ends.
    await c.set_status(S.PAUSED)
    assert (await schedule.describe()).schedule.state.paused
    await c.set_status(S.ACTIVE)
    assert not (await schedule.describe()).schedule.state.paused
    await c.set_status(S.ENDED)
    try:
        await schedule.describe()
        raise AssertionError("the Schedule should be gone")
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
