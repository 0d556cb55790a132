"""Inputs that used to be server errors (found by fuzzing) are the client's fault: 400,
naming the field."""

from __future__ import annotations

import httpx
import pytest

from tests.support.analytics import event


def fields(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 400, r.text
    return {d["field"]: d["reason"] for d in r.json()["details"]}


@pytest.mark.parametrize("name", ["minTotalCalls", "minQualifiedLeads"])
@pytest.mark.parametrize("value", ["9223372036854775808", "405451527430310068224", "-1"])
async def test_counts_past_int64_are_refused(api: httpx.AsyncClient, name, value):
    """They overflowed the driver's int64 (a 500)."""
    assert f"query.{name}" in fields(await api.get("/api/campaigns", params={name: value}))
    assert (await api.get("/api/campaigns", params={name: "9223372036854775807"})).status_code == 200


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
@pytest.mark.parametrize("name", ["maxCostPerLead", "minConversionRate"])
async def test_float_filters_are_finite(api: httpx.AsyncClient, name, value):
    assert f"query.{name}" in fields(await api.get("/api/campaigns", params={name: value}))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"baseline": 1e-308, "minimumDetectableEffect": 1e12}, "baseline"),  # was ZeroDivisionError
        ({"baseline": 0.05, "minimumDetectableEffect": 0.1, "dailyTraffic": 5e-324}, "dailyTraffic"),  # OverflowError
        ({"baseline": 0.5, "minimumDetectableEffect": 1e-9, "effectType": "absolute"}, "minimumDetectableEffect"),
        ({"metricType": "mean", "baseline": 10, "standardDeviation": 1e12, "minimumDetectableEffect": 1e-9},
         "minimumDetectableEffect"),
    ],
)
async def test_sample_sizes_too_absurd_to_compute_are_a_400(api: httpx.AsyncClient, body, field):
    assert field in fields(await api.post("/api/ab-tests/sample-size", json=body))


async def test_a_reasonable_sample_size_still_computes(api: httpx.AsyncClient):
    r = await api.post(
        "/api/ab-tests/sample-size", json={"baseline": 0.05, "minimumDetectableEffect": 0.1, "dailyTraffic": 1}
    )
    assert r.status_code == 200 and r.json()["sampleSize"]["callsPerVariant"] > 1000, r.text


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"targetAudience": {"customAttributes": {"ltv": 2**70}}}, "targetAudience.customAttributes.ltv"),
        ({"targetAudience": {"customAttributes": {"ltv": 1e300}}}, "targetAudience.customAttributes.ltv"),
        ({"targetAudience": {"behavioral": {"minPreviousCalls": 2**63}}}, "targetAudience.behavioral.minPreviousCalls"),
        ({"kpis": [{"name": "x", "metric": "roi", "target": 1e308}]}, "kpis[0].target"),
        ({"budget": {"total": 100, "alertThresholds": [1e-320]}}, "budget.alertThresholds[0]"),
    ],
)
async def test_numbers_in_a_configuration_are_bounded(api: httpx.AsyncClient, campaign: dict, config, field):
    got = fields(await api.put(f"/api/campaigns/{campaign['id']}/configuration", json=config))
    assert any(f.startswith(field) for f in got), got


async def test_nul_characters_are_refused_where_they_are(api: httpx.AsyncClient, campaign: dict):
    """Postgres cannot store them: they were a 500 wherever text reached it."""
    r = await api.post("/api/campaigns", json={"name": "a\x00b", "type": "outbound", "channel": "phone"})
    assert "name" in fields(r)
    r = await api.put(f"/api/campaigns/{campaign['id']}", json={"description": "x\x00"})
    assert "description" in fields(r)
    assert "query.q" in fields(await api.get("/api/campaigns", params={"q": "\x00"}))
    for nul in ({"id": "e\x00"}, {"subjectId": "s\x00"}, {"data": {"ms": 3, "x\x00": 1}}):
        r = await api.post("/api/events", json={"events": [event(campaign["id"], "widget.display", **nul)]})
        assert r.status_code == 400, r.text
    assert (await api.get("/api/campaigns")).json()["total"] == 1
