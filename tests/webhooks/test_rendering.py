"""Integration templates as an attacker would write them: output paths that collide.
Refused when saved; a body that cannot be rendered all the same fails that delivery alone
(`render_failed`), never the dispatcher's batch nor another tenant's deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from campaigns.api.campaigns import repository as campaigns_repo
from tests.api.test_campaigns import fields
from tests.webhooks.conftest import wait_deliveries
from tests.webhooks.receiver import Receiver


def integrations(campaign: dict) -> str:
    return f"/api/campaigns/{campaign['id']}/integrations"


def push(mapping: dict[str, str], url: str = "http://127.0.0.1:9/x", **config) -> dict:
    return {"type": "http_push", "name": "CRM", "url": url, "eventTypes": ["lead.created"],
            "config": {"fieldMapping": mapping, **config}}


# --- Saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"fieldMapping": {"a": "type", "a-x": "type", "a.b": "type"}}, "config.fieldMapping", "parent of 'a.b'"),
        ({"fieldMapping": {"x.y.z": "type", "x.y": "type"}}, "config.fieldMapping", "parent of 'x.y.z'"),
        ({"fieldMapping": {"a.b": "type", "a.b.c.d": "type", "a.c": "id"}}, "config.fieldMapping", "parent"),
        ({"fieldMapping": {"event.type": "type"}, "includeEvent": True}, "config", "includeEvent"),
    ],
)
async def test_templates_that_cannot_render_are_refused_when_saved(api: httpx.AsyncClient, campaign: dict, config,
                                                                   field, words):
    r = await api.post(integrations(campaign), json={**push({}), "config": config})
    assert r.status_code == 400, r.text
    assert words in fields(r).get(field, ""), fields(r)


# --- Rendering: one delivery fails, nothing else -------------------------------------------------


async def _record_together(pool, *campaigns: dict) -> None:
    """One lead.created per campaign, in one transaction: the dispatcher takes them in one batch."""
    async with pool.acquire() as conn, conn.transaction():
        for c in campaigns:
            await campaigns_repo.record_event(
                conn, event_id=uuid.uuid4(), organization_id=uuid.UUID(c["organizationId"]),
                campaign_id=uuid.UUID(c["id"]), type_="lead.created", data={"lead": {"email": "ana@example.com"}},
                occurred_at=datetime.now(UTC),
            )


async def test_a_saved_mapping_that_collides_fails_its_delivery_alone(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, campaign: dict, pool, receiver: Receiver
):
    """The review's case: output paths `a`, `a-x` and `a.b`, saved before the validator
    knew better (written here straight into the table). Rendering them used to raise inside
    the dispatcher's transaction, so the batch rolled back and was retried forever, and
    every tenant's deliveries stopped."""
    broken = (await api.post(integrations(campaign), json=push({"a": "type"}))).json()["integration"]
    await pool.execute("UPDATE webhook_endpoints SET config = $2 WHERE id = $1", uuid.UUID(broken["id"]),
                       {"fieldMapping": {"a": "type", "a-x": "type", "a.b": "type"}})
    own = await Receiver().start()
    try:
        r = await api.post(f"/api/campaigns/{campaign['id']}/webhooks", json={"url": own.url,
                                                                               "eventTypes": ["lead.created"]})
        assert r.status_code == 201, r.text
        other = (await other_api.post("/api/campaigns", json={"name": "B", "type": "outbound", "channel": "phone",
                                                               "flowId": "f"})).json()["campaign"]
        r = await other_api.post(f"/api/campaigns/{other['id']}/webhooks", json={"url": receiver.url,
                                                                                  "eventTypes": ["lead.created"]})
        assert r.status_code == 201, r.text
        await _record_together(pool, campaign, other)

        # Everyone else's deliveries go out, the same tenant's other endpoint's included.
        assert (await receiver.wait_for(1))[0].json()["campaignId"] == other["id"]
        assert (await own.wait_for(1))[0].json()["campaignId"] == campaign["id"]
        base = f"{integrations(campaign)}/{broken['id']}"
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        assert delivery["lastErrorClass"] == "render_failed" and delivery["attempts"] == 0
        assert "'a' cannot be both a value and the parent of 'a.b'" in delivery["lastError"]
        got = (await api.get(f"{base}/deliveries/{delivery['id']}")).json()["delivery"]
        assert got["payload"] is None and got["attemptLog"] == []
        # The batch committed: nothing is left in the outbox to retry.
        assert await pool.fetchval("SELECT count(*) FROM webhook_outbox") == 0
    finally:
        await own.stop()
