"""The A/B test's workflow: a child of its campaign's, evaluating on a timer, recording each
evaluation and concluding by itself — winner (with promotion), invalid, harm, max_duration —
or stopped when its campaign ends; bandit mode re-weights traffic. Evaluations every 5 s."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from campaigns.activities.abtest import ABTestActivities
from campaigns.messages.abtest import ABTestState, EvaluateRequest
from campaigns.worker import sandbox_runner
from campaigns.workflows.abtest import ABTestWorkflow
from tests.support import abtests as data
from tests.support.abtests import TEST
from tests.support.campaigns import activated
from tests.support.polling import eventually

FAST = {**TEST, "evaluationIntervalSeconds": 5, "minDurationDays": 0, "minCallsPerVariant": 100}


@pytest.fixture(autouse=True)
async def rollups(pool, api):
    api.pool = pool  # for `concluded`


async def start(api: httpx.AsyncClient, campaign_id: str, **changes) -> dict:
    r = await api.post(f"/api/campaigns/{campaign_id}/ab-test", json={**FAST, **changes})
    assert r.status_code == 201, r.text
    return r.json()["test"]


async def concluded(api: httpx.AsyncClient, campaign_id: str, test_id: str, within: float = 60) -> dict:
    """The test once its workflow has finished concluding it (promotion and event included)."""
    pool = api.pool  # type: ignore[attr-defined]

    async def read() -> tuple[dict, bool]:
        t = (await api.get(f"/api/campaigns/{campaign_id}/ab-test/{test_id}")).json()["test"]
        announced = t["status"] == "concluded" and bool(await pool.fetchval(
            "SELECT count(*) FROM platform_events WHERE type = 'ab_test.concluded' AND data->>'testId' = $1", test_id))
        return t, announced

    t, _ = await eventually(read, f"test {test_id} concluded and announced", until=lambda got: got[1],
                            within=within, every=0.5)
    return t


async def events(pool, campaign_id: str, type_: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM platform_events WHERE campaign_id = $1 AND type = $2 ORDER BY seq",
                            uuid.UUID(campaign_id), type_)
    return [r["data"] for r in rows]


async def test_winner_is_concluded_promoted_audited_and_announced(api, pool, temporal_client):
    c = await activated(api)
    t = await start(api, c["id"], autoPromoteWinner=True)
    control, warm = (v["id"] for v in t["variants"])
    await data.calls(pool, c["id"], control, 3000, 300)
    await data.calls(pool, c["id"], warm, 3000, 420)

    done = await concluded(api, c["id"], t["id"])
    assert done["conclusion"] == "winner" and done["winnerVariantId"] == warm
    assert "Warm beats control on conversionRate by +40.0%" in done["conclusionReason"]
    assert done["promotion"]["promoted"] is True and done["promotion"]["variantId"] == warm
    campaign = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
    assert campaign["voiceSettings"]["customGreeting"] == "Hi there!"
    assert campaign["voiceSettings"]["speakingStyle"] == "friendly"
    assert campaign["voiceSettings"]["speakingRate"] == 1.0  # the rest of the configuration is kept

    audit = (await api.get(f"/api/campaigns/{c['id']}/audit")).json()["audit"]
    promotion = next(a for a in audit if a["action"] == "configuration_changed")
    assert promotion["actor"] == {"kind": "system", "id": t["id"], "name": "ab-test-promotion"}
    assert promotion["changes"]["voiceSettings.customGreeting"] == {"from": None, "to": "Hi there!"}
    assert any(a["action"] == "ab_test_concluded" and a["changes"]["conclusion"] == "winner" for a in audit)

    [event] = await events(pool, c["id"], "ab_test.concluded")
    assert event["conclusion"] == "winner" and event["winnerVariantId"] == warm and event["promoted"] is True
    assert event["concludedBy"]["kind"] == "system"
    evaluations = (await api.get(f"/api/campaigns/{c['id']}/ab-test/{t['id']}/evaluations")).json()
    assert evaluations["total"] >= 1 and evaluations["evaluations"][0]["conclusion"] == "winner"
    assert evaluations["evaluations"][0]["summary"]["comparisons"][0]["outcome"] == "better"
    results = (await api.get(f"/api/campaigns/{c['id']}/ab-test/{t['id']}/results")).json()["results"]
    assert results["winner"] == warm and "promoted" in results["recommendations"][0]
    r = await api.post(f"/api/campaigns/{c['id']}/ab-test/{t['id']}/assign", json={"subjectId": "late"})
    assert r.status_code == 409 and r.json()["details"]["promoted"] is True

    # The workflow's history replays deterministically.
    handle = temporal_client.get_workflow_handle(t["workflowId"], result_type=ABTestState)
    final = await handle.result()
    assert final.conclusion == "winner" and final.promoted and final.evaluations >= 1
    replayer = Replayer(workflows=[ABTestWorkflow], data_converter=pydantic_data_converter,
                        workflow_runner=sandbox_runner())
    await replayer.replay_workflow(await handle.fetch_history())


async def test_the_other_conclusions(api, pool):
    """Sample-ratio mismatch, harm, futility and max_duration, side by side (they wait on the
    same clock)."""

    async def srm() -> None:
        c = await activated(api)
        t = await start(api, c["id"], autoPromoteWinner=True)
        control, warm = (v["id"] for v in t["variants"])
        await data.calls(pool, c["id"], control, 3000, 300)
        await data.calls(pool, c["id"], warm, 2400, 420)  # better, but the split is broken
        done = await concluded(api, c["id"], t["id"])
        assert done["conclusion"] == "invalid" and done["winnerVariantId"] is None
        assert "sample ratio mismatch" in done["conclusionReason"] and done["promotion"] is None

    async def harm() -> None:
        c = await activated(api)
        t = await start(api, c["id"], guardrailMetrics=["customerSatisfaction"])
        control, warm = (v["id"] for v in t["variants"])
        sat = lambda n, mean: {"satisfaction_count": n, "satisfaction_sum": n * mean,  # noqa: E731
                               "satisfaction_sq": n * (mean * mean + 0.64)}
        await data.calls(pool, c["id"], control, 3000, 300, **sat(2000, 4.3))
        await data.calls(pool, c["id"], warm, 3000, 310, **sat(2000, 3.8))
        done = await concluded(api, c["id"], t["id"])
        assert done["conclusion"] == "harm" and "harms guardrail customerSatisfaction" in done["conclusionReason"]

    async def out_of_time() -> None:
        c = await activated(api)
        t = await start(api, c["id"], maxDurationDays=0.0001)  # 8.64 s
        done = await concluded(api, c["id"], t["id"])
        assert done["conclusion"] == "max_duration"
        assert "waiting for 100 calls per variant" in done["conclusionReason"]

    async def futility() -> None:
        c = await activated(api)
        t = await start(api, c["id"], sampleSize=1000)
        control, warm = (v["id"] for v in t["variants"])
        await data.calls(pool, c["id"], control, 3000, 300)
        await data.calls(pool, c["id"], warm, 3000, 306)
        done = await concluded(api, c["id"], t["id"])
        assert done["conclusion"] == "no_difference" and "planned 1000 calls" in done["conclusionReason"]

    await asyncio.gather(srm(), harm(), futility(), out_of_time())


async def test_a_test_stops_when_its_campaign_ends(api, pool):
    c = await activated(api)
    t = await start(api, c["id"])
    assert (await api.post(f"/api/campaigns/{c['id']}/end")).status_code == 200
    # Nobody is assigned once the campaign has ended, even before the test's next evaluation.
    r = await api.post(f"/api/campaigns/{c['id']}/ab-test/{t['id']}/assign", json={"subjectId": "s"})
    assert r.status_code == 409 and r.json()["code"] in ("campaign_ended", "ab_test_concluded"), r.text
    done = await concluded(api, c["id"], t["id"])
    assert done["conclusion"] == "stopped" and done["conclusionReason"] == "the campaign was ended"


async def test_promotion_refused_when_the_campaign_no_longer_fits(api, pool):
    c = await activated(api)
    t = await start(api, c["id"], autoPromoteWinner=True, variants=[
        {"name": "Control"}, {"name": "English voice", "overrides": {"voiceSettings": {"ttsVoice": "aura-2-thalia-en"}}}])
    # Meanwhile the campaign moves to Spanish with a Spanish voice: the winner's voice no longer fits.
    r = await api.put(f"/api/campaigns/{c['id']}/configuration",
                      json={"voiceSettings": {"language": "es-ES", "ttsVoice": "aura-2-celeste-es"}})
    assert r.status_code == 200, r.text
    control, english = (v["id"] for v in t["variants"])
    await data.calls(pool, c["id"], control, 3000, 300)
    await data.calls(pool, c["id"], english, 3000, 420)
    done = await concluded(api, c["id"], t["id"])
    assert done["conclusion"] == "winner"
    assert done["promotion"]["promoted"] is False and "does not speak" in done["promotion"]["error"]
    campaign = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
    assert campaign["voiceSettings"]["ttsVoice"] == "aura-2-celeste-es"
    [event] = await events(pool, c["id"], "ab_test.concluded")
    assert event["promoted"] is False and event["promotion"]["error"]


async def test_bandit_reweights_traffic_and_keeps_subjects_where_they_were(api, pool):
    c = await activated(api)
    t = await start(api, c["id"], mode="bandit", type="multivariate", bandit={"floor": 0.1},
                    variants=[{"name": "Control"}, {"name": "B"}, {"name": "C"}], maxDurationDays=1,
                    sampleSize=50_000)
    ids = [v["id"] for v in t["variants"]]
    base = f"/api/campaigns/{c['id']}/ab-test/{t['id']}"
    before = {s: (await api.post(f"{base}/assign", json={"subjectId": s})).json()["assignment"]["variantId"]
              for s in (f"early-{i}" for i in range(30))}
    for variant, conversions in zip(ids, (200, 230, 190), strict=True):
        await data.calls(pool, c["id"], variant, 2000, conversions)

    async def current_weights() -> dict[str, float]:
        return {v["id"]: v["currentWeight"] for v in (await api.get(base)).json()["test"]["variants"]}

    weights = await eventually(current_weights, "the bandit to favour B", until=lambda w: w[ids[1]] > 0.5,
                               within=40, every=0.5)
    assert weights[ids[1]] > 0.5 and min(weights.values()) >= 0.1
    assert sum(weights.values()) == pytest.approx(1)
    after = {s: (await api.post(f"{base}/assign", json={"subjectId": s})).json()["assignment"]["variantId"]
             for s in before}
    assert after == before  # sticky, although the weights moved
    epochs = await pool.fetchval("SELECT count(*) FROM ab_test_weight_epochs WHERE test_id = $1", uuid.UUID(t["id"]))
    assert epochs >= 2
    results = (await api.get(f"{base}/results")).json()["results"]
    assert results["srm"]["observed"][ids[0]] + results["srm"]["observed"][ids[1]] + \
        results["srm"]["observed"][ids[2]] == 30
    assert [v["probabilityBest"] for v in results["variantResults"]][1] > 0.5
    assert (await api.post(f"{base}/stop")).status_code == 200


async def test_evaluate_is_idempotent(api, pool, temporal_client, settings):
    """A retried evaluation answers what the first attempt recorded, even if the data moved."""
    c = await activated(api)
    t = await start(api, c["id"], evaluationIntervalSeconds=3600, sampleSize=20_000)
    control, warm = (v["id"] for v in t["variants"])
    await data.calls(pool, c["id"], control, 3000, 300)
    await data.calls(pool, c["id"], warm, 3000, 330)
    activities = ABTestActivities(pool, temporal_client, settings)
    from datetime import UTC, datetime

    request = EvaluateRequest(test_id=t["id"], seq=1, at=datetime.now(UTC))
    first = await activities.evaluate(request)
    await data.calls(pool, c["id"], warm, 3000, 900)  # would now be a clear winner
    again = await activities.evaluate(request)
    assert again.conclusion == first.conclusion is None and again.reason == first.reason
    assert await pool.fetchval("SELECT count(*) FROM ab_test_evaluations WHERE test_id = $1",
                               uuid.UUID(t["id"])) == 1
    missing = await activities.evaluate(EvaluateRequest(test_id=str(uuid.uuid4()), seq=1, at=datetime.now(UTC)))
    assert missing.found is False
    await api.post(f"/api/campaigns/{c['id']}/ab-test/{t['id']}/stop")
