"""How the API talks to a campaign's workflow: start it, ask it to change status, tell it
the configuration changed.

Every call can also start the workflow (update-with-start, signal-with-start) from the
Postgres row, so a campaign whose workflow has gone missing heals on its next change
instead of failing forever. An archived campaign's closed workflow is never restarted.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from campaigns import search_attributes as sa
from campaigns.api.errors import Conflict, Unavailable
from campaigns.domain import pipeline
from campaigns.domain.config import CampaignConfiguration, CampaignStatus
from campaigns.domain.messages import CallingWindowState, CampaignState, StatusRequest, StatusResult, WorkflowConfig
from campaigns.settings import Settings
from campaigns.workflows.campaign import CampaignWorkflow, workflow_id

# Refusals that mean "a service the check needs is down, retry" rather than "not allowed".
_UNAVAILABLE = {"knowledge_base_unavailable"}


def workflow_config(row: asyncpg.Record | dict[str, Any]) -> WorkflowConfig:
    config = CampaignConfiguration.model_validate(row["config"])
    return WorkflowConfig(
        version=row["version"],
        name=row["name"],
        type=row["type"],
        channel=row["channel"],
        timezone=config.timezone,
        schedule=config.schedule,
        budget=config.budget,
        goals=config.goals,
        pipeline_fingerprint=pipeline.fingerprint(
            config.flow_id, config.voice_settings.model_dump(mode="json"), config.knowledge_base_ids
        ),
    )


def state_from_row(row: asyncpg.Record) -> CampaignState:
    """The workflow's starting state, from the campaign's row (new, or rebuilt if lost)."""
    return CampaignState(
        campaign_id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        status=row["status"],
        status_reason=row["status_reason"],
        config=workflow_config(row),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        changed_at=row["status_changed_at"],
        window=CallingWindowState(open=row["window_open"], next_change=row["next_window_change"]),
    )


def _start_options(row: asyncpg.Record, settings: Settings) -> dict[str, Any]:
    return {
        "id": workflow_id(str(row["id"])),
        "task_queue": settings.temporal_task_queue,
        "search_attributes": TypedSearchAttributes(
            [
                SearchAttributePair(sa.ORGANIZATION, str(row["organization_id"])),
                SearchAttributePair(sa.STATUS, row["status"]),
                SearchAttributePair(sa.TYPE, row["type"]),
                SearchAttributePair(sa.CHANNEL, row["channel"]),
            ]
        ),
        "static_summary": f"Campaign {row['name']}"[:200],
        # An archived campaign's workflow completed and is never started again; one that was
        # terminated or failed may be, from the projection.
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    }


async def start(client: Client, settings: Settings, row: asyncpg.Record) -> WorkflowHandle:
    """Start the workflow of a campaign just inserted (its transaction still open)."""
    return await client.start_workflow(
        CampaignWorkflow.run,
        state_from_row(row),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **_start_options(row, settings),
    )


async def discard(handle: WorkflowHandle) -> None:
    """Best effort: end the workflow of a campaign whose creation did not commit."""
    try:
        await handle.terminate("campaign creation was rolled back")
    except RPCError:
        pass  # left idle: it never acts without a request, and no request can name it


async def change_status(
    client: Client,
    settings: Settings,
    row: asyncpg.Record,
    request: StatusRequest,
    *,
    update_id: str | None = None,
) -> StatusResult:
    """Ask the workflow for a status change and wait until it is persisted."""
    if row["status"] == CampaignStatus.ARCHIVED:
        raise Conflict(
            f"invalid status transition: archived -> {request.target.value} (archived is final)",
            code="invalid_transition",
            details={"from": "archived", "to": request.target.value},
        )
    # One id for every try of this request: Temporal applies an update id once per run.
    update_id = update_id or f"status-{uuid.uuid4()}"
    try:
        return await asyncio.wait_for(
            _update_with_start(client, settings, row, request, update_id), timeout=settings.workflow_update_timeout_s
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            if cause.type in _UNAVAILABLE:
                raise Unavailable(cause.message, code=cause.type, details=details) from None
            raise Conflict(cause.message, code=cause.type or "invalid_transition", details=details) from None
        raise
    except WorkflowAlreadyStartedError:
        # Its workflow completed (archived) although the projection had not caught up yet.
        raise Conflict("the campaign's lifecycle has finished (archived)", code="campaign_archived") from None
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise Unavailable(
            "the campaign's workflow has not confirmed the change yet; retry "
            "(with the same Idempotency-Key the retry joins the pending change)",
            code="workflow_timeout",
        ) from None
    except RPCError as err:
        raise Unavailable(
            f"could not reach the campaign's workflow: {err.message}", code="temporal_unavailable"
        ) from None


async def _update_with_start(
    client: Client, settings: Settings, row: asyncpg.Record, request: StatusRequest, update_id: str
) -> StatusResult:
    delay = 0.05
    while True:
        operation = WithStartWorkflowOperation(
            CampaignWorkflow.run,
            state_from_row(row),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            **_start_options(row, settings),
        )
        try:
            return await client.execute_update_with_start_workflow(
                CampaignWorkflow.change_status, request, start_workflow_operation=operation, id=update_id
            )
        except RPCError as err:
            if not _not_ready(err):
                raise
        # The workflow task that was to take the update failed, typically because it ended
        # the run (continue-as-new) just as the update arrived: the update was not applied,
        # and the next run takes it.
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _not_ready(err: RPCError) -> bool:
    return any(d.type_url.endswith("WorkflowNotReadyFailure") for d in err.grpc_status.details) or (
        "unexpected workflow task failure" in err.message
    )


async def configuration_changed(client: Client, settings: Settings, row: asyncpg.Record) -> None:
    """Tell the workflow about the new configuration (starting it if it has gone missing)."""
    try:
        await client.start_workflow(
            CampaignWorkflow.run,
            state_from_row(row),
            start_signal="configuration_changed",
            start_signal_args=[workflow_config(row)],
            **_start_options(row, settings),
        )
    except RPCError as err:
        raise Unavailable(
            f"configuration saved, but the campaign's workflow could not be told: {err.message}; "
            "repeat the request to retry",
            code="temporal_unavailable",
        ) from None
