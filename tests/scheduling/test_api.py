"""Scheduling through the API on the real stack: the window in campaign reads, the search
attribute and UI details, re-planning on edits, pause/resume, the preview, the dial check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from campaigns.messages import search_attributes as sa
from campaigns.messages.campaign import workflow_id
from tests.support.campaigns import CAMPAIGN, EVERY_DAY, create, fields, noon_zone
from tests.support.polling import eventually


async def window_events(pool: asyncpg.Pool, campaign_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT type, data FROM platform_events WHERE campaign_id = $1 AND type LIKE 'campaign.window_%' ORDER BY seq",
        uuid.UUID(campaign_id),
    )
    return [(r["type"].removeprefix("campaign."), r["data"]["reason"]) for r in rows]


# --- The window in reads, events, search attribute and UI ------------------------------------


async def test_an_active_campaign_tracks_its_window(api: httpx.AsyncClient, pool: asyncpg.Pool,
                                                    temporal_client: Client):
    tz = noon_zone()
    c = await create(api, timezone=tz, schedule={"windows": {d: ["08:00-16:00"] for d in EVERY_DAY}})
    assert c["windowOpen"] is False and c["nextWindowChange"] is None
    url = f"/api/campaigns/{c['id']}"

    active = (await api.post(url + "/activate")).json()["campaign"]
    assert active["status"] == "active" and active["windowOpen"] is True
    closes = datetime.fromisoformat(active["nextWindowChange"])
    assert timedelta(hours=2) < closes - datetime.now(UTC) < timedelta(hours=6)
    assert closes.astimezone(ZoneInfo(tz)).time() == time(16, 0)

    paused = (await api.post(url + "/pause")).json()["campaign"]
    assert paused["windowOpen"] is False and paused["nextWindowChange"] is None
    resumed = (await api.post(url + "/resume")).json()["campaign"]
    assert resumed["windowOpen"] is True and resumed["nextWindowChange"] == active["nextWindowChange"]
    assert await window_events(pool, c["id"]) == [("window_opened", "status"), ("window_closed", "status"),
                                                  ("window_opened", "status")]

    org = c["organizationId"]

    async def listed() -> bool:
        query = f"{sa.WINDOW_OPEN.name} = true AND {sa.ORGANIZATION.name} = '{org}'"
        return (await temporal_client.count_workflows(query)).count == 1

    await eventually(listed, "the CampaignWindowOpen search attribute")
    metadata = await temporal_client.get_workflow_handle(workflow_id(c["id"])).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert "Calling window **open**, closes" in metadata.current_details


async def test_editing_the_schedule_replans_at_once(api: httpx.AsyncClient, pool: asyncpg.Pool):
    tz = noon_zone()
    c = await create(api, timezone=tz, schedule={"windows": {d: ["08:00-16:00"] for d in EVERY_DAY}})
    url = f"/api/campaigns/{c['id']}"
    await api.post(url + "/activate")
    r = await api.put(url + "/configuration", json={"schedule": {"windows": {d: ["18:00-20:00"] for d in EVERY_DAY}}})
    assert r.status_code == 200

    async def closed() -> bool:
        got = (await api.get(url)).json()["campaign"]
        return got["windowOpen"] is False and got["nextWindowChange"] is not None

    await eventually(closed, "the window to close after the edit")
    opens = datetime.fromisoformat((await api.get(url)).json()["campaign"]["nextWindowChange"])
    assert timedelta(hours=4) < opens - datetime.now(UTC) < timedelta(hours=8)
    assert (await window_events(pool, c["id"]))[-1] == ("window_closed", "schedule_changed")


# --- Preview -----------------------------------------------------------------------------------


async def test_preview_in_utc_and_local_time_across_a_clock_change(api: httpx.AsyncClient):
    c = await create(api, timezone="America/New_York",
                     schedule={"windows": {"sunday": ["01:00-03:00"], "saturday": ["22:00-02:00"]},
                               "blackoutDates": ["2030-03-16"]})
    r = await api.get(f"/api/campaigns/{c['id']}/schedule/preview",
                      params={"count": 3, "from": "2030-03-09T00:00:00Z"})
    assert r.status_code == 200, r.text
    p = r.json()["preview"]
    assert p["timezone"] == "America/New_York" and p["recurring"] is False and p["more"] is True
    assert [(w["opensAtLocal"], w["closesAtLocal"]) for w in p["windows"]] == [
        ("2030-03-09T22:00:00-05:00", "2030-03-10T03:00:00-04:00"),  # one window; 02:00-03:00 never happens
        ("2030-03-17T00:00:00-04:00", "2030-03-17T03:00:00-04:00"),  # Saturday 16th is a blackout date
        ("2030-03-23T22:00:00-04:00", "2030-03-24T03:00:00-04:00"),
    ]
    assert p["windows"][0]["opensAt"] == "2030-03-10T03:00:00Z" and p["windows"][0]["closesAt"] == "2030-03-10T07:00:00Z"
    assert p["windows"][0]["openAtFrom"] is False


async def test_preview_of_a_recurrence_and_of_an_unsaved_schedule(api: httpx.AsyncClient):
    body = {"timezone": "Asia/Kathmandu", "from": "2030-01-01T00:00:00Z", "count": 2,
            "schedule": {"recurrence": {"at": ["10:00"], "durationMinutes": 30, "daysOfWeek": ["monday"],
                                        "weeksOfMonth": [1]}}}
    p = (await api.post("/api/schedule/preview", json=body)).json()["preview"]
    assert p["recurring"] is True
    assert [w["opensAtLocal"] for w in p["windows"]] == ["2030-01-07T10:00:00+05:45", "2030-02-04T10:00:00+05:45"]
    r = await api.post("/api/schedule/preview", json={**body, "schedule": {"windows": {"monday": ["9-5"]}}})
    assert r.status_code == 400 and "schedule.windows" in fields(r)
    r = await api.post("/api/schedule/preview", json={**body, "from": "2030-01-01T00:00:00", "count": 0})
    assert r.status_code == 400 and {"from", "count"} <= set(fields(r))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"count": 0}, "query.count"), ({"count": 501}, "query.count"), ({"from": "yesterday"}, "query.from"),
     ({"from": "2030-01-01T00:00:00"}, "query.from")],
)
async def test_preview_rejects_bad_parameters(api: httpx.AsyncClient, campaign: dict, params, field):
    r = await api.get(f"/api/campaigns/{campaign['id']}/schedule/preview", params=params)
    assert r.status_code == 400, r.text
    assert field in fields(r)


# --- Configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        ({"recurrence": {"at": ["25:00"], "durationMinutes": 30}}, "schedule.recurrence.at", "time of day"),
        ({"recurrence": {"at": [], "durationMinutes": 30}}, "schedule.recurrence.at", "at least 1"),
        ({"recurrence": {"at": ["09:00"], "durationMinutes": 0}}, "schedule.recurrence.durationMinutes", "greater"),
        ({"recurrence": {"at": ["09:00"], "durationMinutes": 30, "months": [2], "daysOfMonth": [30]}},
         "schedule.recurrence", "never occurs"),
        ({"recurrence": {"at": ["09:00"], "durationMinutes": 30, "weeksOfMonth": [1], "daysOfMonth": [3]}},
         "schedule.recurrence", "not both"),
        ({"recurrence": {"at": ["09:00"], "durationMinutes": 30, "weeksOfMonth": [6]}},
         "schedule.recurrence.weeksOfMonth[0]", "less than or equal to 5"),
        ({"recipientHours": {}}, "schedule.recipientHours", "must allow some hours"),
        ({"recipientHours": {"monday": ["09:00-12:00", "11:00-13:00"]}}, "schedule.recipientHours", "overlap"),
    ],
)
async def test_invalid_schedules_name_the_field(api: httpx.AsyncClient, schedule, field, words):
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "schedule": schedule})
    assert r.status_code == 400, r.text
    errors = fields(r)
    assert field in errors, errors
    assert words in errors[field]


async def test_recipient_hours_default_to_eight_to_nine(campaign: dict):
    assert campaign["schedule"]["recipientHours"]["sunday"] == ["08:00-21:00"]
    assert campaign["schedule"]["recurrence"] is None


# --- Dial check ------------------------------------------------------------------------------


async def test_dial_check(api: httpx.AsyncClient):
    tz = noon_zone()
    c = await create(api, timezone=tz, schedule={"windows": {d: ["08:00-16:00"] for d in EVERY_DAY}})
    url = f"/api/campaigns/{c['id']}"
    r = await api.post(url + "/dial-check", json={"timezone": tz})
    assert r.status_code == 200 and r.json()["allowed"] is False and r.json()["reason"] == "campaign_not_active"
    await api.post(url + "/activate")

    ok = (await api.post(url + "/dial-check", json={"timezone": tz})).json()
    assert ok["allowed"] is True and ok["reason"] == "allowed" and ok["nextAllowedAt"] is None
    assert ok["allowedUntil"] == (await api.get(url)).json()["campaign"]["nextWindowChange"]
    assert ok["recipient"]["timezone"] == tz and ok["recipient"]["source"] == "timezone"

    # Where it is now around midnight: refused, with when calling opens there.
    hour = datetime.now(UTC).hour
    far = "Etc/GMT" if hour == 0 else f"Etc/GMT+{hour}" if hour <= 12 else f"Etc/GMT-{24 - hour}"
    late = (await api.post(url + "/dial-check", json={"timezone": far})).json()
    assert late["allowed"] is False and late["reason"] == "outside_recipient_hours"
    assert datetime.fromisoformat(late["nextAllowedAt"]) > datetime.now(UTC)

    unknown = (await api.post(url + "/dial-check", json={"timezone": "Mars/Olympus"})).json()
    assert unknown["allowed"] is False and unknown["reason"] == "unknown_timezone" and unknown["nextAllowedAt"] is None
    ambiguous = (await api.post(url + "/dial-check", json={"phoneNumber": "+61 412 345 678"})).json()
    assert ambiguous["allowed"] is False and ambiguous["reason"] == "ambiguous_timezone"
    assert "Australia/Perth" in ambiguous["recipient"]["candidates"]
    by_number = (await api.post(url + "/dial-check", json={"phoneNumber": "+12125550123"})).json()
    assert by_number["recipient"] == {**by_number["recipient"], "timezone": "America/New_York", "source": "phoneNumber"}

    await api.put(url, json={"type": "inbound"})
    inbound = (await api.post(url + "/dial-check", json={"timezone": tz})).json()
    assert inbound["reason"] == "campaign_not_outbound"


async def test_dial_check_on_a_blackout_date(api: httpx.AsyncClient):
    tz = noon_zone()
    today = datetime.now(ZoneInfo(tz)).date()
    c = await create(api, timezone=tz, schedule={"blackoutDates": [str(today)],
                                                 "recipientHours": {d: ["00:00-24:00"] for d in EVERY_DAY}})
    url = f"/api/campaigns/{c['id']}"
    await api.post(url + "/activate")
    d = (await api.post(url + "/dial-check", json={"timezone": "UTC"})).json()
    assert d["allowed"] is False and d["reason"] == "blackout_date"
    assert d["nextAllowedAt"] == (await api.get(url)).json()["campaign"]["nextWindowChange"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "(body)"), ({"phoneNumber": "212-555-0123"}, "phoneNumber"), ({"timezone": 5}, "timezone"),
     ({"timezone": "UTC", "extra": 1}, "extra")],
)
async def test_dial_check_rejects_bad_input(api: httpx.AsyncClient, campaign: dict, body, field):
    r = await api.post(f"/api/campaigns/{campaign['id']}/dial-check", json=body)
    assert r.status_code == 400, r.text
    assert field in fields(r)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("GET", "/schedule/preview", None), ("POST", "/dial-check", {"timezone": "UTC"})],
)
async def test_another_organizations_campaign_is_not_found(api: httpx.AsyncClient, other_api: httpx.AsyncClient,
                                                           campaign: dict, method, suffix, body):
    r = await other_api.request(method, f"/api/campaigns/{campaign['id']}{suffix}", json=body)
    assert r.status_code == 404 and r.json()["code"] == "campaign_not_found"
    assert campaign["name"] not in r.text
    r = await api.request(method, f"/api/campaigns/{campaign['id']}{suffix}", json=body)
    assert r.status_code == 200


async def test_openapi_documents_the_scheduling_endpoints(anonymous: httpx.AsyncClient):
    paths = (await anonymous.get("/openapi.json")).json()["paths"]
    assert paths["/api/campaigns/{id}/schedule/preview"]["get"]["summary"]
    assert paths["/api/campaigns/{id}/dial-check"]["post"]["summary"]
    assert paths["/api/schedule/preview"]["post"]["summary"]


async def test_scheduling_needs_a_key(anonymous: httpx.AsyncClient, campaign: dict):
    assert (await anonymous.get(f"/api/campaigns/{campaign['id']}/schedule/preview")).status_code == 401
    assert (await anonymous.post(f"/api/campaigns/{campaign['id']}/dial-check", json={"timezone": "UTC"})).status_code == 401
    assert (await anonymous.post("/api/schedule/preview", json={})).status_code == 401
