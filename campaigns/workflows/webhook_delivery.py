"""WebhookDeliveryWorkflow: `webhook-delivery-<delivery id>`, the delivery id derived from
the event and the endpoint. It drives the retries of a delivery whose first attempt failed
(the first attempt is a dispatcher's, made straight from the delivery row, so a delivery
that succeeds at once has no workflow at all): it waits until the retry the failed attempt
scheduled, then makes the attempts and the waits between them; each attempt is an activity
that sends, records and decides what comes next.

Built for volume (an endpoint that is down fails every delivery):
- attempts are local activities, with no activity-task round trip through the server;
- the waits between attempts are durable timers, so a retry hours later survives any
  number of worker restarts;
- the workflow runs outside the sandbox: it imports only pure models, reads the time only
  through `workflow.now()` and draws no randomness (the activity computes the jittered
  delay, and its result is in history), so the per-run cost of building a sandbox buys
  nothing here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from campaigns.messages import webhook_delivery as m
    from campaigns.messages.webhook_delivery import AttemptOutcome, AttemptRequest, DeliveryInput

# The activity retries only when it could not record its result (Postgres unreachable):
# HTTP failures are results, not errors.
_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=m.WORKFLOW, sandboxed=False)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery: DeliveryInput) -> str:
        attempt, throttled = delivery.attempt, 0
        if delivery.not_before is not None:
            # The retry the failed first attempt scheduled (its backoff or Retry-After),
            # measured from when it was decided, however late this workflow started.
            wait = (delivery.not_before - workflow.now()).total_seconds()
            if wait > 0:
                await workflow.sleep(timedelta(seconds=wait), summary=f"until attempt {attempt}")
        while True:
            outcome = await workflow.execute_local_activity(
                m.ATTEMPT_DELIVERY,
                AttemptRequest(
                    delivery_id=delivery.delivery_id, run=delivery.run, attempt=attempt, throttled=throttled
                ),
                result_type=AttemptOutcome,
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
