"""`campaigns simulate` against the real services: traffic for active campaigns only,
recorded through the ingestion, with a progress line."""

from __future__ import annotations

import asyncio
import io
import uuid

from campaigns.simulator import repository
from campaigns.simulator.progress import Progress
from campaigns.simulator.run import generate
from campaigns.simulator.traffic import Traffic
from tests.support.campaigns import CAMPAIGN
from tests.support.polling import eventually


async def test_only_active_campaigns_without_closed_windows_take_calls(api, pool):
    active = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    draft = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    assert (await api.post(f"/api/campaigns/{active['id']}/activate")).status_code == 200
    ids = {str(c.id) for c in await repository.taking_calls(pool)}
    assert active["id"] in ids and draft["id"] not in ids
    assert (await api.post(f"/api/campaigns/{active['id']}/pause")).status_code == 200
    assert active["id"] not in {str(c.id) for c in await repository.taking_calls(pool)}


async def test_traffic_reaches_the_analytics(api, pool, settings):
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "channel": "multi"})).json()["campaign"]
    assert (await api.post(f"/api/campaigns/{c['id']}/activate")).status_code == 200
    out = io.StringIO()
    stop = asyncio.Event()
    traffic = Traffic(rate=40, time_scale=200, seed=3)
    task = asyncio.create_task(generate(settings, traffic, Progress(40, lines=True, out=out, every_s=0.5), stop))
    cid = uuid.UUID(c["id"])

    async def recorded() -> bool:
        n = await pool.fetchval("SELECT count(*) FROM analytics_events WHERE campaign_id = $1", cid)
        return n > 20

    try:
        await eventually(recorded, "more than 20 events recorded", within=30)
    finally:
        stop.set()
        await task
    assert traffic.totals.events_sent > 20 and traffic.totals.events_rejected == 0
    assert "calls" in out.getvalue() and "leads" in out.getvalue()

    async def counted():
        campaign = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
        return campaign if campaign["performance"]["totalCalls"] > 0 else None

    campaign = await eventually(counted, "calls in the campaign's performance")
    assert campaign["costTracking"]["totalCost"] > 0


async def test_callers_of_a_campaign_under_test_are_assigned_to_its_variants(api, pool, settings):
    c = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    assert (await api.post(f"/api/campaigns/{c['id']}/activate")).status_code == 200
    r = await api.post(f"/api/campaigns/{c['id']}/ab-test", json={
        "name": "Greeting", "variants": [{"name": "Control"}, {"name": "Short", "overrides": {"flowId": "short"}}],
        "primaryMetric": "conversionRate", "sampleSize": 5000, "minDurationDays": 0,
    })
    assert r.status_code == 201, r.text
    test = r.json()["test"]
    stop = asyncio.Event()
    traffic = Traffic(rate=60, time_scale=200, seed=5)
    task = asyncio.create_task(generate(settings, traffic, Progress(60, lines=True, out=io.StringIO()), stop))
    cid = uuid.UUID(c["id"])

    async def recorded():
        rows = await pool.fetch(
            "SELECT subject_id, variant_id FROM analytics_events WHERE campaign_id = $1 AND type = 'call.started'",
            cid)
        return rows if len(rows) >= 30 else None

    try:
        rows = await eventually(recorded, "30 calls started", within=30)
    finally:
        stop.set()
        await task
    # Every caller is in a variant, the one the assign endpoint gives, and both variants get traffic.
    assert {r["variant_id"] for r in rows} == {v["id"] for v in test["variants"]}
    for row in rows[:10]:
        a = await api.post(f"/api/campaigns/{c['id']}/ab-test/{test['id']}/assign", json={"subjectId": row["subject_id"]})
        assert a.json()["assignment"]["variantId"] == row["variant_id"]
