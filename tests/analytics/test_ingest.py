"""POST /api/events: validation per event, idempotency, organization isolation, and the
numbers each accepted event moves (real-time at once, the summary after the refresher)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.analytics import call, drained, event, realtime, send
from tests.support.campaigns import CAMPAIGN


async def test_a_batch_is_recorded_and_counted(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    events = (
        call(cid, duration=120, lead=80, revenue=250, cost=1.25)
        + call(cid, duration=30, outcome="voicemail", cost=0.5)
        + [event(cid, "call.started", {"waitSec": 4}, callId="live-1"),
           event(cid, "cost", {"amount": 0.1234564, "category": "llm"}),
           event(cid, "widget.impression"), event(cid, "widget.click"), event(cid, "widget.display", {"ms": 1500})]
    )
    result = await send(api, events)
    assert result == {"accepted": len(events), "duplicates": 0, "rejected": 0, "duplicateEvents": [],
                      "rejectedEvents": []}

    live = await realtime(api, cid)
    assert live["activeCalls"] == 1
    assert live["todayCalls"] == 2 and live["todayCompletedCalls"] == 2 and live["todayConnectedCalls"] == 1
    assert live["todayLeads"] == 1 and live["todayConversions"] == 1 and live["todayRevenue"] == 250
    assert live["todayCost"] == pytest.approx(1.25 + 0.5 + 0.123456)  # money kept to the micro-unit
    assert live["conversionRate"] == 0.5
    assert live["averageWaitTime"] == pytest.approx(8 / 3)
    assert live["systemHealth"] == "healthy" and live["lastUpdated"] is not None

    await drained(app)
    c = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]
    perf, cost = c["performance"], c["costTracking"]
    assert perf["totalCalls"] == 2 and perf["completedCalls"] == 2 and perf["qualifiedLeads"] == 1
    assert perf["conversions"] == 1 and perf["conversionRate"] == 0.5 and perf["averageCallDuration"] == 75
    assert perf["totalCost"] == pytest.approx(1.873456) and perf["costPerLead"] == pytest.approx(1.873456)
    assert perf["revenue"] == 250
    assert perf["activeCalls"] == 1 and perf["todayLeads"] == 1 and perf["todayCost"] == pytest.approx(1.873456)
    assert cost["byCategory"]["telephony"] == 1.75 and cost["byCategory"]["llm"] == pytest.approx(0.123456)
    assert cost["todayCost"] == pytest.approx(1.873456)
    assert len(perf["hourlyTrends"]) >= 24 and sum(p["leads"] for p in perf["hourlyTrends"]) == 1
    assert len(perf["dailyTrends"]) == 7 and perf["dailyTrends"][-1]["calls"] == 2


async def test_a_call_ending_ends_its_activity(api: httpx.AsyncClient, campaign: dict):
    cid = campaign["id"]
    await send(api, [event(cid, "call.started", callId="c1"), event(cid, "call.started", callId="c2")])
    assert (await realtime(api, cid))["activeCalls"] == 2
    await send(api, [event(cid, "call.failed", {"reason": "sip 503"}, callId="c1")])
    live = await realtime(api, cid)
    assert live["activeCalls"] == 1 and live["todayCalls"] == 1 and live["callFailureRate"] == 1.0
    # An end that arrives before its start: the call never shows as active.
    await send(api, [event(cid, "call.completed", {"durationSec": 5, "outcome": "busy"}, callId="c3")])
    await send(api, [event(cid, "call.started", callId="c3")])
    assert (await realtime(api, cid))["activeCalls"] == 1
    # A call that started longer ago than the maximum call duration is not "active" any more.
    stale = datetime.now(UTC) - timedelta(seconds=campaign["voiceSettings"]["maxCallDuration"] + 120)
    await send(api, [event(cid, "call.started", callId="c4", at=stale)])
    assert (await realtime(api, cid))["activeCalls"] == 1


# --- Idempotency -------------------------------------------------------------------------------


async def test_duplicates_in_one_batch_count_once(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    lead = event(cid, "lead.qualified", {"score": 90}, id="lead-1")
    cost = event(cid, "cost", {"amount": 2, "category": "llm"}, id="cost-1")
    result = await send(api, [lead, cost, lead, {**cost, "data": {"amount": 99, "category": "llm"}}])
    assert result["accepted"] == 2 and result["duplicates"] == 2
    assert result["duplicateEvents"] == [{"index": 2, "id": "lead-1"}, {"index": 3, "id": "cost-1"}]
    live = await realtime(api, cid)
    assert live["todayLeads"] == 1 and live["todayCost"] == 2  # the first version of an id wins


async def test_duplicates_across_batches_count_once(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    events = call(cid, lead=70, cost=1.5)
    first = await send(api, events)
    again = await send(api, events)
    assert first["accepted"] == len(events) and first["duplicates"] == 0
    assert again["accepted"] == 0 and again["duplicates"] == len(events)
    assert [d["index"] for d in again["duplicateEvents"]] == list(range(len(events)))
    mixed = await send(api, events[:1] + call(cid))
    assert mixed["accepted"] == 2 and mixed["duplicates"] == 1
    live = await realtime(api, cid)
    assert live["todayCalls"] == 2 and live["todayLeads"] == 1 and live["todayCost"] == 1.5
    await drained(app)
    perf = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["performance"]
    assert perf["totalCalls"] == 2 and perf["qualifiedLeads"] == 1 and perf["totalCost"] == 1.5


async def test_concurrent_batches_with_the_same_events_count_once(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    events = [e for _ in range(40) for e in call(cid, lead=60, cost=0.25)]
    answers = await asyncio.gather(*(send(api, events) for _ in range(6)))
    assert sum(a["accepted"] for a in answers) == len(events)
    assert sum(a["duplicates"] for a in answers) == 5 * len(events)
    live = await realtime(api, cid)
    assert live["todayCalls"] == 40 and live["todayLeads"] == 40 and live["todayCost"] == 10
    await drained(app)
    perf = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["performance"]
    assert perf["totalCalls"] == 40 and perf["qualifiedLeads"] == 40 and perf["totalCost"] == 10
    leads = await app.state.pool.fetchval(
        "SELECT count(*) FROM platform_events WHERE campaign_id = $1 AND type = 'lead.created'", __import__("uuid").UUID(cid)
    )
    assert leads == 40


async def test_event_ids_are_scoped_to_the_organization(api, other_api, campaign: dict):
    mine = event(campaign["id"], "widget.click", id="shared-id")
    other = (await other_api.post("/api/campaigns", json={"name": "x", "type": "inbound", "channel": "web"})).json()
    theirs = event(other["campaign"]["id"], "widget.click", id="shared-id")
    assert (await send(api, [mine]))["accepted"] == 1
    assert (await send(other_api, [theirs]))["accepted"] == 1


# --- Validation --------------------------------------------------------------------------------


async def test_a_partial_batch_keeps_the_good_events(api: httpx.AsyncClient, campaign: dict):
    cid = campaign["id"]
    now = datetime.now(UTC)
    events = [
        event(cid, "lead.qualified", {"score": 75}),
        event(cid, "lead.qualified", {"score": 175}),
        event(cid, "cost", {"amount": 1, "category": "gpu"}),
        event(cid, "call.started"),  # no callId
        event(cid, "teleport"),
        event(cid, "widget.click", at=now + timedelta(hours=1)),
        {**event(cid, "widget.click"), "occurredAt": "2026-01-01T10:00:00"},
        {**event(cid, "widget.click"), "colour": "red"},
        event(cid, "cost", {"amount": -1, "category": "llm"}),
        event(cid, "conversion", {"revenue": 20}),
        "not an event",
        {**event(cid, "widget.click"), "id": "has space"},
    ]
    result = await send(api, events)
    assert result["accepted"] == 2 and result["rejected"] == 10 and result["duplicates"] == 0
    by_index = {r["index"]: r for r in result["rejectedEvents"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
    assert by_index[1]["field"] == "data.score" and "100" in by_index[1]["reason"]
    assert by_index[2]["field"] == "data.category"
    assert by_index[3]["field"] == "callId"
    assert by_index[4]["field"] == "type" and "teleport" in by_index[4]["reason"]
    assert by_index[5]["field"] == "occurredAt" and "future" in by_index[5]["reason"]
    assert by_index[6]["field"] == "occurredAt" and "offset" in by_index[6]["reason"]
    assert by_index[7]["field"] == "colour" and by_index[7]["reason"] == "unknown field"
    assert by_index[8]["field"] == "data.amount"
    assert by_index[10]["id"] is None
    assert by_index[11]["field"] == "id"
    assert all(r["id"] == events[i]["id"] for i, r in by_index.items() if i != 10)
    live = await realtime(api, cid)
    assert live["todayLeads"] == 1 and live["todayRevenue"] == 20


async def test_a_batch_with_only_bad_events_is_a_400(api: httpx.AsyncClient, campaign: dict):
    r = await api.post("/api/events", json={"events": [event(campaign["id"], "lead.qualified", {"score": -5})]})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    assert r.json()["details"][0]["field"] == "events[0].data.score"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{nope", "(body)", "JSON object"),
        (b"[]", "(body)", "JSON object"),
        (b'{"events": []}', "events", "at least one"),
        (b'{"events": {}}', "events", "valid"),
        (b'{"evnts": []}', "evnts", "unknown field"),
    ],
)
async def test_an_unusable_batch_is_a_400(api: httpx.AsyncClient, body, field, words):
    r = await api.post("/api/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    details = {d["field"]: d["reason"] for d in r.json()["details"]}
    assert field in details and words.lower() in details[field].lower(), details


async def test_batches_are_limited(api: httpx.AsyncClient, campaign: dict):
    one = event(campaign["id"], "widget.impression")
    r = await api.post("/api/events", json={"events": [one] * 5001})
    assert r.status_code == 400 and "5000" in r.json()["details"][0]["reason"]
    r = await api.post("/api/events", content=b" " * (17 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    full = [event(campaign["id"], "widget.impression") for _ in range(5000)]
    assert (await send(api, full))["accepted"] == 5000


async def test_another_organizations_campaign_is_rejected(api, other_api, campaign: dict):
    cid = campaign["id"]
    result = await send(other_api, [event(cid, "lead.qualified", {"score": 99}), event(cid, "cost", {
        "amount": 1000, "category": "llm"})], expect=400)
    assert {d["field"] for d in result["details"]} == {"events[0].campaignId", "events[1].campaignId"}
    assert all(d["reason"] == "no such campaign in your organization" for d in result["details"])
    # With a good event beside them the batch goes through, the foreign ones rejected.
    own = (await other_api.post("/api/campaigns", json={"name": "x", "type": "inbound", "channel": "web"})).json()
    result = await send(other_api, [event(own["campaign"]["id"], "widget.click"), event(cid, "widget.click")])
    assert result["accepted"] == 1 and result["rejectedEvents"][0]["index"] == 1
    live = await realtime(api, cid)
    assert live["todayLeads"] == 0 and live["todayCost"] == 0
    unknown = await send(api, [event("00000000-0000-4000-8000-000000000000", "widget.click")], expect=400)
    assert unknown["details"][0]["reason"] == "no such campaign in your organization"


async def test_events_need_a_key(anonymous: httpx.AsyncClient, campaign: dict):
    r = await anonymous.post("/api/events", json={"events": [event(campaign["id"], "widget.click")]})
    assert r.status_code == 401


async def test_the_batch_schema_is_documented(anonymous: httpx.AsyncClient):
    spec = (await anonymous.get("/openapi.json")).json()
    body = spec["paths"]["/api/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["events"]["maxItems"] == 5000
    assert "$ref" not in str(body)


# --- "Today" is the campaign's -----------------------------------------------------------------


@pytest.mark.parametrize("tz", ["Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "UTC"])
async def test_today_follows_the_campaign_timezone(api: httpx.AsyncClient, tz: str):
    from campaigns.domain import periods

    c = (await api.post("/api/campaigns", json={"name": "tz", "type": "inbound", "channel": "web",
                                                "timezone": tz})).json()["campaign"]
    now = datetime.now(UTC)
    midnight = periods.today(now, tz)[0]
    before, after = midnight - timedelta(seconds=1), min(midnight + timedelta(seconds=1), now)
    await send(api, [
        event(c["id"], "lead.qualified", {"score": 50}, at=before),
        event(c["id"], "cost", {"amount": 3, "category": "llm"}, at=before),
        event(c["id"], "lead.qualified", {"score": 50}, at=after),
        event(c["id"], "cost", {"amount": 5, "category": "llm"}, at=after),
    ])
    live = await realtime(api, c["id"])
    assert live["timezone"] == tz and live["day"] == periods.local_date(now, tz).isoformat()
    assert live["todayLeads"] == 1 and live["todayCost"] == 5


async def test_ingestion_is_on_the_metrics_page(api: httpx.AsyncClient, anonymous: httpx.AsyncClient, app,
                                                campaign: dict):
    await send(api, [event(campaign["id"], "widget.click")])
    await drained(app)
    text = (await anonymous.get("/metrics")).text
    assert 'analytics_events_total{result="accepted"}' in text
    assert "analytics_batches_applied_total" in text and "analytics_refresh_lag_seconds" in text


async def test_a_campaign_read_trends_by_local_hour_and_day(api: httpx.AsyncClient, app):
    """Trends in the campaign's own timezone, with an offset of a quarter hour: calls three
    days ago count on that local day, not in the last 24 hours."""
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "timezone": "Asia/Kathmandu"})).json()["campaign"]
    cid = c["id"]
    now = datetime.now(UTC)
    await send(api, call(cid, lead=70, cost=2.0, at=now - timedelta(days=3))
               + call(cid, cost=0.5, at=now - timedelta(days=3)) + call(cid, cost=1.0, at=now))
    await drained(app)
    perf = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["performance"]
    assert sum(p["calls"] for p in perf["hourlyTrends"]) == 1
    assert sum(p["cost"] for p in perf["hourlyTrends"]) == pytest.approx(1.0)
    local = {d["period"]: d for d in perf["dailyTrends"]}
    three_days_ago = (now - timedelta(days=3)).astimezone(ZoneInfo("Asia/Kathmandu")).date().isoformat()
    assert local[three_days_ago]["calls"] == 2 and local[three_days_ago]["leads"] == 1
    assert local[three_days_ago]["cost"] == pytest.approx(2.5)
    assert perf["dailyTrends"][-1]["calls"] == 1
    assert [d["period"] for d in perf["dailyTrends"]] == sorted(local)
