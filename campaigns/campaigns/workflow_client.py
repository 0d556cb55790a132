"""The one place that starts a campaign's workflow or talks to it: ask it to change
status, tell it the configuration changed or that spend reached a cap.

A draft has no workflow: it is a row. Its workflow starts with its first lifecycle
request, and every call here can start it (update-with-start, signal-with-start) from the
Postgres row, which also heals a campaign whose workflow has gone missing. An archived
campaign's closed workflow is never restarted.

Every call waits at most a bound: past it, the caller learns that the workflow has not
answered yet (`NoAnswer`), not that it refused.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
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

from campaigns.campaigns.repository import Row
from campaigns.domain import pipeline
from campaigns.domain.budget import BudgetSpend
from campaigns.domain.config import CampaignConfiguration
from campaigns.errors import Conflict, Unavailable
from campaigns.messages import campaign as m
from campaigns.messages import search_attributes as sa
from campaigns.messages.campaign import (
    CallingWindowState,
    CampaignState,
    StatusRequest,
    StatusResult,
    WorkflowConfig,
    workflow_id,
)
from campaigns.settings import Settings
from campaigns.workflows.campaign import CampaignWorkflow

# Refusals that mean "a service the check needs is down, retry" rather than "not allowed".
RETRYABLE_REFUSALS = {"knowledge_base_unavailable"}


class NoAnswer(Exception):
    """The workflow did not answer within the bound (Temporal or the workers are down or
    slow): the request may still be applied; ask again with the same id to learn how."""


def workflow_config(row: Row) -> WorkflowConfig:
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
        knowledge_base_ids=list(config.knowledge_base_ids),
    )


def state_from_row(row: Row) -> CampaignState:
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


def _start_options(row: Row, settings: Settings) -> dict[str, Any]:
    return {
        "id": workflow_id(str(row["id"])),
        "task_queue": settings.temporal_task_queue,
        "search_attributes": TypedSearchAttributes(
            [
                SearchAttributePair(sa.ORGANIZATION, str(row["organization_id"])),
                SearchAttributePair(sa.STATUS, row["status"]),
                SearchAttributePair(sa.TYPE, row["type"]),
                SearchAttributePair(sa.CHANNEL, row["channel"]),
                # All of them at the start, so its first task has none to upsert.
                SearchAttributePair(sa.WINDOW_OPEN, bool(row["window_open"])),
            ]
        ),
        "static_summary": f"Campaign {row['name']}"[:200],
        # An archived campaign's workflow completed and is never started again; one that was
        # terminated or failed may be, from the projection.
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        # Short, so that a task a killed worker held goes to another one within seconds.
        "task_timeout": timedelta(seconds=settings.workflow_task_timeout_s),
    }


async def change_status(
    client: Client, settings: Settings, row: Row, request: StatusRequest, *, wait_s: float
) -> StatusResult:
    """Send a recorded status request (its id is the update id, the same on every try) and
    wait at most `wait_s` for the workflow's answer: the result once the change is persisted;
    Conflict (or Unavailable, for a refusal to retry) when it refuses; NoAnswer past the bound."""
    assert request.request_id is not None
    try:
        async with asyncio.timeout(wait_s):
            return await _update_with_start(client, settings, row, request, request.request_id)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            if cause.type in RETRYABLE_REFUSALS:
                raise Unavailable(cause.message, code=cause.type, details=details) from None
            raise Conflict(cause.message, code=cause.type or "invalid_transition", details=details) from None
        raise NoAnswer(f"the update failed without a refusal: {err}") from None
    except WorkflowAlreadyStartedError:
        # Its workflow completed (archived) although the projection had not caught up yet.
        raise Conflict(
            "the campaign's lifecycle has finished (archived)",
            code="campaign_archived",
            details={"from": "archived", "to": request.target.value},
        ) from None
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise NoAnswer("the campaign's workflow has not answered yet") from None
    except RPCError as err:
        raise NoAnswer(f"could not reach the campaign's workflow: {err.message}") from None
    except RuntimeError as err:  # a lazy client's first connection failed
        raise NoAnswer(f"could not reach Temporal: {err}") from None


async def _update_with_start(
    client: Client, settings: Settings, row: Row, request: StatusRequest, update_id: str
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
            # temporalio's @workflow.update(name=...) overload keeps an async handler's coroutine
            # in its return type, so this call's overload does not match; the result is a StatusResult.
            return await client.execute_update_with_start_workflow(
                CampaignWorkflow.change_status,  # type: ignore[arg-type]
                request,
                start_workflow_operation=operation,
                id=update_id,
            )
        except RPCError as err:
            _settle(operation)
            if not _not_ready(err):
                raise
        except BaseException:
            _settle(operation)
            raise
        # The workflow task that was to take the update failed, typically because it ended
        # the run (continue-as-new) just as the update arrived: the update was not applied,
        # and the next run takes it.
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _settle(operation: WithStartWorkflowOperation) -> None:
    """Read the start's outcome that the SDK records and nobody reads when the update fails
    (a timeout, say), so asyncio does not log it as an exception never retrieved."""
    started = operation._workflow_handle
    if started.done() and not started.cancelled():
        started.exception()


def _not_ready(err: RPCError) -> bool:
    return any(d.type_url.endswith("WorkflowNotReadyFailure") for d in err.grpc_status.details) or (
        "unexpected workflow task failure" in err.message
    )


async def configuration_changed(client: Client, settings: Settings, row: Row, *, wait_s: float) -> bool:
    """Tell the workflow the configuration in `row` (starting it from the row if it has gone
    missing), waiting at most `wait_s`. True once the signal is accepted (the workflow will
    act on it); False if the campaign's lifecycle has finished (archived: nothing to tell).
    NoAnswer if Temporal did not accept it in time."""
    try:
        async with asyncio.timeout(wait_s):
            await client.start_workflow(
                CampaignWorkflow.run,
                state_from_row(row),
                start_signal=m.CONFIGURATION_CHANGED,
                start_signal_args=[workflow_config(row)],
                **_start_options(row, settings),
            )
        return True
    except WorkflowAlreadyStartedError:
        return False
    except TimeoutError:
        raise NoAnswer("Temporal did not accept the signal in time") from None
    except RPCError as err:
        raise NoAnswer(f"could not reach the campaign's workflow: {err.message}") from None
    except RuntimeError as err:  # a lazy client's first connection failed
        raise NoAnswer(f"could not reach Temporal: {err}") from None


async def report_spend(client: Client, campaign_id: str, spend: BudgetSpend) -> None:
    """Tell the workflow that spend reached a budget cap (it pauses the campaign)."""
    handle = client.get_workflow_handle(workflow_id(campaign_id))
    await handle.signal(CampaignWorkflow.spend_reported, spend)
