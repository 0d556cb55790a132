"""Realistic traffic for the campaigns that are taking calls: what the voice-AI pipeline
and the web widget would report, as analytics events.

Calls arrive as a Poisson process at the chosen rate, spread over the campaigns. Each
call starts now and ends after a log-normal duration (divided by `time_scale`, so a
three-minute call takes eighteen seconds of a demo at the default 10×; the event still
says three minutes). Outcomes, qualification, conversion and revenue, and costs by
category per minute of talk follow the rough shape of a real outbound voice-AI
campaign; web and multi-channel campaigns also get widget impressions, clicks and display
times. All randomness comes from one seeded generator, so a run can be replayed.

A campaign with a running A/B test gets its callers and visitors assigned to variants
(through the same assignment as `POST …/ab-test/{testId}/assign`) and every event of theirs
carries the `variantId`. So that a test has something to find, each non-control variant
has a fixed effect on qualification and conversion, between −15 % and +25 %, derived from
its id (see `variant_effect`).
"""

from __future__ import annotations

import hashlib
import heapq
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

# Outcome of a call that was placed, and how often (a call.failed is the rest).
OUTCOMES = {
    "connected": 0.60,
    "voicemail": 0.13,
    "no_answer": 0.13,
    "busy": 0.04,
    "rejected": 0.03,
    "transferred": 0.04,
}
FAILED_SHARE = 0.03
FAILURE_REASONS = ("carrier_error", "invalid_number", "network_timeout")
QUALIFY_SHARE = 0.32  # of talks (connected or transferred) that qualify as a lead
CONVERT_SHARE = 0.22  # of leads that convert
# Cost per minute of call by category, in the campaign's currency.
COST_PER_MINUTE = {"telephony": 0.013, "stt": 0.0059, "tts": 0.0108, "llm": 0.0085}
WIDGET_IMPRESSIONS_PER_CALL = 4.0
WIDGET_CLICK_THROUGH = 0.06
WIDGET_CONVERSION = 0.12  # of visitors who clicked


@dataclass(frozen=True)
class SimCampaign:
    id: uuid.UUID
    organization_id: uuid.UUID
    channel: str
    type: str
    ab_test_id: uuid.UUID | None = None  # its running A/B test, if any


@dataclass(frozen=True)
class Arrival:
    """A caller or a widget visitor about to turn up, before its variant is known."""

    campaign: SimCampaign
    at: float
    kind: str  # "call" | "visit"
    subject_id: str


@dataclass(frozen=True)
class Variant:
    id: str
    control: bool


def variant_effect(variant: Variant | None) -> float:
    """The factor a variant applies to qualification and conversion: 1 for the control (or
    no test), otherwise fixed by the variant's id in [0.85, 1.25]."""
    if variant is None or variant.control:
        return 1.0
    digest = hashlib.sha256(variant.id.encode()).digest()
    return 0.85 + 0.40 * digest[0] / 255


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    event: dict[str, Any] = field(compare=False)
    organization_id: uuid.UUID = field(compare=False)


@dataclass
class Totals:
    calls: int = 0
    in_progress: int = 0
    leads: int = 0
    conversions: int = 0
    revenue: float = 0.0
    cost: float = 0.0
    impressions: int = 0
    clicks: int = 0
    events_sent: int = 0
    events_rejected: int = 0


class Traffic:
    """Plans events for the campaigns it is given and hands out the ones that are due."""

    def __init__(self, *, rate: float, time_scale: float = 10.0, seed: int | None = None) -> None:
        self.rate = rate  # calls a second, over all campaigns
        self.time_scale = max(time_scale, 1.0)
        self.rng = np.random.default_rng(seed)
        self.totals = Totals()
        self._queue: list[_Due] = []
        self._seq = 0

    def _due(self, at: float, organization_id: uuid.UUID, event: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Due(at, self._seq, event, organization_id))

    def plan(self, campaigns: list[SimCampaign], now: float, seconds: float) -> None:
        """Plan the calls (and widget activity) that arrive in the next `seconds`, outside
        any A/B test."""
        for arrival in self.arrivals(campaigns, now, seconds):
            self.place(arrival, None)

    def arrivals(self, campaigns: list[SimCampaign], now: float, seconds: float) -> list[Arrival]:
        """Who turns up in the next `seconds`; `place` each once its variant is known."""
        if not campaigns:
            return []
        out = []
        for _ in range(int(self.rng.poisson(self.rate * seconds))):
            campaign = campaigns[int(self.rng.integers(len(campaigns)))]
            at = now + float(self.rng.uniform(0, seconds))
            out.append(Arrival(campaign, at, "call", f"sim-caller-{self.rng.bytes(6).hex()}"))
        web = [c for c in campaigns if c.channel in ("web", "multi")]
        for campaign in web:
            expected = self.rate * seconds * WIDGET_IMPRESSIONS_PER_CALL / len(campaigns)
            for _ in range(int(self.rng.poisson(expected))):
                at = now + float(self.rng.uniform(0, seconds))
                out.append(Arrival(campaign, at, "visit", f"sim-visitor-{self.rng.bytes(6).hex()}"))
        return out

    def place(self, arrival: Arrival, variant: Variant | None) -> None:
        """Plan every event of one arrival, in its variant (None: no test)."""
        if arrival.kind == "call":
            self._call(arrival.campaign, arrival.at, arrival.subject_id, variant)
        else:
            self._widget_visit(arrival.campaign, arrival.at, arrival.subject_id, variant)

    def due(self, now: float) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        """The events whose time has come, dated now, each with its organization."""
        out = []
        stamp = datetime.now(UTC).isoformat()
        while self._queue and self._queue[0].at <= now:
            item = heapq.heappop(self._queue)
            item.event["occurredAt"] = stamp
            self._count(item.event)
            out.append((item.organization_id, item.event))
        return out

    @property
    def pending(self) -> int:
        return len(self._queue)

    # --- One call ----------------------------------------------------------------------

    def _call(self, campaign: SimCampaign, at: float, caller: str, variant: Variant | None) -> None:
        call_id = f"sim-call-{uuid.uuid4().hex[:16]}"
        org = campaign.organization_id
        effect = variant_effect(variant)
        direction = "inbound" if campaign.type == "inbound" else "outbound"
        if campaign.type == "hybrid":
            direction = "inbound" if self.rng.random() < 0.4 else "outbound"
        wait = round(float(self.rng.gamma(2.0, 2.5 if direction == "inbound" else 1.0)), 2)
        self._due(
            at,
            org,
            self._event(
                campaign, "call.started", {"waitSec": wait, "direction": direction}, call_id, caller, variant=variant
            ),
        )

        if self.rng.random() < FAILED_SHARE:
            reason = str(self.rng.choice(FAILURE_REASONS))
            self._due(
                at + 2 / self.time_scale,
                org,
                self._event(campaign, "call.failed", {"reason": reason}, call_id, caller, variant=variant),
            )
            return
        outcome = str(self.rng.choice(list(OUTCOMES), p=np.array(list(OUTCOMES.values())) / sum(OUTCOMES.values())))
        talked = outcome in ("connected", "transferred")
        # Log-normal talk time: median about two and a half minutes; short for everything else.
        seconds = float(self.rng.lognormal(np.log(150), 0.6)) if talked else float(self.rng.uniform(5, 35))
        seconds = round(min(seconds, 3600.0), 1)
        end = at + seconds / self.time_scale
        completed: dict[str, Any] = {"durationSec": seconds, "outcome": outcome}
        if talked:
            completed["satisfaction"] = round(float(np.clip(self.rng.normal(4.1, 0.7), 1, 5)), 1)
        self._due(end, org, self._event(campaign, "call.completed", completed, call_id, caller, variant=variant))

        minutes = seconds / 60
        for category, per_minute in COST_PER_MINUTE.items():
            spoken = 0.45 if category == "tts" else 1.0  # the assistant speaks about half the time
            amount = round(per_minute * minutes * spoken * (1 if talked or category == "telephony" else 0.2), 6)
            if amount > 0:
                self._due(
                    end,
                    org,
                    self._event(
                        campaign, "cost", {"amount": amount, "category": category}, subject_id=caller, variant=variant
                    ),
                )
        if talked and self.rng.random() < min(QUALIFY_SHARE * effect, 1.0):
            score = round(float(np.clip(self.rng.normal(76, 9), 0, 100)), 1)
            self._due(
                end, org, self._event(campaign, "lead.qualified", {"score": score}, subject_id=caller, variant=variant)
            )
            if self.rng.random() < min(CONVERT_SHARE * effect, 1.0):
                revenue = round(float(self.rng.lognormal(np.log(180), 0.5)), 2)
                later = end + float(self.rng.uniform(5, 60)) / self.time_scale
                self._due(
                    later,
                    org,
                    self._event(campaign, "conversion", {"revenue": revenue}, subject_id=caller, variant=variant),
                )

    def _widget_visit(self, campaign: SimCampaign, at: float, visitor: str, variant: Variant | None) -> None:
        org = campaign.organization_id
        self._due(at, org, self._event(campaign, "widget.impression", {}, subject_id=visitor, variant=variant))
        if self.rng.random() < WIDGET_CLICK_THROUGH:
            click = at + float(self.rng.uniform(2, 40)) / self.time_scale
            self._due(click, org, self._event(campaign, "widget.click", {}, subject_id=visitor, variant=variant))
            shown = int(self.rng.lognormal(np.log(25_000), 0.8))
            closed = click + shown / 1000 / self.time_scale
            self._due(
                closed,
                org,
                self._event(
                    campaign, "widget.display", {"ms": min(shown, 3_600_000)}, subject_id=visitor, variant=variant
                ),
            )
            if self.rng.random() < min(WIDGET_CONVERSION * variant_effect(variant), 1.0):
                revenue = round(float(self.rng.lognormal(np.log(120), 0.5)), 2)
                self._due(
                    closed + 1 / self.time_scale,
                    org,
                    self._event(campaign, "conversion", {"revenue": revenue}, subject_id=visitor, variant=variant),
                )

    @staticmethod
    def _event(
        campaign: SimCampaign,
        type_: str,
        data: dict[str, Any],
        call_id: str | None = None,
        subject_id: str | None = None,
        variant: Variant | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": f"sim-{uuid.uuid4().hex}",
            "campaignId": str(campaign.id),
            "type": type_,
            "data": data,
        }
        if call_id:
            event["callId"] = call_id
        if subject_id:
            event["subjectId"] = subject_id
        if variant:
            event["variantId"] = variant.id
        return event

    def _count(self, event: dict[str, Any]) -> None:
        t, data, totals = event["type"], event["data"], self.totals
        if t == "call.started":
            totals.calls += 1
            totals.in_progress += 1
        elif t in ("call.completed", "call.failed"):
            totals.in_progress -= 1
        elif t == "lead.qualified":
            totals.leads += 1
        elif t == "conversion":
            totals.conversions += 1
            totals.revenue += data.get("revenue", 0)
        elif t == "cost":
            totals.cost += data["amount"]
        elif t == "widget.impression":
            totals.impressions += 1
        elif t == "widget.click":
            totals.clicks += 1
