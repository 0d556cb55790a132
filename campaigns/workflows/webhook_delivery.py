"""WebhookDeliveryWorkflow: one per (event, endpoint), `webhook-delivery-<delivery id>`,
the delivery id derived from both. It drives the attempts and the waits between them;
each attempt is an activity that sends, records and decides what comes next.

Built for volume (every event fans out to every subscribed endpoint):
- attempts are local activities, so a delivery that succeeds first time is a single
  workflow task and about seven history events, with no activity-task round trip
  through the server;
- the waits between attempts are durable timers, so a retry hours later survives any
  number of worker restarts;
- the workflow runs outside the sandbox: it imports only pure models, reads no clock and
  draws no randomness (the activity computes the jittered delay, and its result is in
  history), so the per-run cost of building a sandbox buys nothing here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from campaigns.activities.webhooks import WebhookActivities
    from campaigns.domain.webhooks import AttemptRequest, DeliveryInput

# The activity retries only when it could not record its result (Postgres unreachable):
# HTTP failures are results, not errors.
_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30))


@workflow.defn(sandboxed=False)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery: DeliveryInput) -> str:
        attempt, throttled = 1, 0
        while True:
            outcome = await workflow.execute_local_activity_method(
                WebhookActivities.attempt_delivery,
                AttemptRequest(
                    delivery_id=delivery.delivery_id, run=delivery.run, attempt=attempt, throttled=throttled
                ),
                start_to_close_timeout=timedelta(seconds=delivery.attempt_timeout_s),
                retry_policy=_RECORD_RETRY,
                summary=f"attempt {attempt}",
            )
            if outcome.final:
                return outcome.status
            if outcome.counted:
                attempt, throttled = attempt + 1, 0
            else:  # the endpoint's concurrency limit was reached: ask again, not an attempt
                throttled += 1
            await workflow.sleep(timedelta(seconds=outcome.retry_in or 1.0), summary=outcome.summary[:200])
