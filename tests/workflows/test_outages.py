"""Outages during the lifecycle, on real processes of their own: Temporal frozen (SIGSTOP)
or restarted, Postgres killed, a worker killed at an exact point (after the change that led
there is recorded in the workflow's history). Each test checks that what the client was
answered holds afterwards: a 200 was applied, a 202 is applied later, a 503 never is, and a
retry with the same Idempotency-Key gives the final answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from campaigns import db, temporal
from campaigns.activities.recurrence import schedule_id
from campaigns.messages.campaign import CampaignState, workflow_id
from campaigns.settings import Settings
from campaigns.stack import services
from campaigns.stack.supervisor import Supervisor
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.abtests import TEST
from tests.support.campaigns import CAMPAIGN, EVERY_DAY, api_client, consistent, wait_for_status
from tests.support.polling import eventually
from tests.support.temporal import TemporalServer
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.slow


def own(settings: Settings, **changes) -> Settings:
    """The session's settings on a task queue of the test's own."""
    return settings.model_copy(update={"temporal_task_queue": f"outage-{uuid.uuid4().hex[:8]}", **changes})


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A database of the test's own on the session's Postgres: a deployment is one Postgres
    and one Temporal, and the session's relay must not carry this test's requests to the
    session's Temporal."""
    name = f"outage_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = settings.database_dsn.rsplit("/", 1)[0] + "/" + name
    await db.migrate(url)
    pool = await db.create_pool(url, min_size=1, max_size=6)
    try:
        yield url, pool
    finally:
        await pool.close()


async def bounded(call, bound: float) -> httpx.Response:
    """An answer, which must come within `bound` seconds: no request may hang."""
    return await asyncio.wait_for(call, timeout=bound)


async def active_campaign(api: httpx.AsyncClient, **config) -> dict:
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, **config})).json()["campaign"]
    r = await api.post(f"/api/campaigns/{c['id']}/activate")
    assert r.status_code in (200, 202), r.text  # 202 on a machine too busy to answer in time
    return await wait_for_status(api, c["id"], r.json()["campaign"]["status"] if r.status_code == 200 else "active")


async def workflow_state(tclient: Client, campaign_id: str) -> CampaignState:
    return await tclient.get_workflow_handle(workflow_id(campaign_id)).query(CampaignWorkflow.current)


async def requests(pool: asyncpg.Pool, campaign_id: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM status_requests WHERE campaign_id = $1 ORDER BY requested_at",
                            uuid.UUID(campaign_id))


@pytest.fixture
async def frozen_server(tmp_path: Path) -> AsyncIterator[TemporalServer]:
    server = await TemporalServer(tmp_path / "temporal").start()
    try:
        yield server
    finally:
        await server.stop()


# --- Temporal frozen ----------------------------------------------------------------------------


async def test_a_frozen_temporal_gives_202s_that_are_applied_once_it_thaws(settings, database, frozen_server):
    url, pool = database
    cfg = own(settings, temporal_address=frozen_server.address, database_url=url, status_change_wait_s=2)
    worker = WorkerProcess(cfg)
    bound = cfg.status_change_wait_s + 15
    seen: list[int] = []
    try:
        async with api_client(cfg, pool) as api:
            tclient = await temporal.connect(cfg)
            ids = [(await active_campaign(api))["id"] for _ in range(4)]
            pause_key, end_key = f"pause-{uuid.uuid4()}", f"end-{uuid.uuid4()}"

            frozen_server.freeze()
            try:
                answers = await bounded(asyncio.gather(
                    api.post(f"/api/campaigns/{ids[0]}/pause", headers={"Idempotency-Key": pause_key}),
                    api.post(f"/api/campaigns/{ids[1]}/end", headers={"Idempotency-Key": end_key}),
                    api.put(f"/api/campaigns/{ids[2]}", json={"status": "paused", "statusReason": "frozen"}),
                    api.put(f"/api/campaigns/{ids[3]}/configuration", json={"budget": {"total": 321}}),
                ), bound)
                seen += [a.status_code for a in answers]
                # Status changes: accepted, not applied, and visible as pending.
                for answer, target in zip(answers[:3], ("paused", "ended", "paused"), strict=True):
                    assert answer.status_code == 202, answer.text
                    body = answer.json()["campaign"]
                    assert body["status"] == "active" and body["pendingStatusChange"]["target"] == target
                # A configuration change is saved: Postgres owns it.
                assert answers[3].status_code == 200 and answers[3].json()["campaign"]["budget"]["total"] == 321
                version = answers[3].json()["campaign"]["version"]

                got = (await api.get(f"/api/campaigns/{ids[0]}")).json()["campaign"]
                assert got["pendingStatusChange"] == answers[0].json()["campaign"]["pendingStatusChange"]
                again = await bounded(api.post(f"/api/campaigns/{ids[0]}/pause",
                                               headers={"Idempotency-Key": pause_key}), bound)
                seen.append(again.status_code)
                assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
                assert again.json()["campaign"]["pendingStatusChange"]["requestId"] == got["pendingStatusChange"][
                    "requestId"]
            finally:
                frozen_server.thaw()

            # Every accepted change is applied once Temporal is back, and the workflow learns the configuration.
            for cid, status in zip(ids[:3], ("paused", "ended", "paused"), strict=True):
                done = await wait_for_status(api, cid, status, within=60)
                assert done["pendingStatusChange"] is None
            await eventually(lambda: workflow_state(tclient, ids[3]), "the workflow to learn the budget",
                             until=lambda s: s.config.version == version, within=60)
            # Retries with the keys now give the final answers.
            for key, cid, path, status in ((pause_key, ids[0], "pause", "paused"), (end_key, ids[1], "end", "ended")):
                final = await api.post(f"/api/campaigns/{cid}/{path}", headers={"Idempotency-Key": key})
                seen.append(final.status_code)
                assert final.status_code == 200 and final.json()["campaign"]["status"] == status
                assert final.headers["idempotent-replayed"] == "true"
            for cid, status in zip(ids, ("paused", "ended", "paused", "active"), strict=True):
                assert await consistent(api, tclient, cid) == status
            assert [r["state"] for cid in ids[:3] for r in await requests(pool, cid)] == ["applied"] * 6
    finally:
        worker.kill()
    assert 500 not in seen


# --- Postgres down --------------------------------------------------------------------------


async def test_a_status_change_postgres_cannot_record_is_503_and_never_applied(settings, tmp_path):
    sup = Supervisor(restart=False)
    # Durable commits: what was acknowledged before the kill is still there after it.
    spec, database_url = services.postgres(tmp_path, services.free_port(), fsync=True)
    await sup.start(spec)
    await db.migrate(database_url)
    cfg = own(settings, database_url=database_url)
    pg = await db.create_pool(database_url, min_size=1, max_size=4)
    worker = WorkerProcess(cfg)
    try:
        async with api_client(cfg, pg) as api:
            tclient = await temporal.connect(cfg)
            c = await active_campaign(api)
            key = {"Idempotency-Key": f"pause-{uuid.uuid4()}"}
            sup.children[-1].process.kill()  # type: ignore[union-attr]
            await sup.children[-1].process.wait()  # type: ignore[union-attr]

            r = await bounded(api.post(f"/api/campaigns/{c['id']}/pause", headers=key), 30)
            assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text

            await sup.start(spec)  # the same data directory: nothing of the request is there
            await pg.expire_connections()

            async def reachable() -> int:
                return (await api.get(f"/api/campaigns/{c['id']}")).status_code

            await eventually(reachable, "the API to reach Postgres again", until=lambda code: code == 200)
            await asyncio.sleep(2)  # the relay, polling every 0.2 s, would have found anything recorded
            assert [(r["target"], r["state"]) for r in await requests(pg, c["id"])] == [("active", "applied")]
            assert (await workflow_state(tclient, c["id"])).status == "active"
            # The key was never used: a retry is a new request, and it applies.
            again = await api.post(f"/api/campaigns/{c['id']}/pause", headers=key)
            assert again.status_code == 200 and "idempotent-replayed" not in again.headers
            assert await consistent(api, tclient, c["id"]) == "paused"
    finally:
        worker.kill()
        await pg.close()
        await sup.stop()


# --- A worker killed at an exact point -----------------------------------------------------------


async def test_a_worker_killed_while_a_status_change_persists(settings, database, tmp_path):
    """Killed inside the persist activity of an activation the workflow has accepted."""
    url, pool = database
    cfg = own(settings, database_url=url, status_change_wait_s=30)
    marker = tmp_path / "reached"
    worker = WorkerProcess(cfg, block="persist_transition", marker=marker)
    try:
        async with api_client(cfg, pool) as api:
            tclient = await temporal.connect(cfg)
            c = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
            key = {"Idempotency-Key": f"activate-{uuid.uuid4()}"}
            call = asyncio.create_task(api.post(f"/api/campaigns/{c['id']}/activate", headers=key))
            await worker.blocked()
            worker.kill()
            worker = WorkerProcess(cfg)
            r = await bounded(call, 60)
            assert r.status_code == 200 and r.json()["campaign"]["status"] == "active", r.text
            assert await consistent(api, tclient, c["id"]) == "active"  # one transition, written once
            again = await api.post(f"/api/campaigns/{c['id']}/activate", headers=key)
            assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
            assert (await api.post(f"/api/campaigns/{c['id']}/pause")).status_code == 200
            assert await consistent(api, tclient, c["id"]) == "paused"
            assert [r["state"] for r in await requests(pool, c["id"])] == ["applied", "applied"]
    finally:
        worker.kill()


async def test_a_worker_killed_while_syncing_a_recurrence(settings, database, tmp_path, temporal_client):
    """Killed inside the Schedule sync an activation waits on (after its status was written)."""
    url, pool = database
    cfg = own(settings, database_url=url, status_change_wait_s=30)
    marker = tmp_path / "reached"
    worker = WorkerProcess(cfg, block="sync_recurrence", marker=marker)
    try:
        async with api_client(cfg, pool) as api:
            tclient = await temporal.connect(cfg)
            body = {**CAMPAIGN, "timezone": "Europe/Paris",
                    "schedule": {"recurrence": {"at": ["03:00"], "durationMinutes": 60, "daysOfWeek": list(EVERY_DAY)}}}
            c = (await api.post("/api/campaigns", json=body)).json()["campaign"]
            call = asyncio.create_task(api.post(f"/api/campaigns/{c['id']}/activate"))
            await worker.blocked()
            worker.kill()
            worker = WorkerProcess(cfg)
            r = await bounded(call, 60)
            assert r.status_code == 200 and r.json()["campaign"]["status"] == "active", r.text
            described = await temporal_client.get_schedule_handle(schedule_id(c["id"])).describe()
            assert not described.schedule.state.paused and described.schedule.spec.time_zone_name == "Europe/Paris"
            assert await consistent(api, tclient, c["id"]) == "active"
            assert (await api.post(f"/api/campaigns/{c['id']}/pause")).status_code == 200
            described = await temporal_client.get_schedule_handle(schedule_id(c["id"])).describe()
            assert described.schedule.state.paused
            await api.post(f"/api/campaigns/{c['id']}/end")
    finally:
        worker.kill()


async def test_a_worker_killed_while_an_ab_test_concludes(settings, database, tmp_path):
    """Killed inside the conclusion of a stop the test's workflow has accepted."""
    url, pool = database
    cfg = own(settings, database_url=url, workflow_update_timeout_s=45)
    marker = tmp_path / "reached"
    worker = WorkerProcess(cfg, block="conclude", marker=marker)
    try:
        async with api_client(cfg, pool) as api:
            tclient = await temporal.connect(cfg)
            c = await active_campaign(api)
            created = await api.post(f"/api/campaigns/{c['id']}/ab-test", json=TEST)
            assert created.status_code == 201, created.text
            t = created.json()["test"]
            base = f"/api/campaigns/{c['id']}/ab-test/{t['id']}"
            call = asyncio.create_task(api.post(f"{base}/stop", params={"reason": "enough"}))
            await worker.blocked()
            worker.kill()
            worker = WorkerProcess(cfg)
            r = await bounded(call, 60)
            assert r.status_code == 200, r.text
            got = (await api.get(base)).json()["test"]
            assert got["status"] == "concluded" and got["conclusion"] == "stopped"
            events = await pool.fetch(
                "SELECT data FROM platform_events WHERE type = 'ab_test.concluded' AND data->>'testId' = $1", t["id"])
            assert len(events) == 1  # concluded once, although the conclusion ran twice
            assert (await api.post(f"{base}/stop")).status_code == 409
            assert await consistent(api, tclient, c["id"]) == "active"
    finally:
        worker.kill()


# --- Temporal restarted -------------------------------------------------------------------------


async def test_a_restarted_temporal_carries_every_campaign_on(settings, database, frozen_server):
    url, pool = database
    cfg = own(settings, temporal_address=frozen_server.address, database_url=url, status_change_wait_s=20)
    worker = WorkerProcess(cfg)
    try:
        async with api_client(cfg, pool) as api:
            tclient = await temporal.connect(cfg)
            active = await active_campaign(api)
            start = (datetime.now(UTC) + timedelta(seconds=12)).replace(tzinfo=None).isoformat(timespec="seconds")
            scheduled = await active_campaign(api, schedule={"startAt": start})
            assert scheduled["status"] == "scheduled"
            paused = await active_campaign(api)
            assert (await api.post(f"/api/campaigns/{paused['id']}/pause")).status_code == 200

            await frozen_server.stop()
            # Saved while Temporal is down; its workflow learns it once it is back.
            r = await api.put(f"/api/campaigns/{active['id']}/configuration", json={"budget": {"daily": 12}})
            assert r.status_code == 200
            version = r.json()["campaign"]["version"]
            await frozen_server.start()

            async def paused_now() -> int:
                return (await api.post(f"/api/campaigns/{active['id']}/pause")).status_code

            # The first requests may meet a server still warming up: 202, applied shortly after.
            assert await paused_now() in (200, 202)
            await wait_for_status(api, active["id"], "paused", within=60)
            await wait_for_status(api, scheduled["id"], "active", within=60)  # its start timer survived
            assert (await api.post(f"/api/campaigns/{paused['id']}/resume")).status_code == 200
            assert (await api.post(f"/api/campaigns/{paused['id']}/end")).status_code == 200
            assert (await api.delete(f"/api/campaigns/{paused['id']}")).status_code == 200
            await eventually(lambda: workflow_state(tclient, active["id"]), "the workflow to learn the budget",
                             until=lambda s: s.config.version == version, within=60)
            assert await consistent(api, tclient, active["id"]) == "paused"
            assert await consistent(api, tclient, scheduled["id"]) == "active"
            final = await tclient.get_workflow_handle(workflow_id(paused["id"]), result_type=CampaignState).result()
            assert final.status == "archived"
    finally:
        worker.kill()
