"""The webhook delivery workflow against histories recorded by earlier code: workflows
running when a new version is deployed must replay without diverging."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from campaigns.workflows.webhook_delivery import WebhookDeliveryWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def test_a_history_from_before_direct_first_attempts_replays():
    """Recorded when the workflow made every attempt, the first included: attempt 1 answered
    500, attempt 2 succeeded after a retry timer. Its input has no `attempt` or `not_before`,
    so the workflow must start at attempt 1 without waiting, as it did then."""
    history = WorkflowHistory.from_json(
        "webhook-delivery-legacy", (HISTORIES / "webhook_delivery_retry_v1.json").read_text()
    )
    replayer = Replayer(workflows=[WebhookDeliveryWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
