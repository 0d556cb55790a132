"""What one accepted batch adds to the derived views: the `Delta`.

Built once on the ingest path from the events Postgres accepted, stored in the batch's
outbox row (same transaction), and applied from there to the rollups, the performance
summary, the real-time counters and the platform events. Because every consumer works
from this one object, none can count an event the others did not.

The sums are kept in columns: `keys[i]` is a (campaign, 15-minute slot, variant) and
`columns[metric][i]` what the batch adds to it (a metric no event touched has no column).
Columns go to Postgres as arrays and to the Redis script as they are, so applying a batch
costs no Python work per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from campaigns.domain import metrics
from campaigns.domain.events import CALL_ENDS
from campaigns.domain.periods import BUCKET_SECONDS

RollupKey = tuple[str, int, str]  # (campaign id, slot number, variant id or '')


@dataclass
class Delta:
    batch_id: str
    organization_id: str
    keys: list[RollupKey] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    call_starts: list[tuple[str, str, float]] = field(default_factory=list)  # (campaign, call id, epoch s)
    call_ends: list[tuple[str, str, float]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)  # what `lead.created` says
    last_event_at: dict[str, float] = field(default_factory=dict)  # campaign → latest occurredAt (epoch s)

    @property
    def campaigns(self) -> list[str]:
        return sorted({key[0] for key in self.keys})

    def column(self, name: str) -> list[Any]:
        values = self.columns.get(name)
        return values if values is not None else [0] * len(self.keys)

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per campaign, every metric summed over slots and variants (for tests and tools)."""
        out: dict[str, dict[str, Any]] = {}
        for i, (campaign, _, _) in enumerate(self.keys):
            into = out.setdefault(campaign, dict.fromkeys(metrics.NAMES, 0))
            for name, values in self.columns.items():
                into[name] += values[i]
        return out

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "batch": self.batch_id,
                "org": self.organization_id,
                "keys": self.keys,
                "columns": self.columns,
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
            keys=raw["keys"],  # lists, not tuples: indexing is all anyone does with them
            columns=raw["columns"],
            call_starts=raw["starts"],
            call_ends=raw["ends"],
            leads=raw["leads"],
            last_event_at=raw["last"],
        )


def build(batch_id: UUID | str, organization_id: UUID | str, events: list[tuple[int, dict[str, Any], float]]) -> Delta:
    """The delta of accepted events (as domain.events.parse_batch gives them)."""
    delta = Delta(str(batch_id), str(organization_id))
    sums: dict[RollupKey, list[Any]] = {}
    last = delta.last_event_at
    accumulate = metrics.accumulate
    starts: dict[tuple[str, str], float] = {}
    ends: dict[tuple[str, str], float] = {}
    for _, event, ts in events:
        campaign = event["campaignId"]
        key = (campaign, int(ts) // BUCKET_SECONDS, event.get("variantId") or "")
        vector = sums.get(key)
        if vector is None:
            vector = sums[key] = metrics.zero()
        type_ = event["type"]
        accumulate(vector, type_, event["data"])
        if last.get(campaign, 0) < ts:
            last[campaign] = ts
        if type_ == "call.started":
            starts[(campaign, event["callId"])] = ts
        elif type_ in CALL_ENDS:
            ends[(campaign, event["callId"])] = ts
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
    delta.keys = list(sums)
    delta.columns = (
        {
            name: list(values)
            for name, values in zip(metrics.NAMES, zip(*sums.values(), strict=True), strict=True)
            if any(values)
        }
        if sums
        else {}
    )
    # A call that started and ended within the batch was never active: only its end matters
    # (so that a late duplicate of its start cannot make it look active).
    delta.call_starts = [(c, call, ts) for (c, call), ts in starts.items() if (c, call) not in ends]
    delta.call_ends = [(c, call, ts) for (c, call), ts in ends.items()]
    return delta


def leads_of(deltas: list[Delta]) -> list[dict[str, Any]]:
    """The qualified leads of several batches, each with its organization."""
    return [{**lead, "organizationId": d.organization_id} for d in deltas for lead in d.leads]
