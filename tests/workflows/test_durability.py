"""Campaigns survive their worker being killed and their history being continued-as-new."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid

import asyncpg
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from campaigns import temporal
from campaigns.messages.campaign import CampaignState, StatusRequest, workflow_id
from campaigns.settings import Settings
from campaigns.stack import services
from campaigns.stack.supervisor import Supervisor
from campaigns.worker import build_worker
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.campaigns import CAMPAIGN, api_client, consistent


def start_worker(settings: Settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_dsn,
        "REDIS_URL": settings.redis_dsn,
        "TEMPORAL_ADDRESS": settings.temporal_target,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "campaigns.cli", "worker"], env=env)


@pytest.mark.slow  # kills and restarts a worker process three times: over 20 s
async def test_worker_killed_mid_lifecycle(settings: Settings, pool: asyncpg.Pool):
    """kill -9 the worker while status changes are in flight; a new worker finishes them."""
    own = settings.model_copy(update={"temporal_task_queue": f"kill-{uuid.uuid4().hex[:6]}",
                                      "workflow_update_timeout_s": 90})
    tclient = await temporal.connect(own)
    rng = random.Random(7)
    worker = start_worker(own)
    try:
        async with api_client(own, pool) as client:
            ids = []
            for _ in range(4):
                r = await client.post("/api/campaigns", json=CAMPAIGN)
                assert r.status_code == 201, r.text
                ids.append(r.json()["campaign"]["id"])
            plan = ["active", "paused", "active", "ended"]
            for step, target in enumerate(plan):
                calls = [asyncio.create_task(client.put(f"/api/campaigns/{cid}", json={"status": target}))
                         for cid in ids]
                await asyncio.sleep(rng.uniform(0.02, 0.3))
                if step < 3:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    worker = start_worker(own)
                answers = await asyncio.gather(*calls)
                assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
                for cid in ids:
                    assert await consistent(client, tclient, cid) == target
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()


@pytest.fixture(scope="module")
async def eager_can_server(data_dir):
    """A dev server that suggests continue-as-new after a few dozen history events."""
    sup = Supervisor(restart=False)
    spec, address = services.temporal(
        None, services.free_port(), None, log_dir=data_dir / "can",
        extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
    )
    await sup.start(spec)
    yield address
    await sup.stop()


async def test_continue_as_new_keeps_state_updates_and_summary(settings, pool, eager_can_server):
    own = settings.model_copy(update={"temporal_address": eager_can_server,
                                      "temporal_task_queue": f"can-{uuid.uuid4().hex[:6]}"})
    tclient = await temporal.connect(own)
    async with build_worker(tclient, pool, own.temporal_task_queue, settings=own), api_client(own, pool) as client:
        cid = (await client.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["id"]
        assert (await client.post(f"/api/campaigns/{cid}/activate")).status_code == 200
        ok = 0
        for i in range(12):
            target = "paused" if i % 2 == 0 else "active"
            # Several requests at once, plus configuration signals, while runs hand over.
            answers = await asyncio.gather(
                *(client.put(f"/api/campaigns/{cid}", json={"status": target}) for _ in range(3)),
                client.put(f"/api/campaigns/{cid}/configuration", json={"voiceSettings": {"speakingRate": 1.0 + i / 100}}),
                client.put(f"/api/campaigns/{cid}", json={"name": f"Renamed {i}"}),
            )
            codes = sorted(a.status_code for a in answers[:3])
            assert codes == [200, 409, 409], [a.text for a in answers]
            assert all(a.status_code == 200 for a in answers[3:]), [a.text for a in answers[3:]]
            ok += 1
        handle = tclient.get_workflow_handle(workflow_id(cid))
        state: CampaignState = await handle.query(CampaignWorkflow.current)
        assert state.runs > 2, state.runs  # it really continued-as-new, more than once
        assert state.transitions == 1 + ok
        assert state.config.name == "Renamed 11"
        assert await consistent(client, tclient, cid) == "active"
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "Renamed 11" in meta.current_details  # the UI summary survives the hand-over
        desc = await handle.describe()
        assert desc.run_id != desc.raw_description.workflow_execution_info.first_run_id


async def test_a_request_sent_again_after_continue_as_new_is_answered_not_applied_again(
    settings, pool, eager_can_server
):
    """Temporal recognizes an update id only within one run: the workflow itself remembers
    the requests it applied, so the relay's re-send after a hand-over gets the first answer."""
    own = settings.model_copy(update={"temporal_address": eager_can_server,
                                      "temporal_task_queue": f"can-{uuid.uuid4().hex[:6]}"})
    tclient = await temporal.connect(own)
    async with build_worker(tclient, pool, own.temporal_task_queue, settings=own), api_client(own, pool) as client:
        cid = (await client.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["id"]
        assert (await client.post(f"/api/campaigns/{cid}/activate")).status_code == 200
        key = f"pause-{uuid.uuid4()}"
        assert (await client.post(f"/api/campaigns/{cid}/pause", headers={"Idempotency-Key": key})).status_code == 200
        request_id = await pool.fetchval("SELECT id FROM status_requests WHERE idempotency_key = $1", key)
        handle = tclient.get_workflow_handle(workflow_id(cid))
        for i in range(30):  # configuration signals until the history is handed over
            r = await client.put(f"/api/campaigns/{cid}/configuration", json={"voiceSettings": {"speakingRate": 1 + i / 100}})
            assert r.status_code == 200
            if (await handle.query(CampaignWorkflow.current)).runs > 1:
                break
        assert (await client.post(f"/api/campaigns/{cid}/resume")).status_code == 200
        before: CampaignState = await handle.query(CampaignWorkflow.current)
        assert before.runs > 1 and before.status == "active"

        # The pause sent again as the same update: active → paused would be allowed, and must not happen.
        again = await handle.execute_update(
            CampaignWorkflow.change_status,
            StatusRequest(target="paused", request_id=str(request_id)),
            id=str(request_id),
        )
        assert again.previous == "active" and again.status == "paused"  # the first answer
        after: CampaignState = await handle.query(CampaignWorkflow.current)
        assert after.status == "active" and after.transitions == before.transitions
        assert await consistent(client, tclient, cid) == "active"
