"""Goals and budgets acted on by the platform: progress kept, achievements and budget alerts
recorded once, and the workflow pausing (and resuming) the campaign by itself."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.support.analytics import active_campaign, call, drained, event, send
from tests.support.campaigns import wait_for_status


async def _events(pool: asyncpg.Pool, campaign_id: str, prefix: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT type, seq, data FROM platform_events WHERE campaign_id = $1 AND type LIKE $2 ORDER BY seq",
        uuid.UUID(campaign_id), prefix + "%",
    )


async def test_spending_the_budget_pauses_the_campaign_by_itself(api: httpx.AsyncClient, app, pool):
    c = await active_campaign(api, budget={"total": 10, "daily": 8, "alertThresholds": [0.5, 0.8, 1.0]})
    cid = c["id"]
    await send(api, [event(cid, "cost", {"amount": 3, "category": "llm"})])
    await drained(app)
    assert (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "active"

    await send(api, [event(cid, "cost", {"amount": 5.5, "category": "telephony"})])
    paused = await wait_for_status(api, cid, "paused")  # the refresher reports, the workflow acts
    assert paused["status"] == "paused" and paused["statusReason"] == "budget_exhausted"
    last = (await api.get(f"/api/campaigns/{cid}/audit")).json()["audit"][-1]
    assert last["action"] == "status_changed" and last["reason"] == "budget_exhausted"
    assert last["actor"]["kind"] == "system" and last["changes"]["status"] == {"from": "active", "to": "paused"}

    alerts = await _events(pool, cid, "budget.")
    kinds = sorted((e["type"], e["data"]["cap"], e["data"].get("threshold")) for e in alerts)
    assert kinds == [("budget.exhausted", "daily", None),
                     ("budget.threshold_reached", "daily", 0.5), ("budget.threshold_reached", "daily", 0.8),
                     ("budget.threshold_reached", "total", 0.5), ("budget.threshold_reached", "total", 0.8)]
    assert [e["type"] for e in await _events(pool, cid, "campaign.paused")] == ["campaign.paused"]

    r = await api.post(f"/api/campaigns/{cid}/resume")
    assert r.status_code == 409 and r.json()["code"] == "budget_exhausted"
    assert "budget.daily" in r.json()["error"]

    # Raising the daily cap lets the workflow resume the campaign by itself.
    r = await api.put(f"/api/campaigns/{cid}/configuration", json={"budget": {"daily": 10}})
    assert r.status_code == 200, r.text
    resumed = await wait_for_status(api, cid, "active")
    assert resumed["status"] == "active" and resumed["statusReason"] == "budget_available"

    # Reaching the total cap (and the new daily cap) pauses it again. Alerts are recorded
    # once per cap and window: the raised daily cap gets its own.
    await send(api, [event(cid, "cost", {"amount": 1.5, "category": "llm"})])
    again = await wait_for_status(api, cid, "paused")
    assert again["statusReason"] == "budget_exhausted"
    await drained(app)
    await app.state.analytics.refresher.tick(sweep=True)
    alerts = await _events(pool, cid, "budget.")
    exhausted = sorted((e["data"]["cap"], e["data"]["limit"]) for e in alerts if e["type"] == "budget.exhausted")
    assert exhausted == [("daily", 8), ("daily", 10), ("total", 10)]
    keys = [(e["type"], e["data"]["cap"], e["data"]["limit"], e["data"].get("threshold")) for e in alerts]
    assert len(keys) == len(set(keys)) == 9
    analytics = (await api.get(f"/api/campaigns/{cid}/analytics")).json()["analytics"]
    assert analytics["budget"]["exhausted"] == "total" and analytics["budget"]["spent"] == 10


async def test_goal_progress_is_kept_and_achievements_recorded_once(api: httpx.AsyncClient, app, pool):
    goals = [
        {"id": "leads-today", "type": "leads", "target": 2, "timeframe": "daily"},
        {"id": "first-sale", "type": "conversions", "target": 1, "timeframe": "campaign"},
        {"id": "revenue", "type": "revenue", "target": 100, "timeframe": "monthly"},
        {"id": "calls", "type": "calls", "target": 3, "timeframe": "weekly"},
        {"id": "engaged", "type": "engagement", "target": 3, "timeframe": "campaign"},
    ]
    c = (await api.post("/api/campaigns", json={"name": "Goals", "type": "hybrid", "channel": "multi",
                                                "timezone": "America/Los_Angeles", "goals": goals})).json()
    cid = c["campaign"]["id"]
    await send(api, call(cid, lead=80))
    await drained(app)
    progress = {g["id"]: g for g in (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["goals"]}
    assert progress["leads-today"]["current"] == 1 and progress["leads-today"]["achieved"] is False
    assert progress["calls"]["current"] == 1 and progress["engaged"]["current"] == 1
    assert await _events(pool, cid, "goal.") == []

    await send(api, call(cid, lead=90, revenue=150) + call(cid) + [event(cid, "widget.click")])
    await drained(app)
    progress = {g["id"]: g for g in (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["goals"]}
    assert all(g["achieved"] for g in progress.values()), progress
    assert progress["revenue"]["current"] == 150 and progress["engaged"]["current"] == 4

    await send(api, call(cid, lead=70, revenue=10))
    await drained(app)
    await app.state.analytics.refresher.tick(sweep=True)
    achieved = await _events(pool, cid, "goal.achieved")
    assert sorted(e["data"]["goalId"] for e in achieved) == sorted(g["id"] for g in goals)
    first_sale = next(e for e in achieved if e["data"]["goalId"] == "first-sale")
    assert first_sale["data"]["target"] == 1 and first_sale["data"]["current"] >= 1

    # Raising a target keeps the progress; the goal is simply not achieved any more.
    stored = (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["goals"]
    raised = [{**g, "target": 10} if g["id"] == "leads-today" else g for g in stored]
    r = await api.put(f"/api/campaigns/{cid}/configuration", json={"goals": raised})
    g = {g["id"]: g for g in r.json()["campaign"]["goals"]}["leads-today"]
    assert g["current"] == 3 and g["achieved"] is False

    report = (await api.get(f"/api/campaigns/{cid}/analytics")).json()["analytics"]
    leads_today = {g["id"]: g for g in report["goals"]}["leads-today"]
    assert leads_today["current"] == 3 and leads_today["target"] == 10 and leads_today["windowEnd"]
    assert "10 leads today" in leads_today["message"]


async def test_each_qualified_lead_is_a_platform_event(api: httpx.AsyncClient, app, pool, campaign: dict):
    cid = campaign["id"]
    leads = [event(cid, "lead.qualified", {"score": 60 + i}, subjectId=f"person-{i}", callId=f"c{i}") for i in range(3)]
    await send(api, leads)
    await send(api, leads)  # again: nothing new
    await drained(app)
    created = await _events(pool, cid, "lead.created")
    assert [e["data"]["eventId"] for e in created] == [e["id"] for e in leads]
    assert [e["data"]["subjectId"] for e in created] == ["person-0", "person-1", "person-2"]
    seqs = [e["seq"] for e in created]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
