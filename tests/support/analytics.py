"""Helpers for the analytics tests: making events, sending them, waiting for the derived views."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

_counter = itertools.count()


def event(campaign_id: str, type_: str, data: dict[str, Any] | None = None, *, at: datetime | None = None,
          **fields: Any) -> dict[str, Any]:
    """One event with a fresh id (pass `id=` to choose it)."""
    out: dict[str, Any] = {
        "id": fields.pop("id", f"ev-{uuid.uuid4().hex[:12]}-{next(_counter)}"),
        "campaignId": campaign_id,
        "type": type_,
        "occurredAt": (at or datetime.now(UTC)).isoformat(),
        **fields,
    }
    if data is not None:
        out["data"] = data
    return out


def call(campaign_id: str, *, duration: float = 60, outcome: str = "connected", lead: float | None = None,
         revenue: float | None = None, cost: float = 0.0, at: datetime | None = None, **fields: Any) -> list[dict]:
    """A whole call: started, completed, its cost, and a lead / conversion when asked."""
    call_id = f"call-{uuid.uuid4().hex[:10]}"
    events = [
        event(campaign_id, "call.started", {"waitSec": 2}, callId=call_id, at=at, **fields),
        event(campaign_id, "call.completed", {"durationSec": duration, "outcome": outcome}, callId=call_id, at=at,
              **fields),
    ]
    if cost:
        events.append(event(campaign_id, "cost", {"amount": cost, "category": "telephony"}, at=at, **fields))
    if lead is not None:
        events.append(event(campaign_id, "lead.qualified", {"score": lead}, callId=call_id, at=at, **fields))
    if revenue is not None:
        events.append(event(campaign_id, "conversion", {"revenue": revenue}, at=at, **fields))
    return events


async def send(api: httpx.AsyncClient, events: list[dict], *, expect: int = 200) -> dict:
    r = await api.post("/api/events", json={"events": events})
    assert r.status_code == expect, r.text
    return r.json()


async def realtime(api: httpx.AsyncClient, campaign_id: str) -> dict:
    r = await api.get(f"/api/campaigns/{campaign_id}/analytics/real-time")
    assert r.status_code == 200, r.text
    return r.json()["metrics"]


async def drained(app) -> None:
    """Wait until the refresher has applied every accepted batch (rollups, summary, goals)."""
    await app.state.analytics.refresher.drain()


async def active_campaign(api: httpx.AsyncClient, **config: Any) -> dict:
    body = {"name": "Analytics", "type": "outbound", "channel": "phone", "flowId": "flow-1", **config}
    r = await api.post("/api/campaigns", json=body)
    assert r.status_code == 201, r.text
    campaign = r.json()["campaign"]
    r = await api.post(f"/api/campaigns/{campaign['id']}/activate")
    assert r.status_code == 200, r.text
    return r.json()["campaign"]
