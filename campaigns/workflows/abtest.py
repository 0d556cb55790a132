"""ABTestWorkflow: one per A/B test (`abtest-<id>`), a child of its campaign's workflow.

It owns the test's phase. On a timer it asks an activity to evaluate the test (the
statistics run there, on the pre-aggregated per-variant sums) and records each evaluation;
when an evaluation concludes — winner, no_difference, harm, max_duration or invalid — or a
client stops it, it concludes the test (which stops assignment), promotes the winner's
overrides into the campaign's configuration if the test asks for it (through the audited
configuration path, as a system actor), and records the `ab_test.concluded` event.
A running test costs no worker CPU between evaluations.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from campaigns.messages import abtest as ab
    from campaigns.messages import campaign as m
    from campaigns.messages.abtest import (
        AB_TEST_ACTOR,
        ABTestState,
        Conclude,
        Concluded,
        Conclusion,
        EvaluateRequest,
        Evaluation,
        Promote,
        Promotion,
        StopRequest,
    )
    from campaigns.messages.common import ActivityOptions, Actor, PlatformEvent

# Writes retry until Postgres answers (each is idempotent); an evaluation reads a few
# thousand rollup rows at most, so a short timeout catches a stuck one (or one whose worker
# was killed) and hands it to another worker.
_ACTIVITY: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30)),
}


@workflow.defn(name=ab.WORKFLOW)
class ABTestWorkflow:
    @workflow.init
    def __init__(self, state: ABTestState) -> None:
        self.state = state
        # Evaluations and stop requests run one at a time, so a stop never races a conclusion.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, state: ABTestState) -> ABTestState:
        self._publish()
        while self.state.status == "running":
            due = await self._sleep_until_next_evaluation()
            if workflow.info().is_continue_as_new_suggested():
                # Let a stop in flight finish first, so none is lost in the hand-over; the new
                # run sleeps until the evaluation that was due (the state carries its time).
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self.state.status == "running":
                    self.state.runs += 1
                    workflow.continue_as_new(self.state)
            if not due:
                continue
            async with self._lock:
                if self.state.status == "running":
                    await self._evaluate()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    # --- The client's interface --------------------------------------------------------

    @workflow.update(name=ab.STOP)
    async def stop(self, request: StopRequest) -> ABTestState:
        async with self._lock:
            self._refuse_unless_running()  # re-checked: an evaluation may have concluded meanwhile
            await self._conclude("stopped", request.reason or "stopped on request", None, request.actor)
            return self.state

    @stop.validator
    def _validate_stop(self, request: StopRequest) -> None:
        self._refuse_unless_running()

    @workflow.query(name=ab.CURRENT)
    def current(self) -> ABTestState:
        return self.state

    # --- Internals -----------------------------------------------------------------------

    def _refuse_unless_running(self) -> None:
        if self.state.status != "running":
            raise ApplicationError(
                f"the test has already concluded ({self.state.conclusion})",
                {"conclusion": self.state.conclusion},
                type="ab_test_concluded",
                non_retryable=True,
            )

    async def _sleep_until_next_evaluation(self) -> bool:
        """Sleep until the next evaluation is due; False if woken earlier (stopped, or the
        history grew long enough to continue as new)."""
        s = self.state
        interval = timedelta(seconds=s.start.evaluation_interval_seconds)
        due = min((s.last_evaluated_at or s.start.started_at) + interval, s.start.ends_at)
        delay = (due - workflow.now()).total_seconds()
        if delay <= 0:
            return True
        try:
            await workflow.wait_condition(
                lambda: self.state.status != "running" or workflow.info().is_continue_as_new_suggested(),
                timeout=delay,
                timeout_summary=f"evaluation {s.evaluations + 1}",
            )
        except TimeoutError:
            return True
        return False

    async def _evaluate(self) -> None:
        s = self.state
        seq = s.evaluations + 1
        evaluation = await workflow.execute_activity(
            ab.EVALUATE,
            EvaluateRequest(test_id=s.start.test_id, seq=seq, at=workflow.now(), running=s.running),
            result_type=Evaluation,
            summary=f"evaluation {seq}",
            **_ACTIVITY,
        )
        if not evaluation.found:
            # The test's creation was rolled back after this workflow started: nothing to run.
            s.status, s.last_reason = "concluded", "discarded: the test was never created"
            return
        s.evaluations, s.last_evaluated_at = seq, workflow.now()
        s.running, s.last_reason = evaluation.running, evaluation.reason
        if evaluation.conclusion is not None:
            await self._conclude(evaluation.conclusion, evaluation.reason, evaluation.winner_variant_id, AB_TEST_ACTOR)
        self._publish()

    async def _conclude(self, conclusion: Conclusion, reason: str, winner: str | None, actor: Actor) -> None:
        s = self.state
        concluded = await workflow.execute_activity(
            ab.CONCLUDE,
            Conclude(
                test_id=s.start.test_id,
                conclusion=conclusion,
                reason=reason,
                winner_variant_id=winner,
                actor=actor,
                at=workflow.now(),
            ),
            result_type=Concluded,
            summary=conclusion,
            **_ACTIVITY,
        )
        s.status = "concluded"
        s.conclusion, s.last_reason = concluded.conclusion, concluded.reason
        s.winner_variant_id, s.concluded_at = concluded.winner_variant_id, concluded.concluded_at
        promotion: Promotion | None = None
        if s.winner_variant_id and s.start.auto_promote_winner:
            promotion = await workflow.execute_activity(
                ab.PROMOTE,
                Promote(test_id=s.start.test_id, variant_id=s.winner_variant_id),
                result_type=Promotion,
                summary="promote the winner",
                **_ACTIVITY,
            )
            s.promoted = promotion.promoted
        await workflow.execute_activity(
            m.RECORD_EVENT,
            PlatformEvent(
                # Deterministic (workflow.uuid4): a replay or a retry records one event.
                id=str(workflow.uuid4()),
                organization_id=s.start.organization_id,
                campaign_id=s.start.campaign_id,
                type="ab_test.concluded",
                data={
                    "campaignId": s.start.campaign_id,
                    "testId": s.start.test_id,
                    "name": s.start.name,
                    "conclusion": s.conclusion,
                    "reason": s.last_reason,
                    "winnerVariantId": s.winner_variant_id,
                    "promoted": promotion.promoted if promotion else False,
                    "promotion": promotion.model_dump(mode="json", by_alias=True) if promotion else None,
                    "evaluations": s.evaluations,
                    "concludedBy": actor.model_dump(),
                },
                occurred_at=s.concluded_at or workflow.now(),
            ),
            summary="ab_test.concluded",
            **_ACTIVITY,
        )
        self._publish()

    def _publish(self) -> None:
        s = self.state
        lines = [
            f"**A/B test {s.start.name}** — {s.status}" + (f": {s.conclusion}" if s.conclusion else ""),
            f"{s.start.mode} · campaign {s.start.campaign_id} · {s.evaluations} evaluations",
        ]
        if s.last_reason:
            lines.append(s.last_reason)
        if s.status == "running":
            lines.append(f"Ends at the latest {s.start.ends_at:%Y-%m-%d %H:%M} UTC")
        workflow.set_current_details("\n\n".join(lines))
