"""The API while Redis or Postgres is frozen (SIGSTOP) or stopped: what clients get, and that
every count is exact once the service is back.

These tests run their own Redis and Postgres, and an API app on them with short timeouts,
so that freezing them leaves the session's services alone. Campaigns are written straight
into Postgres (no workflow is needed to read them or send them events)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from campaigns import db
from campaigns.analytics.service import CampaignInfo
from campaigns.api.app import create_app
from campaigns.auth.service import create_key
from campaigns.campaigns import repository as campaigns_repo
from campaigns.domain.config import CampaignConfiguration
from campaigns.settings import Settings
from campaigns.stack import services
from campaigns.stack.supervisor import Child, Supervisor
from tests.support.analytics import call, event
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

BOUND_S = 2.0  # no request may take longer than this, whatever is down (the target is ~1 s)


@dataclass
class Stack:
    settings: Settings
    app: object
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    redis: Child
    postgres: Child
    supervisor: Supervisor
    data: Path

    def freeze(self, child: Child) -> None:
        for process in processes(child):  # the parent first: no new backend starts meanwhile
            process.send_signal(signal.SIGSTOP)

    def thaw(self, child: Child) -> None:
        for process in reversed(processes(child)):
            process.send_signal(signal.SIGCONT)

    @contextlib.asynccontextmanager
    async def frozen(self, child: Child) -> AsyncIterator[None]:
        self.freeze(child)
        try:
            yield
        finally:
            self.thaw(child)

    async def stop_redis(self) -> None:
        assert self.redis.process is not None
        self.redis.process.kill()
        await self.redis.process.wait()

    async def start_redis(self) -> None:
        port = int(self.settings.redis_dsn.rsplit(":", 1)[1].split("/")[0])
        spec, _ = services.redis(self.data, port, persist=True)
        self.redis = await self.supervisor.start(spec)


def processes(child: Child) -> list[psutil.Process]:
    """The service's process and its children (Postgres's backends each have a session of
    their own, so a signal to the process group would miss them)."""
    assert child.process is not None
    parent = psutil.Process(child.process.pid)
    return [parent, *parent.children(recursive=True)]


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("outages")
    sup = Supervisor(restart=False)
    try:
        pg_spec, database_url = services.postgres(data, services.free_port(), fsync=False)
        postgres = await sup.start(pg_spec)
        redis_spec, redis_url = services.redis(data, services.free_port(), persist=True)
        redis = await sup.start(redis_spec)
        await db.migrate(database_url)
        ours = settings.model_copy(
            update={
                "database_url": database_url,
                "redis_url": redis_url,
                "temporal_task_queue": f"outages-{uuid.uuid4().hex[:6]}",
                "redis_socket_timeout_s": 0.3,
                "redis_connect_timeout_s": 0.3,
                "redis_probe_interval_s": 0.1,
                "db_command_timeout_s": 0.5,
                "db_connect_timeout_s": 1.0,
                "refresh_interval_s": 0.2,
                "rate_limit_per_second": 0,
                "rate_limit_org_per_second": 0,
            }
        )
        app = create_app(ours)
        async with app.router.lifespan_context(app):
            pool = app.state.pool
            key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
            client = httpx.AsyncClient(
                # As a client sees it: the 503 the error handler renders (which Starlette then
                # re-raises to the server, to be logged).
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://api.test",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            yield Stack(ours, app, client, pool, redis, postgres, sup, data)
            await client.aclose()
    finally:
        for child in sup.children:  # nothing may stay frozen
            if child.process is not None and child.process.returncode is None:
                with contextlib.suppress(psutil.Error):
                    for process in processes(child):
                        process.send_signal(signal.SIGCONT)
        await sup.stop()


async def new_campaign(stack: Stack) -> str:
    org = await stack.pool.fetchval("SELECT organization_id FROM api_keys ORDER BY created_at LIMIT 1")
    config = CampaignConfiguration(flow_id="flow-1").model_dump(mode="json", by_alias=True)
    row = await campaigns_repo.insert(
        stack.pool, campaign_id=uuid.uuid4(), organization_id=org, user_id="t", name="Outage",
        description=None, type_="outbound", channel="phone", timezone="UTC", config=config,
    )
    return str(row["id"])


async def bounded(request) -> tuple[httpx.Response, float]:
    """The answer, and how long it took; failing if it takes longer than BOUND_S."""
    started = time.monotonic()
    async with asyncio.timeout(BOUND_S):
        response = await request
    return response, time.monotonic() - started


async def realtime_back(stack: Stack, cid: str, today_calls: int) -> dict:
    async def read() -> dict:
        r = await stack.client.get(f"/api/campaigns/{cid}/analytics/real-time")
        return r.json().get("metrics") or {}

    return await eventually(read, f"real-time figures of {today_calls} calls", until=lambda m: m.get("todayCalls") == today_calls,
                            within=15)


# --- Redis -----------------------------------------------------------------------------


async def test_reads_answer_from_postgres_while_redis_is_frozen(stack: Stack):
    cid = await new_campaign(stack)
    url = f"/api/campaigns/{cid}"
    r = await stack.client.post("/api/events", json={"events": call(cid, lead=70, cost=1.5)})
    assert r.json()["accepted"] == 4
    await stack.app.state.analytics.refresher.drain()
    assert (await stack.client.get(url)).json()["campaign"]["performance"]["realTimeAvailable"] is True

    async with stack.frozen(stack.redis):
        for _ in range(8):
            answer, _ = await bounded(stack.client.get(url))
            assert answer.status_code == 200, answer.text
            performance = answer.json()["campaign"]["performance"]
            # Today's leads and cost from the rollups; active calls unknown.
            assert performance["realTimeAvailable"] is False and performance["activeCalls"] is None
            assert (performance["todayLeads"], performance["todayCost"]) == (1, 1.5)
            live, _ = await bounded(stack.client.get(f"{url}/analytics/real-time"))
            assert live.status_code == 503 and live.json()["code"] == "realtime_unavailable"
            assert live.headers["retry-after"]
            listed, _ = await bounded(stack.client.get("/api/campaigns"))
            assert listed.status_code == 200
            await asyncio.sleep(0.3)
    await realtime_back(stack, cid, 1)
    assert (await stack.client.get(url)).json()["campaign"]["performance"]["realTimeAvailable"] is True
    # The memory tier is back on, serving again.
    local = stack.app.state.campaign_cache.local
    await eventually(lambda: local.subscribed, "the memory tier back on")
    await stack.client.get(url)
    assert local.get(f"campaign:{cid}") is not None


async def test_events_sent_while_redis_is_frozen_count_once_when_it_is_back(stack: Stack):
    cid = await new_campaign(stack)
    sent = 0
    async with stack.frozen(stack.redis):
        for _ in range(5):
            answer, _ = await bounded(stack.client.post("/api/events", json={"events": call(cid, cost=1)}))
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 3
            sent += 1
        # Postgres's part goes on without Redis: the summary counts them already.
        await asyncio.wait_for(stack.app.state.analytics.refresher.drain(), 10)
        campaign = (await bounded(stack.client.get(f"/api/campaigns/{cid}")))[0].json()["campaign"]
        assert campaign["performance"]["totalCalls"] == sent
    live = await realtime_back(stack, cid, sent)
    assert live["todayCost"] == sent
    # Everything waiting for Redis was applied, and only once.
    await eventually(lambda: stack.pool.fetchval("SELECT count(*) = 0 FROM analytics_outbox"), "an empty outbox")
    await asyncio.sleep(1)  # a second pass would show a double count here
    assert (await stack.client.get(f"/api/campaigns/{cid}/analytics/real-time")).json()["metrics"]["todayCalls"] == sent


async def test_streams_stay_open_through_a_redis_outage_and_catch_up(stack: Stack):
    cid = await new_campaign(stack)
    org = await stack.pool.fetchval("SELECT organization_id FROM campaigns WHERE id = $1", uuid.UUID(cid))
    hub = stack.app.state.analytics.hub
    with hub.watch(CampaignInfo(uuid.UUID(cid), org, "UTC", "USD", 600.0)) as viewer:
        await eventually(lambda: viewer.frame is not None, "the first frame")
        viewer.take()
        async with stack.frozen(stack.redis):
            answer, _ = await bounded(stack.client.post("/api/events", json={"events": call(cid)}))
            assert answer.status_code == 200
            await asyncio.sleep(1)
            assert not viewer.closed
        frame = await eventually(lambda: viewer.frame, "a frame after the outage")
        assert b'"todayCalls":1' in frame and not viewer.closed


async def test_redis_stopped_and_restarted_empty_loses_no_count(stack: Stack):
    cid = await new_campaign(stack)
    await stack.client.post("/api/events", json={"events": call(cid)})
    await stack.app.state.analytics.refresher.drain()
    await stack.stop_redis()
    try:
        for _ in range(3):
            answer, _ = await bounded(stack.client.post("/api/events", json={"events": call(cid)}))
            assert answer.status_code == 200 and answer.json()["accepted"] == 2
            read, _ = await bounded(stack.client.get(f"/api/campaigns/{cid}"))
            assert read.status_code == 200
        (stack.data / "redis" / "appendonly.aof").unlink(missing_ok=True)  # it comes back empty
        for aof in (stack.data / "redis").glob("appendonlydir/*"):
            aof.unlink()
    finally:
        await stack.start_redis()
    await realtime_back(stack, cid, 4)


async def test_widget_events_are_recorded_while_redis_is_down(stack: Stack):
    cid = await new_campaign(stack)
    origin = "https://shop.example.com"
    r = await stack.client.put(f"/api/campaigns/{cid}/widget", json={"integration": {"allowedOrigins": [origin]}})
    assert r.status_code == 200, r.text
    key = r.json()["widget"]["publishableKey"]
    async with stack.frozen(stack.redis):
        for n in range(3):
            body = {"key": key, "events": [{"id": f"imp-{n}", "type": "widget.impression"}]}
            answer, _ = await bounded(stack.client.post("/embed/events", json=body, headers={"Origin": origin}))
            assert answer.status_code == 202, answer.text
            assert answer.json()["accepted"] == 1
    stored = await stack.pool.fetchval(
        "SELECT count(*) FROM analytics_events WHERE campaign_id = $1 AND type = 'widget.impression'", uuid.UUID(cid)
    )
    assert stored == 3


async def test_the_request_limit_holds_per_process_while_redis_is_down(stack: Stack):
    app = stack.app
    before = app.state.settings
    app.state.settings = before.model_copy(update={"rate_limit_per_second": 3})
    try:
        await stack.stop_redis()
        await asyncio.sleep(1 - time.time() % 1)  # one window for the burst
        answers = await asyncio.gather(*(bounded(stack.client.get("/api/campaigns")) for _ in range(8)))
        statuses = [r.status_code for r, _ in answers]
        assert statuses.count(200) <= 3 and statuses.count(429) >= 5, statuses
    finally:
        app.state.settings = before
        await stack.start_redis()


# --- Postgres ------------------------------------------------------------------------------


async def test_cached_reads_go_on_while_postgres_is_frozen(stack: Stack):
    cached = await new_campaign(stack)
    other = await new_campaign(stack)
    # The memory tier is on only while it hears invalidations (an earlier Redis outage turns it off).
    local = stack.app.state.campaign_cache.local
    await eventually(lambda: local.subscribed, "the memory tier on")
    assert (await stack.client.get(f"/api/campaigns/{cached}")).status_code == 200
    assert local.get(f"campaign:{cached}") is not None  # now in memory
    async with stack.frozen(stack.postgres):
        for _ in range(3):
            answer, _ = await bounded(stack.client.get(f"/api/campaigns/{cached}"))
            assert answer.status_code == 200
        # What needs Postgres says so, within its bound, rather than hanging.
        answer, _ = await bounded(stack.client.get(f"/api/campaigns/{other}"))
        assert answer.status_code == 503 and answer.json()["code"] == "unavailable"
        answer, _ = await bounded(stack.client.post("/api/events", json={"events": [event(other, "cost", {"amount": 2, "category": "llm"}, id="pg-frozen")]}))
        assert answer.status_code == 503
    # The retry of that batch, once Postgres is back, counts it once.
    retry = await stack.client.post("/api/events", json={"events": [event(other, "cost", {"amount": 2, "category": "llm"}, id="pg-frozen")]})
    assert retry.status_code == 200 and retry.json()["accepted"] + retry.json()["duplicates"] == 1
    await stack.app.state.analytics.refresher.drain()
    assert (await stack.client.get(f"/api/campaigns/{other}")).json()["campaign"]["performance"]["totalCost"] == 2


@pytest.mark.parametrize("down", [("postgres",), ("redis",), ("postgres", "redis")])
async def test_readyz_answers_in_time_and_names_what_is_down(stack: Stack, down: tuple[str, ...]):
    anonymous = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app, raise_app_exceptions=False), base_url="http://api.test"
    )
    assert (await anonymous.get("/readyz")).status_code == 200
    children = [getattr(stack, name) for name in down]
    for child in children:
        stack.freeze(child)
    try:
        for _ in range(2):
            answer, _ = await bounded(anonymous.get("/readyz"))
            assert answer.status_code == 503
            checks = answer.json()["checks"]
            assert {name for name, state in checks.items() if state != "ok"} == set(down), checks
    finally:
        for child in children:
            stack.thaw(child)
    await eventually(lambda: anonymous.get("/readyz"), "ready again", until=lambda r: r.status_code == 200)
    await anonymous.aclose()


async def test_readyz_answers_in_time_when_temporal_does_not_answer(stack: Stack):
    """A Temporal that accepts connections and never answers (as a frozen one does)."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app = create_app(stack.settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"}))
    try:
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api.test"
            )
            for _ in range(2):
                answer, _ = await bounded(client.get("/readyz"))
                assert answer.status_code == 503
                checks = answer.json()["checks"]
                assert checks["temporal"].startswith("unavailable") and checks["postgres"] == checks["redis"] == "ok"
            await client.aclose()
    finally:
        for writer in held:
            writer.close()
        server.close()
