"""CampaignWorkflow: one per campaign (`campaign-<id>`), from its first status change
(a draft is only a row) until it is archived.

It owns the lifecycle status. Clients change it through the `change_status` Update
(validated before it enters history); the handler writes the new status to Postgres
through an activity before it returns, so the caller's next read agrees. Each request is
recorded in Postgres first and named by its id (the update id); the workflow remembers
the ids it applied, across continue-as-new, so a request sent again is answered, not
applied twice. The workflow
moves the campaign by itself at its schedule's start and end, on timers: an idle
campaign costs no worker CPU. Everything here is deterministic; I/O lives in activities.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeValue,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from campaigns.domain import budget, lifecycle, pipeline
    from campaigns.domain.budget import BudgetSpend
    from campaigns.domain.config import FINISHED_STATUSES, CampaignStatus
    from campaigns.domain.lifecycle import Transition, TransitionError
    from campaigns.domain.timeutil import utc_to_local
    from campaigns.messages import abtest as ab
    from campaigns.messages import campaign as m
    from campaigns.messages import search_attributes as sa
    from campaigns.messages.abtest import ABTestStart, ABTestState
    from campaigns.messages.campaign import (
        REMEMBERED_REQUESTS,
        AppliedRequest,
        CampaignState,
        PersistTransition,
        RunWindowFired,
        StatusRequest,
        StatusResult,
        WorkflowConfig,
    )
    from campaigns.messages.common import SYSTEM, ActivityOptions, Actor
    from campaigns.workflows.calling_window import CallingWindow

S = CampaignStatus

# Store writes retry until Postgres answers: a status change must not be lost, and the
# write is idempotent (keyed by the transition id). The write takes milliseconds; a short
# timeout is what hands it to another worker soon when the one running it was killed.
_STORE: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=3),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
}


# The pipeline may be down for hours: retry until it answers, backing off to a minute.
_PIPELINE: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        maximum_interval=timedelta(seconds=60),
        non_retryable_error_types=["pipeline_refused"],
    ),
}
# A person waits on an activation: a knowledge-base check gets a few quick tries only.
_KB_CHECK: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_attempts=3),
}


@workflow.defn(name=m.WORKFLOW)
class CampaignWorkflow:
    @workflow.init
    def __init__(self, state: CampaignState) -> None:
        self.state = state
        # Status changes run one at a time: each one's activity finishes before the next starts.
        self._lock = asyncio.Lock()
        self._woken = False  # set by signals that change what the main loop waits for
        self._wake_reason = "window"  # why the calling window is re-planned after a wake
        self._window = CallingWindow(self.state, publish=self._publish)
        self._pipeline_busy = False  # an operation is on its way to the voice-AI pipeline

    @workflow.run
    async def run(self, state: CampaignState) -> CampaignState:
        # Search attributes and details do not all survive continue-as-new: set them every run.
        self._publish()
        # Runs beside the main loop, so a pipeline that is down never delays a scheduled transition.
        pipeline_sync = asyncio.create_task(self._sync_pipeline())

        # Catch up with the clock first: a run continued or rebuilt may find a change due.
        await self._apply_due_transitions()
        while self.state.status != S.ARCHIVED:
            await self._sleep_until_something_to_do()
            if self.state.status == S.ARCHIVED:
                break
            await self._apply_due_transitions()
            await self._apply_budget()
            if workflow.info().is_continue_as_new_suggested():
                # Let in-flight updates, signals and pipeline calls finish first, so none is
                # lost in the hand-over (the next run resumes from state.pipeline).
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._pipeline_busy)
                self.state.runs += 1
                workflow.continue_as_new(self.state)

        # An archived campaign is deprovisioned before its workflow completes.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._pipeline_busy and self._pipeline_next() is None
        )
        pipeline_sync.cancel()
        return self.state

    # --- The client's interface --------------------------------------------------------

    @workflow.update(name=m.CHANGE_STATUS)
    async def change_status(self, request: StatusRequest) -> StatusResult:
        async with self._lock:
            applied = self._applied(request)
            if applied is not None:
                return applied  # re-sent after a continue-as-new: answered, not applied twice
            if request.config is not None:
                self.configuration_changed(request.config)
            previous = self.state.status
            transition = self._plan(request)  # re-checked: an earlier update may have changed things
            await self._apply(transition, request.actor, request_id=request.request_id)
            await self._window.sync("status")  # the window (and recurrence) follow before the caller reads
            # The main loop may be waiting with a deadline (or none) computed for the old status.
            self._woken = True
            result = self._result(previous)
            if request.request_id is not None:
                remembered = self.state.applied_requests
                remembered.append(AppliedRequest(request_id=request.request_id, result=result))
                del remembered[:-REMEMBERED_REQUESTS]
            return result

    @change_status.validator
    def _validate_change_status(self, request: StatusRequest) -> None:
        if self._applied(request) is not None:
            return
        config = request.config
        self._plan(request, config if config is not None and config.version > self.state.config.version else None)

    @workflow.signal(name=m.CONFIGURATION_CHANGED)
    def configuration_changed(self, config: WorkflowConfig) -> None:
        """Postgres holds the configuration; this tells the workflow what it acts on."""
        if config.version <= self.state.config.version:
            return  # an older signal arriving late
        self.state.config = config
        self._woken = True
        self._wake_reason = "schedule_changed"
        self._publish()

    @workflow.signal(name=m.RUN_WINDOW_FIRED)
    def run_window_fired(self, fired: RunWindowFired) -> None:
        """The recurrence's Temporal Schedule fired: a run window opens."""
        if self._window.on_fired(fired):
            self._woken = True
            self._wake_reason = "run_window"

    @workflow.signal(name=m.SPEND_REPORTED)
    def spend_reported(self, spend: BudgetSpend) -> None:
        """The analytics side reports spend that reached a budget cap."""
        if self.state.spend is None or spend.at >= self.state.spend.at:
            self.state.spend = spend
            self._woken = True

    @workflow.update(name=m.START_AB_TEST)
    async def start_ab_test(self, start: ABTestStart) -> str:
        """Start an A/B test as this campaign's child; it evaluates and concludes by itself."""
        try:
            await workflow.start_child_workflow(
                ab.WORKFLOW,
                ABTestState(start=start),
                id=ab.workflow_id(start.test_id),
                static_summary=f"A/B test {start.name}"[:200],
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ORGANIZATION, start.organization_id)]),
                # Outlives this run: the campaign continues-as-new while its test goes on.
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            pass  # a retried request: the test is running already
        return ab.workflow_id(start.test_id)

    @start_ab_test.validator
    def _validate_start_ab_test(self, start: ABTestStart) -> None:
        if self.state.status in FINISHED_STATUSES or self.state.status == S.DRAFT:
            raise ApplicationError(
                f"a campaign that is {self.state.status.value} cannot start an A/B test",
                type="campaign_not_testable",
                non_retryable=True,
            )

    @workflow.query(name=m.CURRENT)
    def current(self) -> CampaignState:
        return self.state

    # --- Internals -----------------------------------------------------------------------

    def _applied(self, request: StatusRequest) -> StatusResult | None:
        """What this request's earlier application answered, if it was applied already."""
        if request.request_id is None:
            return None
        return next((a.result for a in self.state.applied_requests if a.request_id == request.request_id), None)

    def _plan(self, request: StatusRequest, config: WorkflowConfig | None = None) -> Transition:
        """The transition the request means now, with `config` (default: the workflow's own)."""
        config = config or self.state.config
        try:
            transition = lifecycle.plan_request(
                self.state.status,
                request.target,
                schedule=config.schedule,
                timezone=config.timezone,
                now=workflow.now(),
                reason=request.reason,
            )
            if transition.target in (S.ACTIVE, S.SCHEDULED):
                refusal = budget.refusal(config.budget, self.state.spend, now=workflow.now(), tz=config.timezone)
                if refusal:
                    raise TransitionError(f"cannot {transition.action}: {refusal}", code=budget.REASON)
            return transition
        except TransitionError as err:
            raise ApplicationError(
                str(err),
                {"from": self.state.status.value, "to": request.target.value},
                type=err.code,
                non_retryable=True,
            ) from None

    async def _sleep_until_something_to_do(self) -> None:
        s, c = self.state, self.state.config
        wake = _earliest(
            lifecycle.next_wakeup(s.status, schedule=c.schedule, timezone=c.timezone),
            budget.next_wakeup(s.status, s.status_reason, c.budget, s.spend, now=workflow.now(), tz=c.timezone),
        )
        window_wake = self._window.wakeup(workflow.now())
        if window_wake is not None and (wake is None or window_wake < wake):
            wake = window_wake
        wake_condition = lambda: (  # noqa: E731
            self._woken or self.state.status == S.ARCHIVED or workflow.info().is_continue_as_new_suggested()
        )
        if wake is None:
            await workflow.wait_condition(wake_condition)
        else:
            delay = (wake - workflow.now()).total_seconds()
            if delay > 0:
                try:
                    await workflow.wait_condition(
                        wake_condition, timeout=delay, timeout_summary=f"next change at {wake.isoformat()}"
                    )
                except TimeoutError:
                    pass
        self._woken = False

    async def _apply_due_transitions(self) -> None:
        async with self._lock:
            due = lifecycle.due_transition(
                self.state.status,
                schedule=self.state.config.schedule,
                timezone=self.state.config.timezone,
                now=workflow.now(),
            )
            if due is not None:
                await self._apply_by_itself(due)
            reason, self._wake_reason = ("status" if due else self._wake_reason), "window"
            await self._window.sync(reason)

    async def _apply_budget(self) -> None:
        """Pause when spend reached a cap; resume once it no longer does (next local midnight
        for a daily cap, or a raised budget). Resuming goes through the lifecycle, so a
        schedule that ended meanwhile ends the campaign instead."""
        async with self._lock:
            s, c = self.state, self.state.config
            action = budget.due(s.status, s.status_reason, c.budget, s.spend, now=workflow.now(), tz=c.timezone)
            if action == "pause":
                await self._apply(Transition(S.ACTIVE, S.PAUSED, "pause", budget.REASON), SYSTEM)
            elif action == "resume":
                transition = lifecycle.plan_request(
                    S.PAUSED,
                    S.ACTIVE,
                    schedule=c.schedule,
                    timezone=c.timezone,
                    now=workflow.now(),
                    reason=budget.RESUME_REASON,
                )
                await self._apply_by_itself(transition)

    async def _apply_by_itself(self, transition: Transition) -> None:
        """A transition the workflow makes on its own (schedule, budget): nobody waits on it
        to be told that a knowledge base is gone, so the campaign pauses and says why."""
        try:
            await self._apply(transition, SYSTEM)
        except ApplicationError as err:
            if err.type == "knowledge_base_missing":
                await self._apply(Transition(transition.source, S.PAUSED, "pause", "knowledge_base_missing"), SYSTEM)
            elif err.type == "knowledge_base_unavailable":
                # The bases were checked when configured; a brief outage must not block a start.
                workflow.logger.warning("knowledge bases unverified at %s: %s", transition.action, err.message)
                await self._apply(transition, SYSTEM, check_knowledge_bases=False)
            else:
                raise

    async def _apply(
        self,
        transition: Transition,
        actor: Actor,
        *,
        check_knowledge_bases: bool = True,
        request_id: str | None = None,
    ) -> None:
        if check_knowledge_bases and transition.target in (S.ACTIVE, S.SCHEDULED) and self._has_knowledge_bases():
            await self._require_knowledge_bases()
        now = workflow.now()
        state = self.state
        started_at = state.started_at or (now if transition.target == S.ACTIVE else None)
        ended_at = now if transition.target == S.ENDED else state.ended_at
        # The calling-window change this causes is written in the same transaction.
        window = self._window.plan("status", status=transition.target)
        # A regular activity, not a local one: it runs only once the workflow task that decided
        # the change is committed, so a task that fails (say, a continue-as-new racing a new
        # update) can never leave behind a status written for a change that then did not happen.
        await workflow.execute_activity(
            m.PERSIST_TRANSITION,
            PersistTransition(
                transition_id=str(workflow.uuid4()),
                campaign_id=state.campaign_id,
                organization_id=state.organization_id,
                source=transition.source,
                target=transition.target,
                reason=transition.reason,
                actor=actor,
                at=now,
                started_at=started_at,
                ended_at=ended_at,
                event_type=transition.event_type,
                event_data={
                    "campaignId": state.campaign_id,
                    "name": state.config.name,
                    "previousStatus": transition.source.value,
                    "status": transition.target.value,
                    "reason": transition.reason,
                    "actor": actor.model_dump(),
                },
                window=window,
                request_id=request_id,
            ),
            summary=f"{transition.source.value} → {transition.target.value}",
            **_STORE,
        )
        state.status = transition.target
        state.status_reason = transition.reason
        state.started_at, state.ended_at, state.changed_at = started_at, ended_at, now
        state.transitions += 1
        if window is not None:
            self._window.applied(window)
        self._woken = True  # the main loop re-plans its timer for the new status
        self._publish()

    def _has_knowledge_bases(self) -> bool:
        """Whether an activation has knowledge bases to look for. A configuration sent before
        it named them (None) is checked, as it always was, so old histories replay the same."""
        ids = self.state.config.knowledge_base_ids
        return ids is None or len(ids) > 0

    async def _require_knowledge_bases(self) -> None:
        """Refuse to activate (or schedule, or resume) a campaign whose knowledge base is gone."""
        check = pipeline.KnowledgeBaseCheck(
            campaign_id=self.state.campaign_id, organization_id=self.state.organization_id
        )
        try:
            missing = await workflow.execute_activity(
                m.MISSING_KNOWLEDGE_BASES, check, result_type=list[str], summary="check knowledge bases", **_KB_CHECK
            )
        except ActivityError as err:
            raise ApplicationError(
                f"could not check the campaign's knowledge bases: {err.cause or err}; retry shortly",
                type="knowledge_base_unavailable",
                non_retryable=True,
            ) from None
        if missing:
            raise ApplicationError(
                f"knowledge base(s) {', '.join(repr(m) for m in missing)} no longer exist; remove them from "
                "knowledgeBaseIds (or restore them) before activating",
                {"missingKnowledgeBaseIds": missing},
                type="knowledge_base_missing",
                non_retryable=True,
            )

    def _pipeline_next(self) -> pipeline.PipelineOperation | None:
        s = self.state
        return pipeline.next_operation(s.status, s.config.pipeline_fingerprint, s.pipeline)

    async def _sync_pipeline(self) -> None:
        """Keep the voice-AI pipeline in step with the status and configuration: one
        operation at a time, each retried until the pipeline answers, so it sees them in order."""
        while True:
            await workflow.wait_condition(lambda: self._pipeline_next() is not None)
            operation = self._pipeline_next()
            assert operation is not None
            s, applied = self.state, self.state.pipeline
            request = pipeline.PipelineRequest(
                campaign_id=s.campaign_id,
                organization_id=s.organization_id,
                operation=operation,
                fingerprint=s.config.pipeline_fingerprint,
                sequence=(applied.operations if applied else 0) + 1,
                reason=s.status.value,
            )
            status = s.status
            self._pipeline_busy = True
            try:
                await workflow.execute_activity(
                    m.SYNC_PIPELINE, request, summary=f"pipeline {operation.value}", **_PIPELINE
                )
                s.pipeline = pipeline.after(applied, request)
            except ActivityError as err:
                workflow.logger.warning("the pipeline refused %s: %s", operation.value, err.cause or err)
                s.pipeline = pipeline.refused(applied, request, status, str(err.cause or err))
            finally:
                self._pipeline_busy = False
            workflow.set_current_details(self._details())

    def _result(self, previous: CampaignStatus) -> StatusResult:
        s = self.state
        return StatusResult(
            previous=previous,
            status=s.status,
            status_reason=s.status_reason,
            changed_at=s.changed_at or workflow.now(),
            started_at=s.started_at,
            ended_at=s.ended_at,
        )

    def _publish(self) -> None:
        """Search attributes and the readable summary the Temporal UI shows."""
        s, c = self.state, self.state.config
        wanted: dict[SearchAttributeKey[Any], SearchAttributeValue] = {
            sa.ORGANIZATION: s.organization_id,
            sa.STATUS: s.status.value,
            sa.TYPE: c.type.value,
            sa.CHANNEL: c.channel.value,
            sa.WINDOW_OPEN: s.window.open,
        }
        current = workflow.info().typed_search_attributes
        # Only what changed: an upsert is a history event, and most runs start with these set.
        changed = [key.value_set(value) for key, value in wanted.items() if current.get(key) != value]
        if changed:
            workflow.upsert_search_attributes(changed)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s, c = self.state, self.state.config
        lines = [
            f"**{c.name}** — {s.status.value}" + (f" ({s.status_reason})" if s.status_reason else ""),
            f"{c.type.value} · {c.channel.value} · {c.timezone}",
        ]
        if s.pipeline is not None:
            lines.append(
                "Pipeline: "
                + ("provisioned" if s.pipeline.provisioned else "not provisioned")
                + (f" (refused: {s.pipeline.refusal})" if s.pipeline.refused else "")
            )
        wake = lifecycle.next_wakeup(s.status, schedule=c.schedule, timezone=c.timezone)
        if wake is not None:
            what = "becomes active" if s.status == S.SCHEDULED else "ends"
            lines.append(f"Next: {what} at {_local(wake, c.timezone)} ({wake:%Y-%m-%d %H:%M} UTC)")
        window = self._window.details()
        if window:
            lines.append(window)
        return "\n\n".join(lines)


def _earliest(*instants: datetime | None) -> datetime | None:
    return min((i for i in instants if i is not None), default=None)


def _local(instant: datetime, tz: str) -> str:
    return f"{utc_to_local(instant, tz):%Y-%m-%d %H:%M} {tz}"
