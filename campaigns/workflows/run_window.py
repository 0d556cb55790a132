"""RunWindowWorkflow: what a campaign's recurrence Schedule starts at each occurrence.

It only relays: it tells the campaign's workflow when the Schedule fired (the scheduled
time, not the start time, so a late start still names the right occurrence). The
campaign workflow decides which run window that opens, by the one DST rule.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from campaigns.messages import campaign as m
    from campaigns.messages.campaign import RunWindowFired, RunWindowRequest

# Set by Temporal on workflows a Schedule starts: the instant the action was scheduled for.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=m.RUN_WINDOW_WORKFLOW)
class RunWindowWorkflow:
    @workflow.run
    async def run(self, request: RunWindowRequest) -> str:
        fired_at = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        campaign = workflow.get_external_workflow_handle(m.workflow_id(request.campaign_id))
        try:
            await campaign.signal(
                m.RUN_WINDOW_FIRED,
                RunWindowFired(fired_at=fired_at, workflow_id=workflow.info().workflow_id),
            )
        except FailureError as err:
            # The campaign's workflow is gone (archived): there is nothing to open.
            return f"not delivered: {err}"
        return f"fired at {fired_at.isoformat()}"
