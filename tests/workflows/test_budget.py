"""The campaign workflow acting on its budget: pause at a cap, resume at the next local midnight
for a daily cap, at once when the budget is raised, never while a cap is still reached.

Midnight is hours away, so these run on Temporal's time-skipping test server (the workflow
itself reads time only through `workflow.now()`); the activities write to the real Postgres.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from campaigns.domain import periods
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignBudget, CampaignStatus
from campaigns.messages import search_attributes as sa
from campaigns.messages.campaign import CampaignState, StatusRequest, WorkflowConfig
from campaigns.worker import build_worker
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.polling import eventually

TZ = "Asia/Tokyo"


@pytest.fixture(scope="module")
async def skipping(pool):
    """A time-skipping Temporal server with a worker on it."""
    import sys

    server = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(server), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes={k.name: k.indexed_value_type for k in sa.ALL})
    )
    queue = f"budget-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, pool, queue):
        yield env, queue
    await env.shutdown()


async def _start(skipping, campaign: dict, budget: CampaignBudget) -> WorkflowHandle:
    env, queue = skipping
    state = CampaignState(
        campaign_id=campaign["id"],
        organization_id=campaign["organizationId"],
        status=CampaignStatus.ACTIVE,
        config=WorkflowConfig(version=campaign["version"], name=campaign["name"], type=campaign["type"],
                              channel=campaign["channel"], timezone=TZ, budget=budget),
        created_recorded=True,
    )
    return await env.client.start_workflow(
        CampaignWorkflow.run, state, id=f"campaign-budget-{uuid.uuid4().hex[:8]}", task_queue=queue
    )


async def _state(handle: WorkflowHandle, status: CampaignStatus) -> CampaignState:
    return await eventually(lambda: handle.query(CampaignWorkflow.current), f"the workflow {status}",
                            until=lambda state: state.status == status, every=0.05)


async def _report(env: WorkflowEnvironment, handle: WorkflowHandle, *, total: float, today: float) -> None:
    now = await env.get_current_time()
    await handle.signal(CampaignWorkflow.spend_reported,
                        BudgetSpend(total=total, day=periods.local_date(now, TZ), today=today, at=now))


async def test_a_daily_cap_pauses_until_local_midnight(skipping, campaign: dict, api: httpx.AsyncClient):
    env, _ = skipping
    handle = await _start(skipping, campaign, CampaignBudget(daily=5, total=100))
    await _report(env, handle, total=6, today=6)
    paused = await _state(handle, CampaignStatus.PAUSED)
    assert paused.status_reason == "budget_exhausted"

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(CampaignWorkflow.change_status, StatusRequest(target=CampaignStatus.ACTIVE))
    assert refused.value.cause.type == "budget_exhausted"
    assert "resumes by itself" in refused.value.cause.message

    now = await env.get_current_time()
    midnight = periods.next_midnight(now, TZ)
    await env.sleep((midnight - now).total_seconds() - 60)
    assert (await handle.query(CampaignWorkflow.current)).status == CampaignStatus.PAUSED  # not yet
    await env.sleep(120)
    resumed = await _state(handle, CampaignStatus.ACTIVE)
    assert resumed.status_reason == "budget_available"

    audit = (await api.get(f"/api/campaigns/{campaign['id']}/audit")).json()["audit"]
    changes = [(e["changes"]["status"]["to"], e["reason"], e["actor"]["kind"]) for e in audit
               if e["action"] == "status_changed"]
    assert changes == [("paused", "budget_exhausted", "system"), ("active", "budget_available", "system")]
    assert (await api.get(f"/api/campaigns/{campaign['id']}")).json()["campaign"]["status"] == "active"


async def test_a_total_cap_stays_paused_until_raised(skipping, campaign: dict):
    env, _ = skipping
    handle = await _start(skipping, campaign, CampaignBudget(total=50, daily=20))
    await _report(env, handle, total=50, today=3)
    await _state(handle, CampaignStatus.PAUSED)
    await env.sleep(timedelta(days=2).total_seconds())
    assert (await handle.query(CampaignWorkflow.current)).status == CampaignStatus.PAUSED

    state = await handle.query(CampaignWorkflow.current)
    raised = state.config.model_copy(update={"version": state.config.version + 1,
                                             "budget": CampaignBudget(total=80, daily=20)})
    await handle.signal(CampaignWorkflow.configuration_changed, raised)
    resumed = await _state(handle, CampaignStatus.ACTIVE)
    assert resumed.status_reason == "budget_available"


async def test_spend_below_the_caps_or_stale_reports_change_nothing(skipping, campaign: dict):
    env, _ = skipping
    handle = await _start(skipping, campaign, CampaignBudget(daily=5))
    now = await env.get_current_time()
    yesterday = periods.local_date(now, TZ) - timedelta(days=1)
    await handle.signal(CampaignWorkflow.spend_reported, BudgetSpend(total=9, day=yesterday, today=9, at=now))
    await _report(env, handle, total=9, today=4)
    await asyncio.sleep(0.3)
    assert (await handle.query(CampaignWorkflow.current)).status == CampaignStatus.ACTIVE
