"""The campaign workflow's calling window: whether it is open now, when that next
changes, and the Temporal Schedule of its recurrence.

Workflow code (deterministic, no I/O): it computes everything with the pure timeline of
`domain.schedule` and writes through activities. The window is open only while the
campaign is `active` and its timeline says so; a change is recorded as a
`campaign.window_opened` / `campaign.window_closed` event and projected onto the campaign
row (`windowOpen`, `nextWindowChange`) and the `CampaignWindowOpen` search attribute.

With a recurrence, run windows open when its Schedule fires (RunWindowWorkflow signals
`run_window_fired`). On the rare clock-change days the Schedule leaves an occurrence out
(Temporal's calendar would skip or double it) and this workflow opens it itself at the
rule's instant, if the Schedule is not paused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from campaigns.domain.config import CampaignStatus
    from campaigns.domain.lifecycle import schedule_bounds
    from campaigns.domain.schedule import (
        Timeline,
        Window,
        campaign_timeline,
        match_fire,
        shifted_occurrences,
    )
    from campaigns.domain.timeutil import utc_to_local
    from campaigns.messages import campaign as m
    from campaigns.messages.campaign import (
        CampaignState,
        PersistWindow,
        RunWindow,
        RunWindowFired,
        SyncRecurrence,
        schedule_id,
    )
    from campaigns.messages.common import ActivityOptions, PlatformEvent

S = CampaignStatus

# How long after a run window should have opened the workflow waits for its Schedule to
# fire before it looks ahead to the next one (the Schedule may be paused in the UI).
GRACE = timedelta(seconds=30)
KEEP_RUNS = timedelta(days=1)  # closed run windows are remembered this long, so a repeat fire is ignored
SHIFTED_LOOKAHEAD = timedelta(days=400)

# Writes retry until they succeed: they are idempotent, and a window change must not be lost.
# A Schedule call takes well under a second: a short timeout hands one whose worker was
# killed (a status change waits on it) to another worker soon.
_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
_ACTIVITY: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=10), "retry_policy": _RETRY}
# The window's write (projection and event, one short transaction) runs as a local
# activity: in the worker at once, without a round trip through the server, so an opening
# is recorded within milliseconds of its timer.
_LOCAL: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=10), "retry_policy": _RETRY}


class CallingWindow:
    def __init__(self, state: CampaignState, *, publish: Callable[[], None]) -> None:
        self._state = state
        self._publish = publish

    # --- What the timeline says --------------------------------------------------------

    def timeline(self) -> Timeline:
        """The calling timeline as this workflow knows it (run windows actually opened)."""
        c = self._state.config
        runs = None
        if c.schedule.recurrence is not None:
            runs = [Window(r.opens_at, r.closes_at) for r in self._state.window.runs]
        return campaign_timeline(c.schedule, c.timezone, runs=runs)

    def _expected_opening(self, now: datetime) -> datetime | None:
        """When the recurrence should next open a run window (allowing GRACE for its fire)."""
        c = self._state.config
        for w in campaign_timeline(c.schedule, c.timezone).windows(now - GRACE):
            if w.opens_at is not None and w.opens_at > now - GRACE:
                return w.opens_at
        return None

    def target(self, now: datetime, status: CampaignStatus) -> tuple[bool, datetime | None]:
        """(open, next change) as they should be at `now` for a campaign in `status`."""
        c = self._state.config
        if status == S.ACTIVE:
            known = self.timeline()
            is_open, change = known.is_open(now), known.next_change(now)
            if c.schedule.recurrence is not None and not is_open:
                expected = self._expected_opening(now)
                if expected is not None and (change is None or expected < change):
                    change = expected
            return is_open, change
        if status == S.SCHEDULED:
            start, _ = schedule_bounds(c.schedule, c.timezone)
            since = max(start, now) if start else now
            return False, campaign_timeline(c.schedule, c.timezone).next_opening(since)
        return False, None

    def wakeup(self, now: datetime) -> datetime | None:
        """When the workflow must next look at the window (None: only when told)."""
        s, c, w = self._state, self._state.config, self._state.window
        if s.status != S.ACTIVE:
            return None
        times = [self.timeline().next_change(now)]
        recurrence = c.schedule.recurrence
        if recurrence is not None:
            if not w.open and w.next_change is not None:
                times.append(w.next_change + GRACE)  # the Schedule did not fire: look further ahead
            shifted = shifted_occurrences(recurrence, c.timezone, now, now + SHIFTED_LOOKAHEAD)
            times.append(next((o.starts_at for o in shifted), None))
        return min((t for t in times if t is not None), default=None)

    # --- Signals -------------------------------------------------------------------------

    def on_fired(self, fired: RunWindowFired) -> bool:
        """Record the run window a Schedule fire opens; False if it opens nothing new."""
        c, w = self._state.config, self._state.window
        recurrence = c.schedule.recurrence
        if recurrence is None:
            return False
        occurrence = match_fire(recurrence, c.timezone, fired.fired_at)
        if occurrence is not None:
            run = RunWindow(
                key=occurrence.key, opens_at=occurrence.starts_at, closes_at=occurrence.ends_at, source="schedule"
            )
        else:  # triggered by hand (e.g. in the Temporal UI): a run window from now
            run = RunWindow(
                key=f"manual:{fired.fired_at.isoformat()}",
                opens_at=fired.fired_at,
                closes_at=fired.fired_at + timedelta(minutes=recurrence.duration_minutes),
                source="manual",
            )
        if run.closes_at <= workflow.now() or any(r.key == run.key for r in w.runs):
            return False
        w.runs.append(run)
        return True

    # --- Bringing the world in line --------------------------------------------------------

    async def sync(self, reason: str) -> None:
        """Make the Schedule, the projection and the events agree with the timeline now."""
        await self._sync_recurrence()
        await self._open_shifted_runs()
        write = self.plan(reason)
        if write is None:
            return
        await workflow.execute_local_activity(
            m.PERSIST_WINDOW,
            write,
            summary=write.event.type if write.event else "window: next change",
            **_LOCAL,
        )
        self.applied(write)
        self._publish()

    def plan(self, reason: str, *, status: CampaignStatus | None = None) -> PersistWindow | None:
        """The projection write (with its event, when the window opens or closes) that brings
        the window in line with the timeline now; None if nothing changes. `status`: as if
        the campaign had it already, so a status change and the window change it causes are
        written in one transaction."""
        s, c, w = self._state, self._state.config, self._state.window
        now = workflow.now()
        status = status or s.status
        w.runs = [r for r in w.runs if r.closes_at > now - KEEP_RUNS]
        is_open, change = self.target(now, status)
        checked, w.checked_at = w.checked_at, now
        if is_open == w.open and change == w.next_change:
            return None
        event = None
        if is_open != w.open:
            planned = self._planned(is_open, checked, now)
            event = PlatformEvent(
                # Numbered, not random: a write repeated after a failed workflow task (local
                # activities can run in one) records the same event, not a second one.
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"campaign/{s.campaign_id}/window/{w.flips + 1}")),
                organization_id=s.organization_id,
                campaign_id=s.campaign_id,
                type="campaign.window_opened" if is_open else "campaign.window_closed",
                data={
                    "campaignId": s.campaign_id,
                    "windowOpen": is_open,
                    "reason": reason,
                    "status": status.value,
                    "plannedAt": planned.isoformat(),
                    "nextWindowChange": change.isoformat() if change else None,
                    "timezone": c.timezone,
                    "localTime": utc_to_local(now, c.timezone).isoformat(),
                },
                occurred_at=now,
            )
        return PersistWindow(campaign_id=s.campaign_id, open=is_open, next_change=change, at=now, event=event)

    def applied(self, write: PersistWindow) -> None:
        """Take a persisted write as the window's state."""
        w = self._state.window
        if write.open != w.open:
            w.changed_at = write.at
            w.flips += 1
        w.open, w.next_change = write.open, write.next_change

    def _planned(self, opening: bool, checked: datetime | None, now: datetime) -> datetime:
        """The instant the timeline put this change at, when it fell due since the last
        check (a boundary, the start or end, a run window); otherwise (a status change, an
        edit) now. Reported with the event, so lateness can be measured."""
        timeline = self.timeline()
        if opening:
            window = timeline.window_at(now)
            at = window.opens_at if window else None
        else:
            window = timeline.window_at(checked) if checked else None
            at = window.closes_at if window else None
        return at if at is not None and checked is not None and checked < at <= now else now

    async def _sync_recurrence(self) -> None:
        """Create, pause, resume, update or delete the recurrence's Schedule as needed."""
        s, c, w = self._state, self._state.config, self._state.window
        recurrence = c.schedule.recurrence
        wanted = recurrence is not None and s.status in (S.SCHEDULED, S.ACTIVE, S.PAUSED)
        paused = s.status == S.PAUSED
        fingerprint = ""
        if wanted and recurrence is not None:  # `wanted` implies it; the check narrows the type
            fingerprint = json.dumps(
                {
                    "recurrence": recurrence.model_dump(mode="json"),
                    "timezone": c.timezone,
                    "startAt": str(c.schedule.start_at),
                    "endAt": str(c.schedule.end_at),
                    "paused": paused,
                    "name": c.name,
                },
                sort_keys=True,
            )
        if fingerprint == w.recurrence:
            return
        w.recurrence_version += 1
        await workflow.execute_activity(
            m.SYNC_RECURRENCE,
            SyncRecurrence(
                campaign_id=s.campaign_id,
                organization_id=s.organization_id,
                name=c.name,
                timezone=c.timezone,
                schedule=c.schedule if wanted else None,
                paused=paused,
                note=f"campaign {s.status.value}",
                version=w.recurrence_version,
                as_of=workflow.now(),
            ),
            summary="recurrence " + ("paused" if wanted and paused else "active" if wanted else "removed"),
            **_ACTIVITY,
        )
        w.recurrence = fingerprint

    async def _open_shifted_runs(self) -> None:
        """Open the run windows that fall on a clock change, which the Schedule leaves out."""
        s, c, w = self._state, self._state.config, self._state.window
        now = workflow.now()
        since = w.shifted_checked_until or now
        w.shifted_checked_until = now
        recurrence = c.schedule.recurrence
        if recurrence is None or s.status != S.ACTIVE or since >= now:
            return
        known = {r.key for r in w.runs}
        due = [
            o for o in shifted_occurrences(recurrence, c.timezone, since, now) if o.ends_at > now and o.key not in known
        ]
        if not due:
            return
        # Honour a pause of the Schedule in the Temporal UI, as its own fires would.
        active = await workflow.execute_activity(
            m.RECURRENCE_ACTIVE, s.campaign_id, result_type=bool, summary="recurrence active?", **_ACTIVITY
        )
        if active:
            w.runs += [RunWindow(key=o.key, opens_at=o.starts_at, closes_at=o.ends_at, source="workflow") for o in due]

    # --- What the Temporal UI shows ------------------------------------------------------

    def details(self) -> str | None:
        s, c, w = self._state, self._state.config, self._state.window

        def local(at: datetime) -> str:
            return f"{utc_to_local(at, c.timezone):%Y-%m-%d %H:%M} {c.timezone} ({at:%H:%M} UTC)"

        line = None
        if s.status == S.ACTIVE:
            line = "Calling window **open**" if w.open else "Calling window closed"
            if w.next_change is not None:
                line += f", {'closes' if w.open else 'opens'} {local(w.next_change)}"
        elif s.status == S.SCHEDULED and w.next_change is not None:
            line = f"First calling window opens {local(w.next_change)}"
        if c.schedule.recurrence is not None and s.status in (S.SCHEDULED, S.ACTIVE, S.PAUSED):
            line = (line + "\n\n" if line else "") + f"Recurring runs: Temporal Schedule `{schedule_id(s.campaign_id)}`"
        return line
