"""Starting delivery workflows: the dispatcher starts one for each delivery whose first
(direct) attempt failed, to drive its retries.

The hand-over is recorded first, in the transaction that records the failed attempt
(`workflow_started = false`); the workflow is started after, and the flag set once it
surely exists. A crash in between leaves the flag unset, and the dispatcher's sweep starts
it later. Starting twice is harmless: the workflow id is the delivery's, and the activity
sends only for a pending delivery in the run it drives.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from campaigns.messages.webhook_delivery import DeliveryInput, workflow_id
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("campaigns.webhooks")


@dataclass(frozen=True)
class Pending:
    delivery_id: UUID
    run: int
    event_type: str
    endpoint_id: UUID  # the summary in the Temporal UI names it; a URL may be a credential
    attempt: int = 1  # the workflow's first attempt (2 after a failed direct one)
    not_before: datetime | None = None  # not before the retry the failed attempt scheduled


def _attempt_timeout(settings: Settings) -> float:
    # Sending, plus waiting for a slot, plus recording.
    return settings.webhook_timeout_s + 30


async def start_one(client: Client, settings: Settings, item: Pending) -> bool:
    """Start the workflow of one delivery run; True once it surely exists (or existed)."""
    try:
        await client.start_workflow(
            WebhookDeliveryWorkflow.run,
            DeliveryInput(
                delivery_id=str(item.delivery_id),
                run=item.run,
                attempt_timeout_s=_attempt_timeout(settings),
                attempt=item.attempt,
                not_before=item.not_before,
            ),
            id=workflow_id(item.delivery_id),
            task_queue=settings.temporal_task_queue,
            # The first run's id is never reused, so a sweep can never send an event twice;
            # a redelivery is a new run of the same id once the previous one has closed.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
            if item.run == 0
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{item.event_type} → endpoint {item.endpoint_id}",
            # In the worker (the dispatcher), the first task comes back with the start: no
            # round trip through the matching service. Elsewhere it is an ordinary start.
            request_eager_start=True,
        )
    except WorkflowAlreadyStartedError:
        pass
    except RPCError as err:
        log.warning("could not start delivery %s yet (%s); the sweep will retry", item.delivery_id, err.message)
        return False
    return True


async def start_all(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    items: list[Pending],
    *,
    gate: asyncio.Semaphore | None = None,
) -> int:
    """Start many delivery workflows concurrently (at most as many at once as `gate` lets
    through) and mark the ones started; return how many."""
    gate = gate or asyncio.Semaphore(64)

    async def one(item: Pending) -> UUID | None:
        async with gate:
            return item.delivery_id if await start_one(client, settings, item) else None

    started = [d for d in await asyncio.gather(*(one(i) for i in items)) if d is not None]
    await repo.mark_started(pool, started)
    return len(started)
