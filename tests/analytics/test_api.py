"""The analytics report, real-time metrics, the SSE stream and exports."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import uuid
from datetime import UTC, datetime, time, timedelta

import httpx
import httpx_sse
import pytest

from campaigns.domain import periods
from campaigns.domain.timeutil import local_to_utc
from tests.support.analytics import call, drained, event, send
from tests.support.servers import serving

TZ = "Europe/Paris"


def local_noon(days_ago: int) -> datetime:
    day = periods.local_date(datetime.now(UTC), TZ) - timedelta(days=days_ago)
    return local_to_utc(datetime.combine(day, time(12)), TZ)


@pytest.fixture
async def history(api: httpx.AsyncClient, app) -> dict:
    """A campaign with nine past days of calls: 10 calls a day, leads rising toward today,
    no conversions, 2.00 of cost per call."""
    body = {"name": "History", "type": "outbound", "channel": "phone", "timezone": TZ, "flowId": "f",
            "budget": {"total": 1000, "daily": 100},
            "goals": [{"id": "weekly-leads", "type": "leads", "target": 500, "timeframe": "weekly"},
                      {"id": "daily-calls", "type": "calls", "target": 5, "timeframe": "daily"}]}
    campaign = (await api.post("/api/campaigns", json=body)).json()["campaign"]
    events = []
    for k in range(1, 10):
        leads = 10 - k + (k % 2)
        for i in range(10):
            events += call(campaign["id"], duration=90, lead=70 if i < leads else None, cost=2.0, at=local_noon(k))
    await send(api, events)
    await drained(app)
    return campaign


async def test_the_report_for_a_week(api: httpx.AsyncClient, history: dict):
    r = await api.get(f"/api/campaigns/{history['id']}/analytics", params={"timeframe": "7d"})
    assert r.status_code == 200, r.text
    a = r.json()["analytics"]
    assert a["period"]["granularity"] == "daily" and a["period"]["timeframe"] == "7d" and a["currency"] == "USD"

    trends = a["trends"]
    today = periods.local_date(datetime.now(UTC), TZ)
    assert trends[-1]["period"] == today.isoformat() and len(trends) == 8
    by_day = {p["period"]: p for p in trends}
    for k in range(1, 7):
        point = by_day[(today - timedelta(days=k)).isoformat()]
        assert point["calls"] == 10 and point["leads"] == 10 - k + (k % 2) and point["cost"] == 20
        assert point["averageCallDuration"] == 90
    perf = a["performance"]
    assert perf["totalCalls"] == sum(p["calls"] for p in trends)
    assert perf["qualifiedLeads"] == sum(p["leads"] for p in trends)
    assert perf["conversionRate"] == 0 and perf["roi"] is None and perf["customerSatisfaction"] is None
    assert perf["costByCategory"]["telephony"] == perf["totalCost"]

    previous = a["comparisons"]["previousPeriod"]
    assert previous["performance"]["totalCalls"] == 90 - perf["totalCalls"]
    change = {c["metric"]: c for c in previous["changes"]}["totalCalls"]
    assert change["change"] == perf["totalCalls"] - previous["performance"]["totalCalls"]
    org = a["comparisons"]["organization"]
    assert org["campaigns"] == 1 and {m["metric"] for m in org["metrics"]} >= {"conversionRate", "costPerLead"}

    leads = a["forecasts"]["leads"]
    assert leads["method"] == "linear_trend" and leads["slopePerDay"] > 0 and len(leads["points"]) == 7
    assert leads["points"][0]["date"] == today.isoformat()  # today is not complete: it is forecast too
    for p in leads["points"] + a["forecasts"]["cost"]["points"]:
        assert 0 <= p["lower95"] <= p["lower80"] <= p["value"] <= p["upper80"] <= p["upper95"]
    assert a["forecasts"]["cost"]["method"] == "mean" and a["forecasts"]["cost"]["points"][0]["value"] == 20

    insights = {i["code"]: i for i in a["insights"]}
    low = insights["low_conversion_rate"]
    assert low["metric"] == "conversionRate" and low["value"] == 0 and low["threshold"] == 0.1
    behind = insights["goal_behind:weekly-leads"]
    assert behind["metric"] == "leads" and behind["threshold"] == 500
    assert all(i["metric"] and i["value"] is not None for i in a["insights"])
    assert a["recommendations"] and a["recommendations"][0]["priority"] == 1
    assert all(r["metric"] and r["reason"] for r in a["recommendations"])

    goals = {g["id"]: g for g in a["goals"]}
    weekly = goals["weekly-leads"]
    assert weekly["target"] == 500 and weekly["achieved"] is False and weekly["windowStart"]
    assert "500 leads this week" in weekly["message"]
    assert goals["daily-calls"]["current"] == 0  # nothing today yet

    budget = a["budget"]
    assert budget["total"] == 1000 and budget["spent"] == 180 and budget["remaining"] == 820
    assert budget["spentToday"] == 0 and budget["exhausted"] is None


async def test_hourly_and_explicit_periods(api: httpx.AsyncClient, history: dict):
    url = f"/api/campaigns/{history['id']}/analytics"
    day = (await api.get(url, params={"timeframe": "24h"})).json()["analytics"]
    assert day["period"]["granularity"] == "hourly" and len(day["trends"]) in (24, 25)
    assert all(p["period"].endswith(("+01:00", "+02:00")) for p in day["trends"])

    today = periods.local_date(datetime.now(UTC), TZ)
    span = {"start": (today - timedelta(days=5)).isoformat(), "end": (today - timedelta(days=2)).isoformat()}
    explicit = (await api.get(url, params=span)).json()["analytics"]
    assert [p["period"] for p in explicit["trends"]] == [(today - timedelta(days=k)).isoformat() for k in (5, 4, 3, 2)]
    assert explicit["performance"]["totalCalls"] == 40 and explicit["period"]["timeframe"] is None
    hourly = (await api.get(url, params={**span, "granularity": "hourly"})).json()["analytics"]
    assert len(hourly["trends"]) == 96 and sum(p["calls"] for p in hourly["trends"]) == 40


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"timeframe": "1y"}, "query.timeframe"),
        ({"granularity": "weekly"}, "query.granularity"),
        ({"start": "yesterday"}, "query.start"),
        ({"start": "2026-01-01T00:00:00"}, "query.start"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "query.start"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "query.start"),
        ({"start": "2026-01-01", "end": "2026-06-01", "granularity": "hourly"}, "query.granularity"),
    ],
)
async def test_bad_analytics_parameters(api: httpx.AsyncClient, campaign: dict, params, field):
    r = await api.get(f"/api/campaigns/{campaign['id']}/analytics", params=params)
    assert r.status_code == 400, r.text
    assert field in {d["field"] for d in r.json()["details"]}


async def test_roi_and_satisfaction_where_the_data_has_them(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    events = [event(cid, "call.completed", {"durationSec": 10, "outcome": "connected", "satisfaction": s},
                    callId=f"c{s}") for s in (2, 4, 5)]
    events += [event(cid, "cost", {"amount": 100, "category": "llm"}), event(cid, "conversion", {"revenue": 150})]
    await send(api, events)
    await drained(app)
    perf = (await api.get(f"/api/campaigns/{cid}/analytics")).json()["analytics"]["performance"]
    assert perf["roi"] == 0.5 and perf["customerSatisfaction"] == pytest.approx(11 / 3)
    assert perf["satisfactionResponses"] == 3 and perf["costPerConversion"] == 100


async def test_list_sorts_and_filters_on_performance(api: httpx.AsyncClient, app):
    ids = {}
    for name, leads, cost in (("cheap", 10, 1.0), ("dear", 2, 30.0), ("none", 0, 5.0)):
        c = (await api.post("/api/campaigns", json={"name": name, "type": "inbound", "channel": "web"})).json()
        ids[name] = c["campaign"]["id"]
        events = []
        for i in range(10):
            events += call(ids[name], lead=50 if i < leads else None, cost=cost,
                           revenue=10 if i < leads // 2 else None)
        await send(api, events)
    await drained(app)

    def names(r):
        assert r.status_code == 200, r.text
        return [c["name"] for c in r.json()["campaigns"]]

    assert names(await api.get("/api/campaigns", params={"sort": "-qualifiedLeads"})) == ["cheap", "dear", "none"]
    # Without leads the cost per lead is unknown: it sorts last either way.
    assert names(await api.get("/api/campaigns", params={"sort": "costPerLead"})) == ["cheap", "dear", "none"]
    assert names(await api.get("/api/campaigns", params={"sort": "-costPerLead"})) == ["dear", "cheap", "none"]
    assert names(await api.get("/api/campaigns", params={"sort": "-conversionRate"})) == ["cheap", "dear", "none"]
    assert names(await api.get("/api/campaigns", params={"minQualifiedLeads": 2})) == ["dear", "cheap"]
    assert names(await api.get("/api/campaigns", params={"maxCostPerLead": 10})) == ["cheap"]
    assert names(await api.get("/api/campaigns", params={"minConversionRate": 0.3, "sort": "name"})) == ["cheap"]
    listed = (await api.get("/api/campaigns", params={"sort": "name"})).json()["campaigns"]
    assert listed[0]["performance"]["todayLeads"] == 10 and listed[0]["performance"]["qualifiedLeads"] == 10
    r = await api.get("/api/campaigns", params={"minConversionRate": 2})
    assert r.status_code == 400 and "query.minConversionRate" in {d["field"] for d in r.json()["details"]}


ANALYTICS_PATHS = ["/analytics", "/analytics/real-time", "/analytics/stream", "/analytics/export"]


@pytest.mark.parametrize("suffix", ANALYTICS_PATHS)
async def test_another_organizations_analytics_are_not_found(other_api: httpx.AsyncClient, campaign: dict, suffix):
    r = await other_api.get(f"/api/campaigns/{campaign['id']}{suffix}")
    assert r.status_code == 404 and r.json()["code"] == "campaign_not_found"
    assert campaign["name"] not in r.text


@pytest.mark.parametrize("suffix", ANALYTICS_PATHS)
async def test_analytics_need_a_key(anonymous: httpx.AsyncClient, campaign: dict, suffix):
    assert (await anonymous.get(f"/api/campaigns/{campaign['id']}{suffix}")).status_code == 401


# --- Exports -----------------------------------------------------------------------------------


async def test_exports_in_every_format(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    events = call(cid, lead=88, cost=1.5, revenue=40, variantId="B", subjectId="=HYPERLINK(\"x\")")
    await send(api, events)
    await drained(app)
    url = f"/api/campaigns/{cid}/analytics/export"

    r = await api.get(url, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith(f'attachment; filename="campaign-{cid}-events-')
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(events)
    assert {row["id"] for row in rows} == {e["id"] for e in events}
    assert all(row["subjectId"].startswith("'=") for row in rows)  # never a live formula
    completed = next(row for row in rows if row["type"] == "call.completed")
    assert completed["outcome"] == "connected" and completed["variantId"] == "B"

    doc = (await api.get(url, params={"format": "json"})).json()
    assert doc["campaignId"] == cid and doc["dataset"] == "events" and len(doc["rows"]) == len(events)
    assert {row["type"] for row in doc["rows"]} == {e["type"] for e in events}
    cost = next(row for row in doc["rows"] if row["type"] == "cost")
    assert cost["data"] == {"amount": 1.5, "category": "telephony"}

    lines = (await api.get(url, params={"format": "ndjson"})).text.splitlines()
    assert len(lines) == len(events) and json.loads(lines[0])["id"]

    daily = (await api.get(url, params={"format": "json", "dataset": "daily"})).json()["rows"]
    assert len(daily) == 1 and daily[0]["variantId"] == "B" and daily[0]["leads"] == 1 and daily[0]["cost"] == 1.5
    assert daily[0]["revenue"] == 40 and daily[0]["conversionRate"] == 1.0
    hourly = (await api.get(url, params={"format": "csv", "dataset": "hourly"})).text
    assert hourly.splitlines()[0].startswith("period,variantId,callsStarted")

    nothing = (await api.get(url, params={"format": "json", "startDate": "2020-01-01", "endDate": "2020-01-31"}))
    assert nothing.status_code == 200 and nothing.json()["rows"] == []
    assert "20200101-20200131" in nothing.headers["content-disposition"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xlsx"}, "query.format"), ({"dataset": "raw"}, "query.dataset"),
     ({"startDate": "soon"}, "query.startDate"), ({"startDate": "2026-02-01", "endDate": "2026-01-01"}, "query.startDate")],
)
async def test_bad_export_parameters(api: httpx.AsyncClient, campaign: dict, params, field):
    r = await api.get(f"/api/campaigns/{campaign['id']}/analytics/export", params=params)
    assert r.status_code == 400 and field in {d["field"] for d in r.json()["details"]}


async def test_a_large_export_streams(api: httpx.AsyncClient, app, campaign: dict):
    """12,000 events leave in chunks of bounded size while the cursor is read: the app never
    holds the export whole."""
    from campaigns.analytics import export

    cid = campaign["id"]
    start = datetime.now(UTC) - timedelta(days=3)
    for b in range(3):
        await send(api, [event(cid, "widget.display", {"ms": i}, at=start + timedelta(seconds=b * 4000 + i))
                         for i in range(4000)])
    chunks: list[int] = []
    done = asyncio.Event()

    async def receive():
        await done.wait()
        return {"type": "http.disconnect"}

    async def send_(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            chunks.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                done.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": f"/api/campaigns/{cid}/analytics/export", "raw_path": b"", "root_path": "",
        "query_string": b"format=ndjson", "server": ("api.test", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"api.test"), (b"authorization", f"Bearer {api.key}".encode())],
    }
    await app(scope, receive, send_)
    body_chunks = [c for c in chunks if c]
    assert sum(1 for _ in body_chunks) >= 12000 // export.CHUNK_ROWS
    assert max(body_chunks) < sum(body_chunks) / 8  # no chunk is a large share of the whole


# --- Server-Sent Events --------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def live_url(app):
    """The app behind a real HTTP server (the ASGI test transport buffers whole responses)."""
    async with serving(app) as server:
        yield server.url


async def test_the_stream_pushes_changes(api: httpx.AsyncClient, campaign: dict, live_url: str):
    cid = campaign["id"]
    seen: list[dict] = []
    got = asyncio.Event()

    async def watch():
        async with httpx.AsyncClient(base_url=live_url, headers={"Authorization": f"Bearer {api.key}"},
                                     timeout=30) as client:
            async with httpx_sse.aconnect_sse(client, "GET", f"/api/campaigns/{cid}/analytics/stream") as source:
                assert source.response.headers["content-type"].startswith("text/event-stream")
                async for sse in source.aiter_sse():
                    if sse.event == "metrics":
                        seen.append(json.loads(sse.data))
                        got.set()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(got.wait(), 10)
        assert seen[0]["todayLeads"] == 0 and seen[0]["campaignId"] == cid
        for n in (1, 2):
            got.clear()
            await send(api, [event(cid, "lead.qualified", {"score": 80})])
            while seen[-1]["todayLeads"] < n:
                await asyncio.wait_for(got.wait(), 10)
                got.clear()
            assert seen[-1]["todayLeads"] == n
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_the_stream_refuses_other_organizations(other_api: httpx.AsyncClient, campaign: dict, live_url: str):
    async with httpx.AsyncClient(base_url=live_url, headers={"Authorization": f"Bearer {other_api.key}"}) as client:
        r = await client.get(f"/api/campaigns/{campaign['id']}/analytics/stream")
        assert r.status_code == 404


async def test_unknown_campaign_analytics(api: httpx.AsyncClient):
    r = await api.get(f"/api/campaigns/{uuid.uuid4()}/analytics/real-time")
    assert r.status_code == 404
