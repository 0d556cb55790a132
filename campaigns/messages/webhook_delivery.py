"""What the webhook delivery workflow and its activity say to each other, and the
workflow's id. Pure pydantic models: the workflow imports them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

WORKFLOW = "WebhookDeliveryWorkflow"
# The activity's registered name (unchanged since the first release: histories name it).
ATTEMPT_DELIVERY = "attempt_delivery"


def workflow_id(delivery: uuid.UUID | str) -> str:
    return f"webhook-delivery-{delivery}"


class DeliveryInput(BaseModel):
    delivery_id: str
    run: int = 0  # 0 the original send; n the nth redelivery
    attempt_timeout_s: float = 60.0  # an attempt's whole budget: send, record, retry of the record
    # Where the workflow takes over: the first attempt is a dispatcher's, so a workflow
    # normally starts at attempt 2, not before the retry the failed attempt scheduled.
    # (Workflows started before the dispatcher made first attempts have the defaults.)
    attempt: int = 1
    not_before: datetime | None = None


class AttemptRequest(BaseModel):
    delivery_id: str
    run: int
    attempt: int
    throttled: int = 0  # how many times in a row this attempt found no free slot


class AttemptOutcome(BaseModel):
    """What one attempt decided. `final` ends the delivery; otherwise the workflow waits
    `retry_in` seconds (computed by the activity, jitter included) and tries again."""

    final: bool
    status: Literal["succeeded", "failed", "cancelled", "pending"]
    counted: bool = True  # False when the attempt never started (concurrency limit)
    retry_in: float | None = None
    summary: str = ""
