"""How the API talks to A/B test workflows: start one as a child of the campaign's workflow
(update-with-start, so a campaign whose workflow went missing heals), and stop one."""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from campaigns.api.campaigns import workflow_client as campaign_client
from campaigns.api.errors import Conflict, Unavailable
from campaigns.domain.abtest.messages import ABTestStart, ABTestState, StopRequest, workflow_id
from campaigns.settings import Settings
from campaigns.workflows.abtest import ABTestWorkflow
from campaigns.workflows.campaign import CampaignWorkflow


async def _guarded(settings: Settings, call, what: str):
    try:
        return await asyncio.wait_for(call, timeout=settings.workflow_update_timeout_s)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            raise Conflict(cause.message, code=cause.type or "conflict", details=details) from None
        raise
    except WorkflowAlreadyStartedError:
        raise Conflict(f"{what}: the workflow has already completed", code="workflow_completed") from None
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise Unavailable(f"{what}: the workflow has not confirmed yet; retry", code="workflow_timeout") from None
    except RPCError as err:
        raise Unavailable(f"{what}: could not reach Temporal: {err.message}", code="temporal_unavailable") from None


async def start(client: Client, settings: Settings, campaign_row: asyncpg.Record, start: ABTestStart) -> None:
    """Ask the campaign's workflow to start the test's workflow as its child."""
    operation = WithStartWorkflowOperation(
        CampaignWorkflow.run,
        campaign_client.state_from_row(campaign_row),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **campaign_client._start_options(campaign_row, settings),  # the campaign's own start options
    )
    await _guarded(
        settings,
        client.execute_update_with_start_workflow(
            CampaignWorkflow.start_ab_test,
            start,
            start_workflow_operation=operation,
            id=f"start-{workflow_id(start.test_id)}",
        ),
        "could not start the A/B test",
    )


def state_from_row(row: asyncpg.Record) -> ABTestState:
    """A test workflow's state rebuilt from its row (if its workflow was lost)."""
    design = row["design"]
    return ABTestState(
        start=ABTestStart(
            test_id=str(row["id"]),
            campaign_id=str(row["campaign_id"]),
            organization_id=str(row["organization_id"]),
            name=row["name"],
            mode=row["mode"],
            started_at=row["started_at"],
            ends_at=row["ends_at"],
            evaluation_interval_seconds=design["evaluationIntervalSeconds"],
            auto_promote_winner=design.get("autoPromoteWinner", False),
        ),
        evaluations=row["evaluations"],
        last_evaluated_at=row["last_evaluated_at"],
        running=row["running"] or {},
    )


async def stop(client: Client, settings: Settings, row: asyncpg.Record, request: StopRequest) -> ABTestState:
    """Ask the test's workflow to conclude the test now. A running test whose workflow has
    gone missing is restarted from its row to take the request (it is no longer a child of
    the campaign's workflow then, but runs the same)."""
    operation = WithStartWorkflowOperation(
        ABTestWorkflow.run,
        state_from_row(row),
        id=workflow_id(str(row["id"])),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    return await _guarded(
        settings,
        client.execute_update_with_start_workflow(ABTestWorkflow.stop, request, start_workflow_operation=operation),
        "could not stop the A/B test",
    )
