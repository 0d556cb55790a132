"""The two-tier campaign cache: what it keeps, how writes invalidate it, and two real API
processes that never serve each other's writes stale."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.crc import key_slot

from campaigns.auth.service import create_key
from campaigns.campaigns import repository as repo
from campaigns.campaigns.cache import CampaignCache, decode, encode
from campaigns.campaigns.cache import _gen_key as generation_key
from campaigns.campaigns.cache import _key as cache_key
from campaigns.local_cache import LocalCache
from campaigns.stack.services import ServiceSpec, free_port
from campaigns.stack.supervisor import Supervisor
from tests.support import abtests, analytics
from tests.support.campaigns import CAMPAIGN
from tests.support.polling import eventually


async def test_rows_round_trip_with_their_types(pool, campaign):
    row = await repo.get_any(pool, uuid.UUID(campaign["id"]))
    again = decode(encode(dict(row)))
    assert again == dict(row)
    assert isinstance(again["id"], uuid.UUID) and isinstance(again["created_at"], datetime)
    assert type(again["total_cost"]) is type(row["total_cost"]) and isinstance(again["config"], dict)


@pytest.fixture
async def caches(redis_client, settings):
    """Two caches on one Redis, as two API processes have."""
    a = CampaignCache(LocalCache(redis_client, settings), redis_client, settings)
    b = CampaignCache(LocalCache(redis_client, settings), redis_client, settings)
    await a.local.start()
    await b.local.start()
    yield a, b
    await a.local.stop()
    await b.local.stop()


def held(cache: CampaignCache, cid: uuid.UUID) -> bool:
    """Whether the cache's process holds the campaign in memory."""
    return cache.local.get(f"campaign:{cid}") is not None


async def test_reads_fill_both_tiers(caches, pool, redis_client, campaign):
    a, b = caches
    cid = uuid.UUID(campaign["id"])
    loads = []

    async def load():
        loads.append(1)
        return await repo.get_any(pool, cid)

    assert (await a.get(cid, load))["name"] == campaign["name"]
    assert await redis_client.exists(f"campaign:{{{cid}}}")
    await a.get(cid, load)  # memory
    await b.get(cid, load)  # Redis, then memory
    await b.get(cid, load)
    assert len(loads) == 1


async def test_an_invalidation_reaches_every_process_before_it_returns(caches, pool, redis_client, campaign):
    a, b = caches
    cid = uuid.UUID(campaign["id"])
    await a.get(cid, lambda: repo.get_any(pool, cid))
    await b.get(cid, lambda: repo.get_any(pool, cid))
    assert held(a, cid) and held(b, cid)
    await a.invalidate(cid)
    # Not eventually: b confirmed before invalidate returned.
    assert not held(b, cid) and not held(a, cid)
    assert not await redis_client.exists(f"campaign:{{{cid}}}")


async def test_a_read_racing_a_write_never_stores_the_old_row(caches, pool, redis_client, campaign):
    a, b = caches
    cid = uuid.UUID(campaign["id"])
    old = await repo.get_any(pool, cid)
    read_done, write_done = asyncio.Event(), asyncio.Event()

    async def slow_load():
        read_done.set()
        await write_done.wait()  # the write commits and invalidates while this read is in flight
        return old

    reader = asyncio.create_task(a.get(cid, slow_load))
    await read_done.wait()
    await b.invalidate(cid)
    write_done.set()
    assert (await reader)["name"] == old["name"]  # this one reader sees what it read…
    assert not await redis_client.exists(f"campaign:{{{cid}}}")  # …but nobody else will
    assert not held(a, cid)


async def test_a_lost_subscription_turns_the_memory_tier_off(caches, pool, redis_client, campaign):
    a, _ = caches
    cid = uuid.UUID(campaign["id"])
    await a.get(cid, lambda: repo.get_any(pool, cid))
    assert held(a, cid)
    await redis_client.client_kill_filter(_type="pubsub")
    await eventually(lambda: not a.local.subscribed or not held(a, cid), "the memory tier to turn off")
    assert not held(a, cid)
    await eventually(lambda: a.local.subscribed, "the subscription to come back")  # on again


async def test_metrics_show_hit_rate_and_latency(api, anonymous, campaign):
    for _ in range(3):
        await api.get(f"/api/campaigns/{campaign['id']}")
    text = (await anonymous.get("/metrics")).text
    assert "campaign_cache_hit_ratio" in text
    assert 'campaign_cache_lookups_total{source="local"}' in text
    assert 'campaign_cache_lookup_seconds_bucket{le="0.0001",source="local"}' in text
    assert "campaign_cache_invalidations_total" in text


async def test_writes_through_the_api_are_seen_at_once(api, campaign):
    url = f"/api/campaigns/{campaign['id']}"
    for i in range(5):
        assert (await api.get(url)).status_code == 200
        r = await api.put(url, json={"name": f"renamed {i}"})
        assert (await api.get(url)).json()["campaign"]["name"] == f"renamed {i}" == r.json()["campaign"]["name"]


async def test_another_organization_cannot_read_a_cached_campaign(api, other_api, campaign):
    url = f"/api/campaigns/{campaign['id']}"
    assert (await api.get(url)).status_code == 200  # now cached
    assert (await other_api.get(url)).status_code == 404


# --- Two API processes --------------------------------------------------------------


@pytest.fixture(scope="module")
async def two_apis(settings, pool, worker):
    """Two `campaigns api` processes on the session's services and task queue."""
    sup = Supervisor(restart=False)
    urls = []
    env = {
        "DATABASE_URL": settings.database_dsn, "REDIS_URL": settings.redis_dsn,
        "TEMPORAL_ADDRESS": settings.temporal_target, "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "DATA_DIR": str(settings.data_dir), "LOG_LEVEL": "warning", "WORKFLOW_UPDATE_TIMEOUT_S": "20",
    }
    try:
        for _ in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"

            async def ready(url=url) -> None:
                async with httpx.AsyncClient(timeout=2) as client:
                    (await client.get(f"{url}/healthz")).raise_for_status()

            await sup.start(ServiceSpec(
                name=f"api-{port}", argv=[sys.executable, "-m", "campaigns.cli", "api", "--port", str(port)],
                env={**env, "PYTHONPATH": os.getcwd()}, probe=ready, ready_timeout=60,
            ))
            urls.append(url)
        key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
        clients = [httpx.AsyncClient(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=30) for u in urls]
        yield clients
        for c in clients:
            await c.aclose()
    finally:
        await sup.stop()


async def test_two_processes_never_serve_a_write_stale(two_apis):
    first, second = two_apis
    c = (await first.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    url = f"/api/campaigns/{c['id']}"
    for i in range(25):
        writer, reader = (first, second) if i % 2 == 0 else (second, first)
        assert (await reader.get(url)).status_code == 200  # the reader holds it in memory now
        rate = round(0.8 + (i % 4) / 10, 1)
        r = await writer.put(url, json={"name": f"n{i}", "voiceSettings": {"speakingRate": rate}})
        assert r.status_code == 200, r.text
        seen = (await reader.get(url)).json()["campaign"]
        assert (seen["name"], seen["version"]) == (f"n{i}", r.json()["campaign"]["version"])
    # Status changes are written by the worker, which invalidates too.
    await second.get(url)
    assert (await first.post(f"{url}/activate")).json()["campaign"]["status"] == "active"
    assert (await second.get(url)).json()["campaign"]["status"] == "active"
    await first.get(url)
    assert (await second.post(f"{url}/pause")).status_code == 200
    assert (await first.get(url)).json()["campaign"]["status"] == "paused"


async def test_a_key_revoked_through_one_process_is_refused_at_once_by_the_other(two_apis, pool):
    first, second = two_apis
    created = (await first.post("/api/keys", json={"name": "short-lived", "scopes": ["campaigns:read"]})).json()["key"]
    headers = {"Authorization": f"Bearer {created['key']}"}
    for api in (first, second):  # both processes now know the key from memory
        assert (await api.get("/api/campaigns", headers=headers)).status_code == 200
    assert (await first.delete(f"/api/keys/{created['id']}")).status_code == 200
    assert (await second.get("/api/campaigns", headers=headers)).status_code == 401
    assert (await first.get("/api/campaigns", headers=headers)).status_code == 401


async def test_a_change_the_workflow_makes_by_itself_is_never_served_stale(two_apis, pool):
    first, second = two_apis
    start = (datetime.now(UTC) + timedelta(seconds=2)).replace(tzinfo=None, microsecond=0)
    c = (await first.post("/api/campaigns", json={**CAMPAIGN, "schedule": {"startAt": start.isoformat()}})).json()
    cid = c["campaign"]["id"]
    assert (await first.post(f"/api/campaigns/{cid}/activate")).json()["campaign"]["status"] == "scheduled"
    assert (await second.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "scheduled"  # cached
    await eventually(lambda: pool.fetchval("SELECT status = 'active' FROM campaigns WHERE id = $1", uuid.UUID(cid)),
                     "the scheduled start")
    # The worker's activity invalidated before it finished: both processes answer 'active' at once.
    for api_ in (second, first):
        assert (await api_.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "active"


async def test_a_cached_read_is_rendered_once_and_again_after_new_figures(app, api, pool, campaign):
    """The campaign with its trends is kept rendered beside the row: a read of a cached
    campaign runs no SQL (rollups written behind the platform's back stay unseen), and the
    refresher's invalidation after new events brings the new figures."""
    url = f"/api/campaigns/{campaign['id']}"
    first = (await api.get(url)).json()["campaign"]["performance"]
    assert sum(p["calls"] for p in first["hourlyTrends"]) == 0
    await abtests.add(pool, campaign["id"], "", calls_completed=7)  # no invalidation
    again = (await api.get(url)).json()["campaign"]["performance"]
    assert again["hourlyTrends"] == first["hourlyTrends"]
    await analytics.send(api, analytics.call(campaign["id"]))
    await analytics.drained(app)
    after = (await api.get(url)).json()["campaign"]["performance"]
    assert sum(p["calls"] for p in after["hourlyTrends"]) == 8 and after["realTimeAvailable"] is True
    assert after["todayLeads"] == 0 and after["activeCalls"] == 0


def test_a_campaigns_entry_and_generation_share_a_hash_slot():
    """The check-and-set script names both keys: on a Redis Cluster they must be in one slot."""
    cid = str(uuid.uuid4())
    assert key_slot(cache_key(cid).encode()) == key_slot(generation_key(cid).encode())
