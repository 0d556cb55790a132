"""Long responses cannot be used to starve other tenants: exports read a page at a time
without holding a pool connection while the client reads; each organization holds a
bounded number of exports and streams open (counted in Redis, shared by every replica);
and both end when their API key is revoked."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

import httpx
import httpx_sse
import pytest

from campaigns import db
from campaigns.analytics import export
from campaigns.api.analytics.routes import KeyRevoked
from campaigns.settings import Settings
from tests.support.analytics import event, send
from tests.support.polling import eventually
from tests.support.servers import another_app, serving


async def many_events(api: httpx.AsyncClient, campaign: dict, count: int) -> None:
    start = datetime.now(UTC) - timedelta(days=2)
    for first in range(0, count, 5000):
        await send(api, [event(campaign["id"], "widget.display", {"ms": i}, at=start + timedelta(seconds=i))
                         for i in range(first, min(count, first + 5000))])


async def test_an_export_holds_no_connection_while_its_client_reads(api, campaign, settings: Settings):
    """Each page is one short query: between pages (while the client reads) every connection
    of the pool is back in it. A cursor held open would pin one for the whole download."""
    await many_events(api, campaign, 3500)
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
    try:
        chunks = export.stream(pool, campaign_id=campaign["id"], dataset="events", fmt="ndjson",
                               start=datetime(1970, 1, 1, tzinfo=UTC), end=datetime.now(UTC) + timedelta(days=1),
                               tz="UTC")
        lines = 0
        async for chunk in chunks:  # a slow client: the generator waits here between chunks
            assert pool.get_idle_size() == pool.get_size(), "a connection is held while the client reads"
            lines += chunk.count(b"\n")
        assert lines == 3500
    finally:
        await pool.close()


async def test_figures_export_in_windows_without_splitting_a_period(api, campaign, app):
    """Hourly and daily figures over a long range come in windows of whole periods: each
    period once, in order, whatever the window it falls in."""
    start = datetime.now(UTC) - timedelta(days=40)
    await send(api, [event(campaign["id"], "widget.impression", at=start + timedelta(hours=7 * i)) for i in range(130)])
    await app.state.analytics.refresher.drain()
    url = f"/api/campaigns/{campaign['id']}/analytics/export"
    for dataset, expected in (("hourly", 130), ("daily", None)):
        rows = (await api.get(url, params={"format": "json", "dataset": dataset})).json()["rows"]
        periods = [r["period"] for r in rows]
        assert periods == sorted(periods) and len(periods) == len(set(periods))
        assert sum(r["widgetImpressions"] for r in rows) == 130
        if expected:
            assert len(rows) == expected


@pytest.fixture
async def replicas(settings: Settings, worker):
    """Two API processes with small limits, each behind a real server."""
    limited = settings.model_copy(update={"max_streams_per_organization": 2, "max_exports_per_organization": 1})
    async with another_app(limited) as one, another_app(limited) as two:
        async with serving(one) as first, serving(two) as second:
            yield one, first.url, second.url


@contextlib.asynccontextmanager
async def open_stream(url: str, key: str, campaign: dict):
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        async with httpx_sse.aconnect_sse(client, "GET", f"/api/campaigns/{campaign['id']}/analytics/stream") as source:
            events = source.aiter_sse()
            first = await anext(events)
            assert first.event == "metrics"
            yield events


async def test_streams_per_organization_are_limited_across_replicas(replicas, api, other_api, campaign,
                                                                    make_api):
    _, first, second = replicas
    theirs = (await other_api.post("/api/campaigns", json={"name": "t", "type": "inbound", "channel": "web"})).json()
    async with open_stream(first, api.key, campaign), open_stream(second, api.key, campaign):
        for url in (first, second):
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {api.key}"}) as client:
                r = await client.get(f"/api/campaigns/{campaign['id']}/analytics/stream")
                assert r.status_code == 429 and r.json()["code"] == "too_many_streams", r.text
                assert int(r.headers["retry-after"]) > 0
        # Another organization is not held back by this one.
        async with open_stream(second, other_api.key, theirs["campaign"]):
            pass
    # Closed streams give their slots back.
    async def reopened() -> bool:
        async with httpx.AsyncClient(base_url=first, headers={"Authorization": f"Bearer {api.key}"}) as client:
            async with client.stream("GET", f"/api/campaigns/{campaign['id']}/analytics/stream") as r:
                return r.status_code == 200
    await eventually(reopened, "a stream slot freed")


async def test_exports_per_organization_are_limited(replicas, api, campaign, make_api):
    app, _, second = replicas
    await many_events(api, campaign, 1500)
    url = f"/api/campaigns/{campaign['id']}/analytics/export"
    paused, resume = asyncio.Event(), asyncio.Event()
    export_task = asyncio.create_task(slow_export(app, url, api.key, paused, resume))
    try:
        await asyncio.wait_for(paused.wait(), 20)
        async with httpx.AsyncClient(base_url=second, headers={"Authorization": f"Bearer {api.key}"}) as client:
            r = await client.get(url)
        assert r.status_code == 429 and r.json()["code"] == "too_many_exports" and r.headers["retry-after"]
    finally:
        resume.set()
        await asyncio.wait_for(export_task, 30)
    async with httpx.AsyncClient(base_url=second, headers={"Authorization": f"Bearer {api.key}"}) as client:
        assert (await client.get(url, params={"format": "ndjson"})).text.count("\n") == 1500


async def slow_export(app, path: str, key: str, paused: asyncio.Event, resume: asyncio.Event) -> list[dict]:
    """An export read by a client that stops after the first chunk until `resume`; returns
    the messages the app sent."""
    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body") and not paused.is_set():
            paused.set()
            await resume.wait()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"format=ndjson",
        "server": ("api.test", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"api.test"), (b"authorization", f"Bearer {key}".encode())],
    }
    await app(scope, receive, send)
    return sent


async def test_revoking_a_key_ends_its_streams_and_exports(api, make_api, campaign, app):
    created = (await api.post("/api/keys", json={"name": "dashboard", "scopes": ["analytics:read"]})).json()["key"]
    await many_events(api, campaign, 1500)
    async with serving(app) as server:
        async with open_stream(server.url, created["key"], campaign) as events:
            paused, resume = asyncio.Event(), asyncio.Event()
            url = f"/api/campaigns/{campaign['id']}/analytics/export"
            export_task = asyncio.create_task(slow_export(app, url, created["key"], paused, resume))
            await asyncio.wait_for(paused.wait(), 20)
            assert (await api.delete(f"/api/keys/{created['id']}")).status_code == 200
            # The stream says why and ends (no polling: the revocation wakes it).
            rest = [sse async for sse in events]
            assert rest and rest[-1].event == "revoked" and json.loads(rest[-1].data)["code"] == "key_revoked"
            resume.set()
            with pytest.raises(KeyRevoked):
                await asyncio.wait_for(export_task, 20)
