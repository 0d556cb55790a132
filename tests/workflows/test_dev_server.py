"""Scheduling in real time on the dev server, through the API: a campaign that starts and
ends by itself a few seconds ahead, and a recurrence whose Temporal Schedule, triggered
as from the Temporal UI, opens a run window through RunWindowWorkflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from campaigns.activities.recurrence import schedule_id
from tests.support.campaigns import EVERY_DAY, create
from tests.support.polling import eventually


async def test_a_campaign_starts_opens_closes_and_ends_by_itself(api: httpx.AsyncClient, pool: asyncpg.Pool):
    tz = "Asia/Kathmandu"  # UTC+5:45
    now = datetime.now(UTC)
    start = now + timedelta(seconds=2)
    local = (start + timedelta(hours=5, minutes=45)).replace(tzinfo=None, microsecond=0)
    c = await create(api, timezone=tz, schedule={"startAt": local.isoformat(),
                                                 "endAt": (local + timedelta(seconds=2)).isoformat()})
    url = f"/api/campaigns/{c['id']}"
    assert (await api.post(url + "/activate")).json()["campaign"]["status"] == "scheduled"

    async def ended() -> bool:
        got = (await api.get(url)).json()["campaign"]
        return got["status"] == "ended" and not got["windowOpen"]

    await eventually(ended, "the campaign to end by itself", within=30)
    rows = await pool.fetch(
        "SELECT type, data, recorded_at FROM platform_events WHERE campaign_id = $1 ORDER BY seq", uuid.UUID(c["id"])
    )
    assert [r["type"] for r in rows] == ["campaign.created", "campaign.scheduled", "campaign.activated",
                                         "campaign.window_opened", "campaign.ended", "campaign.window_closed"]
    opened, closed = rows[3]["data"], rows[5]["data"]
    planned_start = local.replace(tzinfo=UTC) - timedelta(hours=5, minutes=45)
    assert datetime.fromisoformat(opened["plannedAt"]) == planned_start
    assert datetime.fromisoformat(closed["plannedAt"]) == planned_start + timedelta(seconds=2)
    assert opened["localTime"].startswith(local.isoformat()[:16])
    assert rows[3]["recorded_at"] >= planned_start


async def test_a_recurrence_is_a_schedule_that_opens_run_windows(api: httpx.AsyncClient, temporal_client: Client):
    c = await create(api, timezone="Europe/Paris", schedule={
        "recurrence": {"at": ["03:00"], "durationMinutes": 90, "daysOfWeek": ["monday"]},
        "recipientHours": {d: ["00:00-24:00"] for d in EVERY_DAY},
    })
    url = f"/api/campaigns/{c['id']}"
    active = (await api.post(url + "/activate")).json()["campaign"]
    assert active["status"] == "active" and active["windowOpen"] is False
    opens = datetime.fromisoformat(active["nextWindowChange"])
    assert opens.astimezone().weekday() in (6, 0) and opens > datetime.now(UTC)

    schedule = temporal_client.get_schedule_handle(schedule_id(c["id"]))
    described = await schedule.describe()
    assert described.schedule.spec.time_zone_name == "Europe/Paris"
    assert described.info.next_action_times[0] == opens
    refused = (await api.post(url + "/dial-check", json={"timezone": "UTC"})).json()
    assert refused["reason"] == "outside_campaign_window" and refused["nextAllowedAt"] == active["nextWindowChange"]

    await schedule.trigger()  # as the Temporal UI's "Trigger" button does

    async def opened() -> bool:
        return (await api.get(url)).json()["campaign"]["windowOpen"]

    await eventually(opened, "the triggered run window to open")
    closes = datetime.fromisoformat((await api.get(url)).json()["campaign"]["nextWindowChange"])
    assert timedelta(minutes=89) < closes - datetime.now(UTC) <= timedelta(minutes=90)
    run = (await schedule.describe()).info.recent_actions[0].action
    assert (await temporal_client.get_workflow_handle(run.workflow_id).result()).startswith("fired at")
    # The schedule says open; the recipient may be called anywhere at any hour.
    assert (await api.post(url + "/dial-check", json={"timezone": "UTC"})).json()["allowed"] is True

    await api.post(url + "/pause")
    assert (await schedule.describe()).schedule.state.paused
    await api.post(url + "/resume")
    assert not (await schedule.describe()).schedule.state.paused
    assert (await api.get(url)).json()["campaign"]["windowOpen"] is True  # still inside the run window
    await api.post(url + "/pause")
    assert (await api.delete(url)).json()["campaign"]["status"] == "archived"
    try:
        await schedule.describe()
        raise AssertionError("the Schedule should be deleted with the archived campaign")
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
