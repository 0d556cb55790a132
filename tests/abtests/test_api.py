"""The A/B testing API: create (every error listed), list, get, results, assign, stop,
evaluations and the sample-size calculator; another organization's tests are never reachable."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter

import httpx
import pytest
from scipy import stats as sps

from campaigns.messages import search_attributes as sa
from tests.support import abtests as data
from tests.support import analytics
from tests.support.abtests import TEST, create_test
from tests.support.campaigns import CAMPAIGN, fields


async def assign(api: httpx.AsyncClient, path: str, subject_id: str) -> dict:
    """One assignment, waiting out the key's rate limit (many in a row on a fast machine)."""
    while (r := await api.post(path, json={"subjectId": subject_id})).status_code == 429:
        await asyncio.sleep(float(r.headers["retry-after"]))
    assert r.status_code == 200, r.text
    return r.json()["assignment"]


# --- Create ------------------------------------------------------------------------------


async def test_create_starts_a_test_as_a_child_of_the_campaign_workflow(api, campaign, temporal_client):
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", json=TEST)
    assert r.status_code == 201, r.text
    t = r.json()["test"]
    assert r.headers["location"] == f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}"
    assert t["status"] == "running" and t["mode"] == "sequential" and t["type"] == "ab"
    assert [v["weight"] for v in t["variants"]] == [0.5, 0.5]
    assert [v["control"] for v in t["variants"]] == [True, False]
    assert t["variants"][1]["overrides"] == TEST["variants"][1]["overrides"]
    assert t["plannedSampleSize"] == 2000 and t["confidenceLevel"] == 0.95
    description = await temporal_client.get_workflow_handle(t["workflowId"]).describe()
    assert description.raw_description.workflow_execution_info.parent_execution.workflow_id == \
        f"campaign-{campaign['id']}"
    assert description.typed_search_attributes.get(sa.ORGANIZATION) == campaign["organizationId"]
    audit = (await api.get(f"/api/campaigns/{campaign['id']}/audit")).json()["audit"]
    assert audit[-1]["action"] == "ab_test_started" and audit[-1]["changes"]["testId"] == t["id"]


async def test_create_lists_every_error(api, campaign):
    body = {
        "name": "",
        "type": "ab",
        "variants": [
            {"name": "A", "weight": 0},
            {"name": "a", "overrides": {"voiceSettings": {"speakingRate": 3, "ttsVoice": "aura-2-nestor-es"}}},
            {"name": "C", "overrides": {"voiceSettings": {"colour": "red"}}},
        ],
        "primaryMetric": "averageCallDuration",
        "guardrailMetrics": ["averageCallDuration"],
        "confidenceLevel": 2,
        "mode": "fixed",
        "minimumDetectableEffect": 0.1,
    }
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", json=body)
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    got = fields(r)
    assert "name" in got and "variants[0].weight" in got and "confidenceLevel" in got
    assert "exactly 2 variants" in got["variants"]
    assert "repeats the name" in got["variants[1].name"]
    assert "1.2" in got["variants[1].overrides.voiceSettings.speakingRate"]
    assert got["variants[2].overrides.voiceSettings.colour"] == "unknown field"
    assert "no natural direction" in got["primaryMetric"]
    assert "already the primary metric" in got["guardrailMetrics[0].metric"]
    assert "needs its sample size before it starts" in got["sampleSize"]


async def test_overrides_are_checked_against_the_campaign(api, campaign):
    # The campaign speaks en-US; a Spanish-only voice does not fit it.
    body = {**TEST, "variants": [{"name": "C"}, {"name": "S", "overrides": {"voiceSettings": {
        "ttsVoice": "aura-2-nestor-es"}}}]}
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", json=body)
    assert r.status_code == 400
    assert "does not speak" in fields(r)["variants[1].overrides.voiceSettings"]


async def test_bad_json_and_wrong_shapes_are_400(api, campaign):
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", content=b"{nope", headers={
        "content-type": "application/json"})
    assert r.status_code == 400
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", json=[1, 2])
    assert r.status_code == 400


async def test_one_running_test_per_campaign(api, campaign):
    first = await create_test(api, campaign["id"])
    r = await api.post(f"/api/campaigns/{campaign['id']}/ab-test", json=TEST)
    assert r.status_code == 409 and r.json()["code"] == "ab_test_running"
    assert r.json()["details"]["testId"] == first["id"]


async def test_drafts_and_archived_campaigns_cannot_start_tests(api):
    c = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    r = await api.post(f"/api/campaigns/{c['id']}/ab-test", json=TEST)
    assert r.status_code == 409 and r.json()["code"] == "campaign_not_testable"
    assert r.json()["details"] == {"status": "draft"}
    assert (await api.post(f"/api/campaigns/{c['id']}/archive")).status_code in (404, 405)  # not an action
    assert (await api.delete(f"/api/campaigns/{c['id']}")).status_code == 200
    r = await api.post(f"/api/campaigns/{c['id']}/ab-test", json=TEST)
    assert r.status_code == 409 and r.json()["code"] == "campaign_not_testable"


# --- Reading -----------------------------------------------------------------------------


async def test_list_and_get(api, campaign):
    t = await create_test(api, campaign["id"])
    got = (await api.get(f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}")).json()["test"]
    assert got["id"] == t["id"] and got["status"] == "running"
    listed = (await api.get(f"/api/campaigns/{campaign['id']}/ab-tests")).json()
    assert listed["total"] == 1 and listed["tests"][0]["id"] == t["id"]
    assert (await api.get(f"/api/campaigns/{campaign['id']}/ab-tests?status=concluded")).json()["total"] == 0
    assert (await api.get(f"/api/campaigns/{campaign['id']}/ab-tests?status=nope")).status_code == 400


async def test_another_organization_reaches_nothing(api, other_api, campaign):
    t = await create_test(api, campaign["id"])
    base = f"/api/campaigns/{campaign['id']}"
    test = f"{base}/ab-test/{t['id']}"
    for method, path, body in [
        ("POST", f"{base}/ab-test", TEST),
        ("GET", f"{base}/ab-tests", None),
        ("GET", test, None),
        ("GET", f"{test}/results", None),
        ("POST", f"{test}/assign", {"subjectId": "x"}),
        ("POST", f"{test}/stop", {}),
        ("GET", f"{test}/evaluations", None),
    ]:
        r = await other_api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    # …and its own campaign cannot name this test.
    mine = (await other_api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    r = await other_api.get(f"/api/campaigns/{mine['id']}/ab-test/{t['id']}")
    assert r.status_code == 404 and r.json()["code"] == "ab_test_not_found"
    assert (await api.get(test)).json()["test"]["status"] == "running"  # the stop did not happen


async def test_anonymous_is_401(anonymous, campaign):
    r = await anonymous.post("/api/ab-tests/sample-size", json={"baseline": 0.1, "minimumDetectableEffect": 0.2})
    assert r.status_code == 401


# --- Assignment ----------------------------------------------------------------------------


async def test_assignment_is_deterministic_and_follows_the_weights(api, campaign):
    t = await create_test(api, campaign["id"], type="multivariate", variants=[
        {"name": "Control", "weight": 50}, {"name": "B", "weight": 30,
                                            "overrides": {"voiceSettings": {"qualificationThreshold": 55}}},
        {"name": "C", "weight": 20, "overrides": {"flowId": "flow-c"}}])
    path = f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/assign"
    first = (await api.post(path, json={"subjectId": "+15551234567"})).json()["assignment"]
    again = (await api.post(path, json={"subjectId": "+15551234567"})).json()["assignment"]
    assert first == again
    ids = [v["id"] for v in t["variants"]]

    async def variant(i: int) -> str:
        return (await assign(api, path, f"subject-{i}"))["variantId"]

    n = 300
    counts = Counter([await variant(i) for i in range(n)])
    observed = [counts[i] for i in ids]
    assert sps.chisquare(observed, [n * 0.5, n * 0.3, n * 0.2]).pvalue > 0.001
    # The configuration to use: the campaign's, with the variant's overrides.
    by_variant = {}
    for i in range(40):
        a = await assign(api, path, f"subject-{i}")
        by_variant[a["variantName"]] = a
    assert by_variant["B"]["configuration"]["voiceSettings"]["qualificationThreshold"] == 55
    assert by_variant["B"]["configuration"]["voiceSettings"]["speakingRate"] == 1.0
    assert by_variant["C"]["configuration"]["flowId"] == "flow-c"
    assert by_variant["Control"]["configuration"]["flowId"] == "flow-1" and by_variant["Control"]["isControl"]


async def test_assignment_validates_the_subject(api, campaign):
    t = await create_test(api, campaign["id"])
    path = f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/assign"
    r = await api.post(path, json={"subjectId": ""})
    assert r.status_code == 400 and "subjectId" in fields(r)
    r = await api.post(path, json={})
    assert r.status_code == 400 and "subjectId" in fields(r)


# --- Stop ---------------------------------------------------------------------------------


async def test_stop_concludes_stops_assignment_and_records_the_event(api, campaign, pool):
    t = await create_test(api, campaign["id"])
    base = f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}"
    r = await api.post(f"{base}/stop", json={"reason": "wrong audience"})
    assert r.status_code == 200, r.text
    stopped = r.json()["test"]
    assert stopped["status"] == "concluded" and stopped["conclusion"] == "stopped"
    assert stopped["conclusionReason"] == "wrong audience" and stopped["concludedAt"]
    r = await api.post(f"{base}/assign", json={"subjectId": "late"})
    assert r.status_code == 409 and r.json()["code"] == "ab_test_concluded"
    r = await api.post(f"{base}/stop")
    assert r.status_code == 409 and r.json()["code"] == "ab_test_concluded"
    events = await pool.fetch("SELECT type, data FROM platform_events WHERE campaign_id = $1 ORDER BY seq",
                              uuid.UUID(campaign["id"]))
    concluded = [e for e in events if e["type"] == "ab_test.concluded"]
    assert len(concluded) == 1
    assert concluded[0]["data"]["conclusion"] == "stopped" and concluded[0]["data"]["testId"] == t["id"]
    assert concluded[0]["data"]["concludedBy"]["kind"] == "api_key"
    # A new test may start now.
    await create_test(api, campaign["id"])


# --- Results -------------------------------------------------------------------------------


async def test_results_from_the_rollups(api, campaign, pool):
    t = await create_test(api, campaign["id"], secondaryMetrics=["revenuePerCall"],
                          guardrailMetrics=["callFailureRate"])
    control, warm = (v["id"] for v in t["variants"])
    await data.calls(pool, campaign["id"], control, 3000, 300, calls_failed=30, revenue_micros=300 * 50e6,
                     revenue_sq=300 * 2500.0)
    await data.calls(pool, campaign["id"], warm, 3000, 420, calls_failed=31, revenue_micros=420 * 50e6,
                     revenue_sq=420 * 2500.0)
    r = await api.get(f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/results")
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res["status"] == "running" and res["valid"] and res["method"].startswith("always-valid")
    assert res["srm"]["checked"] and not res["srm"]["detected"]
    assert res["gates"]["minCallsMet"] and res["gates"]["callsPerVariant"] == 3030
    by_id = {v["variantId"]: v for v in res["variantResults"]}
    assert by_id[control]["isControl"] and by_id[control]["comparisons"] == []
    assert by_id[control]["metrics"]["conversionRate"]["value"] == pytest.approx(0.1)
    primary = next(c for c in by_id[warm]["comparisons"] if c["role"] == "primary")
    assert primary["absoluteLift"]["estimate"] == pytest.approx(0.04)
    assert primary["relativeLift"]["estimate"] == pytest.approx(0.4)
    assert primary["outcome"] == "better" and primary["pValue"] < 0.001
    assert primary["chanceToBeatControl"] > 0.99
    revenue = next(c for c in by_id[warm]["comparisons"] if c["metric"] == "revenuePerCall")
    assert revenue["treatment"] == pytest.approx(420 * 50 / 3000)
    assert res["verdict"]["conclusion"] == "winner" and res["verdict"]["winnerVariantId"] == warm
    assert res["winner"] is None  # not concluded yet: the workflow decides at its next evaluation
    assert any("Warm: conversionRate 14.00% against 10.00%" in line for line in res["insights"])


async def test_results_before_any_data(api, campaign):
    t = await create_test(api, campaign["id"])
    res = (await api.get(f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/results")).json()["results"]
    assert res["verdict"]["conclusion"] is None
    assert not res["gates"]["minCallsMet"] and not res["srm"]["checked"]
    assert all(c["pValue"] is None for v in res["variantResults"] for c in v["comparisons"])


async def test_fixed_mode_results_say_they_are_not_valid_yet(api, campaign, pool):
    t = await create_test(api, campaign["id"], mode="fixed", sampleSize=5000)
    control, warm = (v["id"] for v in t["variants"])
    await data.calls(pool, campaign["id"], control, 1000, 100)
    await data.calls(pool, campaign["id"], warm, 1000, 160)
    res = (await api.get(f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/results")).json()["results"]
    assert res["valid"] is False
    assert "valid only once every variant has 5000 calls" in res["insights"][0]
    assert res["verdict"]["conclusion"] is None


async def test_sample_ratio_mismatch_in_results(api, campaign, pool):
    t = await create_test(api, campaign["id"])
    control, warm = (v["id"] for v in t["variants"])
    await data.calls(pool, campaign["id"], control, 3000, 300)
    await data.calls(pool, campaign["id"], warm, 2500, 400)
    res = (await api.get(f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}/results")).json()["results"]
    assert res["srm"]["detected"] and res["srm"]["pValue"] < 0.001
    assert res["srm"]["expected"][control] == pytest.approx(2750)
    assert res["verdict"]["conclusion"] == "invalid" and "sample ratio mismatch" in res["verdict"]["reason"]
    assert "Fix assignment" in res["recommendations"][0]


# --- Sample size ------------------------------------------------------------------------------


async def test_sample_size_calculator(api):
    r = await api.post("/api/ab-tests/sample-size", json={
        "baseline": 0.10, "minimumDetectableEffect": 0.2, "power": 0.8, "dailyTraffic": 1000, "mode": "fixed"})
    assert r.status_code == 200, r.text
    s = r.json()["sampleSize"]
    assert s["callsPerVariant"] == 3841 and s["fixedHorizonCallsPerVariant"] == 3841
    assert s["totalCalls"] == 7682 and s["daysNeeded"] == 8
    assert s["absoluteEffect"] == pytest.approx(0.02)
    seq = (await api.post("/api/ab-tests/sample-size", json={
        "baseline": 0.10, "minimumDetectableEffect": 0.2, "dailyTraffic": 1000})).json()["sampleSize"]
    assert seq["callsPerVariant"] == seq["sequentialCallsPerVariant"] > 3841
    assert seq["sequentialInflation"] == pytest.approx(seq["sequentialCallsPerVariant"] / 3841, rel=1e-3)
    means = (await api.post("/api/ab-tests/sample-size", json={
        "metricType": "mean", "baseline": 10, "standardDeviation": 5, "minimumDetectableEffect": 1,
        "effectType": "absolute", "mode": "fixed", "variants": 3})).json()["sampleSize"]
    z = sps.norm.ppf(1 - 0.025 / 2) + sps.norm.ppf(0.8)
    assert means["callsPerVariant"] == math.ceil(2 * 25 * z * z) and means["daysNeeded"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"baseline": 1.2, "minimumDetectableEffect": 0.1}, "baseline"),
        ({"baseline": 0.9, "minimumDetectableEffect": 0.5}, "minimumDetectableEffect"),
        ({"metricType": "mean", "baseline": 10, "minimumDetectableEffect": 0.1}, "standardDeviation"),
        ({"baseline": 0.1, "minimumDetectableEffect": 0.1, "power": 2}, "power"),
        ({"baseline": 0.1, "minimumDetectableEffect": -1}, "minimumDetectableEffect"),
        ({"baseline": 0.1, "minimumDetectableEffect": 0.1, "variants": 11}, "variants"),
        ({"minimumDetectableEffect": 0.1}, "baseline"),
    ],
)
async def test_sample_size_refuses_bad_input(api, body, field):
    r = await api.post("/api/ab-tests/sample-size", json=body)
    assert r.status_code == 400, r.text
    assert field in fields(r)


async def test_results_from_ingested_events(api, app, campaign):
    """The whole path: assign subjects, send their calls' events with the variantId the
    assignment gave, and read the results from what ingestion aggregated."""
    t = await create_test(api, campaign["id"], secondaryMetrics=["costPerLead", {"metric": "averageCallDuration", "direction": "increase"}],
                          minCallsPerVariant=1)
    path = f"/api/campaigns/{campaign['id']}/ab-test/{t['id']}"
    events, expected = [], Counter()
    for i in range(40):
        a = (await api.post(f"{path}/assign", json={"subjectId": f"caller-{i}"})).json()["assignment"]
        converts = (i % 3 == 0) if a["isControl"] else (i % 2 == 0)
        expected[a["variantId"], "calls"] += 1
        expected[a["variantId"], "conversions"] += converts
        events += analytics.call(campaign["id"], duration=60 + i, lead=70 if converts else None,
                                 revenue=100 if converts else None, cost=0.5, variantId=a["variantId"],
                                 subjectId=f"caller-{i}")
    assert (await analytics.send(api, events))["accepted"] == len(events)
    await analytics.drained(app)
    res = (await api.get(f"{path}/results")).json()["results"]
    for v in res["variantResults"]:
        conversion = v["metrics"]["conversionRate"]
        assert conversion["n"] == expected[v["variantId"], "calls"] == v["calls"]
        assert conversion["value"] == pytest.approx(expected[v["variantId"], "conversions"] / v["calls"])
        assert v["metrics"]["costPerLead"]["value"] == pytest.approx(
            0.5 * v["calls"] / expected[v["variantId"], "conversions"])
    assert res["srm"]["observed"] == {v: expected[v, "calls"] for v in (x["id"] for x in t["variants"])}
