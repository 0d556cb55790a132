"""Everything derived can be rebuilt from the event record, with the same numbers; and a batch
whose process died before it reached Redis is applied, once, by the refresher."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from campaigns import cli
from campaigns.analytics import repository as repo
from campaigns.analytics.delta import build
from campaigns.analytics.rebuild import rebuild
from campaigns.domain import metrics
from campaigns.domain.analytics_events import parse_batch
from campaigns.settings import get_settings
from tests.support.analytics import call, drained, event, realtime, send


async def _history(api: httpx.AsyncClient, cid: str) -> None:
    now = datetime.now(UTC)
    events = []
    for days in range(6):
        at = now - timedelta(days=days, minutes=7 * days)
        for i in range(4):
            variant = "A" if i % 2 else "B"
            events += call(cid, duration=30 + 10 * i + days, lead=50 + i if i < 2 else None, revenue=12.5 if i == 0 else None,
                           cost=0.333333 * (i + 1), at=at, variantId=variant)
        events += [event(cid, "widget.display", {"ms": 1200 + days}, at=at), event(cid, "widget.impression", at=at),
                   event(cid, "call.failed", {"reason": "no route"}, callId=f"f{days}", at=at),
                   event(cid, "call.completed", {"durationSec": 44.5, "outcome": "connected", "satisfaction": 4.5},
                         callId=f"s{days}", at=at)]
    events += [event(cid, "call.started", {"waitSec": 7.25}, callId="live-a"), event(cid, "call.started", callId="live-b")]
    await send(api, events)


async def _snapshot(api: httpx.AsyncClient, pool, cid: str) -> dict:
    live = await realtime(api, cid)
    live.pop("lastUpdated")
    today = datetime.now(UTC).date()
    span = {"start": (today - timedelta(days=10)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}
    report = (await api.get(f"/api/campaigns/{cid}/analytics", params=span)).json()["analytics"]
    # What depends on the clock rather than on the data:
    report.pop("generatedAt")
    report["budget"].pop("projectedExhaustionAt")
    for goal in report["goals"]:
        for key in ("elapsedRatio", "expectedByNow", "projected", "requiredPerDay", "message"):
            goal.pop(key)
    campaign = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]
    campaign["costTracking"].pop("lastUpdated")
    rollups = [dict(r) for r in await pool.fetch(
        f"SELECT bucket, variant_id, {', '.join(metrics.NAMES)} FROM analytics_rollups WHERE campaign_id = $1 "
        "ORDER BY bucket, variant_id", uuid.UUID(cid))]
    return {"live": live, "report": report, "performance": campaign["performance"], "cost": campaign["costTracking"],
            "goals": campaign["goals"], "rollups": rollups}


async def _wreck(app, pool, cid: str) -> None:
    await pool.execute("DELETE FROM analytics_rollups WHERE campaign_id = $1", uuid.UUID(cid))
    await pool.execute(
        "UPDATE campaign_performance SET total_calls = 0, qualified_leads = 999, total_cost = 0, revenue = 0, "
        "cost_per_lead = NULL, conversion_rate = 0 WHERE campaign_id = $1", uuid.UUID(cid))
    await app.state.analytics.realtime.clear([cid])


def _same(a, b) -> None:
    """Equal, floats to 1e-9 (sums of floats may add up in another order)."""
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


async def test_the_rebuild_gives_the_same_numbers(api: httpx.AsyncClient, app, pool, settings, monkeypatch):
    body = {"name": "R", "type": "outbound", "channel": "phone", "timezone": "Asia/Kolkata",
            "goals": [{"id": "g", "type": "leads", "target": 5, "timeframe": "weekly"}], "budget": {"total": 1000}}
    cid = (await api.post("/api/campaigns", json=body)).json()["campaign"]["id"]
    await _history(api, cid)
    await drained(app)
    before = await _snapshot(api, pool, cid)
    assert before["live"]["activeCalls"] == 2 and before["performance"]["totalCalls"] == 36
    assert len({r["variant_id"] for r in before["rollups"]}) == 3  # A, B and none

    await _wreck(app, pool, cid)
    assert (await realtime(api, cid))["todayCalls"] == 0
    # Through the command line, as an operator would.
    monkeypatch.setenv("DATABASE_URL", settings.database_dsn)
    monkeypatch.setenv("REDIS_URL", settings.redis_dsn)
    get_settings.cache_clear()
    try:
        await asyncio.to_thread(cli.main, ["rebuild-analytics", "--campaign", cid])
    finally:
        get_settings.cache_clear()
    _same(await _snapshot(api, pool, cid), before)


async def test_redis_coming_back_empty_is_rebuilt_by_itself(api: httpx.AsyncClient, app, campaign: dict):
    cid = campaign["id"]
    await send(api, call(cid, lead=80, cost=2) + [event(cid, "call.started", callId="still-talking")])
    await drained(app)
    before = await realtime(api, cid)
    await app.state.redis.flushdb()  # everything: counters, markers, the generation
    assert (await realtime(api, cid))["todayCalls"] == 0
    await app.state.analytics.refresher.tick()
    after = await realtime(api, cid)
    before.pop("lastUpdated"), after.pop("lastUpdated")
    assert after == before


async def test_a_batch_that_never_reached_redis_is_applied_once(api: httpx.AsyncClient, app, pool, campaign: dict):
    """The process died between its commit and Redis: the outbox row is all that is left."""
    cid = campaign["id"]
    body = httpx.Request("POST", "/", json={"events": call(cid, lead=90, cost=4)}).content
    parsed = parse_batch(body, now=datetime.now(UTC)).events
    events = [e for _, e, _ in parsed]
    org = uuid.UUID(campaign["organizationId"])
    records = [(org, e["id"], e["campaignId"], e["type"], e["occurredAt"], None, None, e.get("callId"),
                __import__("orjson").dumps(e["data"]).decode()) for e in events]
    batch = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        assert len(await repo.store_events(conn, records)) == len(events)
        delta = build(batch, org, parsed)
        await repo.add_outbox(conn, batch_id=batch, payload=delta.encode())
    assert (await realtime(api, cid))["todayLeads"] == 0
    await drained(app)
    live = await realtime(api, cid)
    assert live["todayLeads"] == 1 and live["todayCost"] == 4
    assert await app.state.analytics.realtime.apply(delta) is False  # a late retry counts nothing
    assert (await realtime(api, cid))["todayLeads"] == 1


async def test_a_rebuild_during_ingestion_counts_everything_once(api: httpx.AsyncClient, app, pool, campaign: dict):
    cid = campaign["id"]
    batches = [[e for _ in range(30) for e in call(cid, lead=75, cost=0.5)] for _ in range(8)]

    async def ingest():
        for b in batches:
            await send(api, b)

    await asyncio.gather(ingest(), rebuild(pool, app.state.analytics.realtime, app.state.campaign_cache, campaign_ids=[uuid.UUID(cid)]),
                         rebuild(pool, app.state.analytics.realtime, None, redis_only=True))
    await drained(app)
    live = await realtime(api, cid)
    assert live["todayCalls"] == 240 and live["todayLeads"] == 240 and live["todayCost"] == 120
    perf = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["performance"]
    assert perf["totalCalls"] == 240 and perf["qualifiedLeads"] == 240 and perf["totalCost"] == 120
    await rebuild(pool, app.state.analytics.realtime, app.state.campaign_cache, campaign_ids=[uuid.UUID(cid)])
    assert (await realtime(api, cid))["todayCalls"] == 240
