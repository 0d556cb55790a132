"""Campaigns as the tests make them: a minimal body, creating one, reading a 400's fields,
windows open whatever the hour the suite runs, waiting for the workflow to move one, and
checking that its row, its workflow and its audit log agree."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
from temporalio.client import Client

from campaigns.api.app import create_app
from campaigns.auth.service import create_key
from campaigns.messages.campaign import CampaignState, workflow_id
from campaigns.settings import Settings
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.polling import eventually

CAMPAIGN = {"name": "Spring promo", "type": "outbound", "channel": "phone", "flowId": "flow-1"}

EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def fields(response: httpx.Response) -> dict[str, str]:
    """An error answer's details as field → reason (and a check that it is one of ours)."""
    body = response.json()
    assert set(body) >= {"error", "code"}, body
    return {d["field"]: d["reason"] for d in body.get("details") or []}


def noon_zone() -> str:
    """A fixed-offset zone where it is now between 11:00 and 13:00, so windows around
    midday are open for hours whatever time the tests run."""
    hour = datetime.now(UTC).hour
    offset = 12 - hour if 12 - hour <= 14 else 12 - hour - 24
    offset = offset if offset >= -12 else offset + 24
    # POSIX-style names: Etc/GMT-3 is three hours *ahead* of UTC.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def create(api: httpx.AsyncClient, **config) -> dict:
    """A draft campaign: CAMPAIGN with `config` on top."""
    r = await api.post("/api/campaigns", json={**CAMPAIGN, **config})
    assert r.status_code == 201, r.text
    return r.json()["campaign"]


async def activated(api: httpx.AsyncClient, **config) -> dict:
    """A campaign past draft (so it has a workflow): CAMPAIGN with `config` on top, activated."""
    c = await create(api, **config)
    r = await api.post(f"/api/campaigns/{c['id']}/activate")
    assert r.status_code == 200, r.text
    return r.json()["campaign"]



async def wait_for_status(api: httpx.AsyncClient, campaign_id: str, status: str, *, within: float = 20) -> dict:
    """The campaign once it has reached `status`, which its workflow sets by itself."""

    async def read() -> dict:
        return (await api.get(f"/api/campaigns/{campaign_id}")).json()["campaign"]

    return await eventually(read, f"campaign {campaign_id} {status}", until=lambda c: c["status"] == status,
                            within=within)


async def consistent(client: httpx.AsyncClient, tclient: Client, campaign_id: str) -> str:
    """The projection, the workflow and the audit log agree, nothing is pending; returns the status."""
    row = (await client.get(f"/api/campaigns/{campaign_id}")).json()["campaign"]
    state: CampaignState = await tclient.get_workflow_handle(workflow_id(campaign_id)).query(CampaignWorkflow.current)
    assert state.status == row["status"], (state.status, row["status"])
    assert row.get("pendingStatusChange") is None, row["pendingStatusChange"]
    audit = (await client.get(f"/api/campaigns/{campaign_id}/audit", params={"limit": 100})).json()["audit"]
    moves = [e["changes"]["status"] for e in audit if e["action"] == "status_changed"]
    assert len(moves) == state.transitions, (moves, state.transitions)
    for before, after in zip(moves, moves[1:], strict=False):
        assert before["to"] == after["from"], moves  # a chain: nothing lost, nothing doubled
    assert (moves[-1]["to"] if moves else "draft") == row["status"]
    return row["status"]


@asynccontextmanager
async def api_client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """An API of its own (in this process, with `settings`) and a client of a new organization.
    Like a real server, it answers what the app answers, even while raising (a 503 when
    Postgres is down), instead of raising into the test."""
    app = create_app(settings)
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api.test",
        headers={"Authorization": f"Bearer {key}"}, timeout=120,
    ) as client:
        yield client
