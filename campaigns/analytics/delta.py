"""What one accepted batch adds to the derived views: the `Delta`.

Built once on the ingest path from the events Postgres accepted, stored in the batch's
outbox row (same transaction), and applied from there to the rollups, the performance
summary, the real-time counters and the platform events. Because every consumer works
from this one object, none can count an event the others did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from campaigns.domain import metrics
from campaigns.domain.events import CALL_ENDS
from campaigns.domain.periods import BUCKET_SECONDS

RollupKey = tuple[str, int, str]  # (campaign id, bucket, variant id or '')


@dataclass
class Delta:
    batch_id: str
    organization_id: str
    rollups: dict[RollupKey, list[Any]] = field(default_factory=dict)
    call_starts: list[tuple[str, str, float]] = field(default_factory=list)  # (campaign, call id, epoch s)
    call_ends: list[tuple[str, str, float]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)  # what `lead.created` says
    last_event_at: dict[str, float] = field(default_factory=dict)  # campaign → latest occurredAt (epoch s)

    @property
    def campaigns(self) -> set[str]:
        return {key[0] for key in self.rollups}

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "batch": self.batch_id,
                "org": self.organization_id,
                "rollups": [[c, b, v, metrics.to_sparse(vec)] for (c, b, v), vec in self.rollups.items()],
                "starts": self.call_starts,
                "ends": self.call_ends,
                "leads": self.leads,
                "last": self.last_event_at,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> Delta:
        raw = orjson.loads(payload)
        return cls(
            batch_id=raw["batch"],
            organization_id=raw["org"],
            rollups={(c, b, v): metrics.from_sparse(values) for c, b, v, values in raw["rollups"]},
            call_starts=[tuple(x) for x in raw["starts"]],  # type: ignore[misc]
            call_ends=[tuple(x) for x in raw["ends"]],  # type: ignore[misc]
            leads=raw["leads"],
            last_event_at=raw["last"],
        )


def build(batch_id: UUID | str, organization_id: UUID | str, events: list[tuple[int, dict[str, Any], float]]) -> Delta:
    """The delta of accepted events (as domain.events.parse_batch gives them)."""
    delta = Delta(str(batch_id), str(organization_id))
    rollups = delta.rollups
    last = delta.last_event_at
    accumulate = metrics.accumulate
    for _, event, ts in events:
        campaign = event["campaignId"]
        key = (campaign, int(ts) // BUCKET_SECONDS, event.get("variantId") or "")
        vector = rollups.get(key)
        if vector is None:
            vector = rollups[key] = metrics.zero()
        type_ = event["type"]
        accumulate(vector, type_, event["data"])
        if last.get(campaign, 0) < ts:
            last[campaign] = ts
        if type_ == "call.started":
            delta.call_starts.append((campaign, event["callId"], ts))
        elif type_ in CALL_ENDS:
            delta.call_ends.append((campaign, event["callId"], ts))
        elif type_ == "lead.qualified":
            delta.leads.append(
                {
                    "campaignId": campaign,
                    "eventId": event["id"],
                    "score": event["data"]["score"],
                    "subjectId": event.get("subjectId"),
                    "callId": event.get("callId"),
                    "variantId": event.get("variantId"),
                    "occurredAt": event["occurredAt"].isoformat(),
                }
            )
    return delta


def merge(deltas: list[Delta]) -> Delta:
    """Several batches as one (for the refresher, which applies many at a time)."""
    out = Delta("merged", "")
    for d in deltas:
        for key, vector in d.rollups.items():
            into = out.rollups.get(key)
            if into is None:
                out.rollups[key] = list(vector)
            else:
                metrics.add(into, vector)
        out.call_starts += d.call_starts
        out.call_ends += d.call_ends
        out.leads += [{**lead, "organizationId": d.organization_id} for lead in d.leads]
        for c, ts in d.last_event_at.items():
            if out.last_event_at.get(c, 0) < ts:
                out.last_event_at[c] = ts
    return out


def per_campaign(rollups: dict[RollupKey, list[Any]]) -> dict[str, list[Any]]:
    """Sum over buckets and variants."""
    out: dict[str, list[Any]] = {}
    for (campaign, _, _), vector in rollups.items():
        into = out.get(campaign)
        if into is None:
            out[campaign] = list(vector)
        else:
            metrics.add(into, vector)
    return out
