"""The operational endpoints: /metrics behind a token when one is set, its cross-tenant
gauge not recomputed on every scrape, and the API's documentation pages switchable off."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager

import httpx

from campaigns.api.app import create_app
from campaigns.settings import Settings
from tests.support.campaigns import CAMPAIGN
from tests.support.servers import another_app


@asynccontextmanager
async def serving_app(settings: Settings):
    async with another_app(settings) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops.test") as client:
            yield client


async def test_metrics_need_their_token_when_one_is_set(settings: Settings, worker):
    async with serving_app(settings.model_copy(update={"metrics_token": "scrape-me"})) as client:
        r = await client.get("/metrics")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        r = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert r.status_code == 200 and "campaigns{" in r.text


def drafts(text: str) -> float:
    return float(re.search(r'^campaigns\{status="draft"\} (\S+)$', text, re.M).group(1))


async def test_the_campaign_gauge_is_reused_between_scrapes(anonymous: httpx.AsyncClient, api: httpx.AsyncClient):
    """Counting campaigns of every organization on each hit let anyone load Postgres."""
    before = drafts((await anonymous.get("/metrics")).text)
    assert (await api.post("/api/campaigns", json=CAMPAIGN)).status_code == 201
    assert drafts((await anonymous.get("/metrics")).text) == before  # not counted again yet


async def test_documentation_can_be_switched_off():
    app = create_app(Settings(_env_file=None, api_docs=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops.test") as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
    on = create_app(Settings(_env_file=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=on), base_url="http://ops.test") as client:
        assert (await client.get("/openapi.json")).status_code == 200
