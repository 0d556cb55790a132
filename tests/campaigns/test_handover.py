"""The hand-over between a campaign's row and its workflow: a draft is a row (its workflow
starts with its first status change); every status request is recorded, answered once and
for all per Idempotency-Key, and pending (202) when the workflow cannot answer in time; and
a configuration change reaches the workflow even when the API process cannot tell it."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from campaigns.api.app import create_app
from campaigns.messages.campaign import CampaignState, workflow_id
from campaigns.settings import Settings
from campaigns.stack.services import free_port
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.campaigns import activated, consistent, create, wait_for_status
from tests.support.polling import eventually


async def has_workflow(temporal_client: Client, campaign_id: str) -> bool:
    try:
        await temporal_client.get_workflow_handle(workflow_id(campaign_id)).describe()
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def requests_of(pool: asyncpg.Pool, campaign_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM status_requests WHERE campaign_id = $1 ORDER BY requested_at", uuid.UUID(campaign_id)
    )


async def state_of(temporal_client: Client, campaign_id: str) -> CampaignState:
    return await temporal_client.get_workflow_handle(workflow_id(campaign_id)).query(CampaignWorkflow.current)


# --- A draft is a row -----------------------------------------------------------------------


async def test_a_draft_has_no_workflow_until_its_first_status_change(api, pool, temporal_client):
    c = await create(api)
    clone = (await api.post(f"/api/campaigns/{c['id']}/clone")).json()["campaign"]
    r = await api.put(f"/api/campaigns/{c['id']}/configuration", json={"schedule": {"endAt": "2099-01-01T00:00:00"}})
    assert r.status_code == 200 and r.json()["campaign"]["version"] == 2
    r = await api.put(f"/api/campaigns/{c['id']}", json={"name": "Renamed draft"})
    assert r.status_code == 200
    for draft in (c, clone):
        assert not await has_workflow(temporal_client, draft["id"])
    assert await pool.fetchval("SELECT count(*) FROM campaign_config_outbox WHERE campaign_id = $1",
                               uuid.UUID(c["id"])) == 0

    r = await api.post(f"/api/campaigns/{c['id']}/activate")
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "active"
    # Its workflow started from the row as it was then: every change made to the draft is in it.
    state = await state_of(temporal_client, c["id"])
    assert state.status == "active" and state.config.version == 3
    assert state.config.name == "Renamed draft" and state.config.schedule.end_at is not None
    assert await consistent(api, temporal_client, c["id"]) == "active"
    assert not await has_workflow(temporal_client, clone["id"])


async def test_archiving_a_draft_starts_its_workflow_which_completes(api, temporal_client):
    c = await create(api)
    r = await api.delete(f"/api/campaigns/{c['id']}")
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "archived"
    final = await asyncio.wait_for(
        temporal_client.get_workflow_handle(workflow_id(c["id"]), result_type=CampaignState).result(), 20
    )
    assert final.status == "archived" and final.transitions == 1


async def test_a_configuration_change_of_a_campaign_past_draft_reaches_its_workflow(api, pool, temporal_client):
    c = await activated(api)
    r = await api.put(f"/api/campaigns/{c['id']}/configuration", json={"budget": {"total": 500}})
    assert r.status_code == 200
    version = r.json()["campaign"]["version"]
    state = await state_of(temporal_client, c["id"])
    assert state.config.version == version and state.config.budget.total == 500
    # Told at once: nothing left for the relay.
    assert await pool.fetchval("SELECT count(*) FROM campaign_config_outbox WHERE campaign_id = $1",
                               uuid.UUID(c["id"])) == 0


# --- Status requests and their Idempotency-Keys ------------------------------------------


async def test_an_applied_request_is_recorded_and_its_retry_answers_the_same(api, pool, temporal_client):
    c = await create(api)
    key = {"Idempotency-Key": f"activate-{uuid.uuid4()}"}
    first = await api.post(f"/api/campaigns/{c['id']}/activate", headers=key)
    assert first.status_code == 200 and first.json()["campaign"]["status"] == "active"
    assert "idempotent-replayed" not in first.headers
    [request] = await requests_of(pool, c["id"])
    assert request["state"] == "applied" and request["outcome"] == {"status": "active"}
    assert request["target"] == "active" and request["actor"]["kind"] == "api_key"

    await api.post(f"/api/campaigns/{c['id']}/pause")
    again = await api.post(f"/api/campaigns/{c['id']}/activate", headers=key)
    # The answer is what became of the first request, not a second activation (or a refusal).
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["campaign"]["status"] == "paused"
    assert await consistent(api, temporal_client, c["id"]) == "paused"
    assert (await state_of(temporal_client, c["id"])).transitions == 2


async def test_a_refusal_is_final_for_its_idempotency_key(api, pool):
    c = await create(api)
    key = {"Idempotency-Key": f"pause-{uuid.uuid4()}"}
    refused = await api.post(f"/api/campaigns/{c['id']}/pause", headers=key)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    await api.post(f"/api/campaigns/{c['id']}/activate")
    # Pausing would now be allowed, but this key names the request that was refused.
    again = await api.post(f"/api/campaigns/{c['id']}/pause", headers=key)
    assert again.status_code == 409 and again.json() == refused.json()
    assert (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]["status"] == "active"
    # The same key for another change is a client's mistake, not a retry.
    other = await api.post(f"/api/campaigns/{c['id']}/end", headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    states = [r["state"] for r in await requests_of(pool, c["id"])]
    assert states == ["rejected", "applied"]


async def test_a_refusal_before_asking_the_workflow_is_final_too(api, pool, temporal_client):
    c = await create(api, flowId=None)
    key = {"Idempotency-Key": f"activate-{uuid.uuid4()}"}
    refused = await api.post(f"/api/campaigns/{c['id']}/activate", headers=key)
    assert refused.status_code == 409 and refused.json()["code"] == "campaign_not_ready"
    assert not await has_workflow(temporal_client, c["id"])  # refused without starting one
    await api.put(f"/api/campaigns/{c['id']}/configuration", json={"flowId": "flow-1"})
    assert (await api.post(f"/api/campaigns/{c['id']}/activate", headers=key)).json() == refused.json()
    assert (await api.post(f"/api/campaigns/{c['id']}/activate")).status_code == 200
    # Without a key, a refusal before asking records nothing.
    assert (await api.post(f"/api/campaigns/{c['id']}/activate")).status_code == 409
    assert [r["state"] for r in await requests_of(pool, c["id"])] == ["rejected", "applied", "rejected"]


async def test_idempotency_keys_are_per_organization(api, other_api):
    key = {"Idempotency-Key": "same-key"}
    mine, theirs = await create(api), await create(other_api)
    assert (await api.post(f"/api/campaigns/{mine['id']}/activate", headers=key)).status_code == 200
    r = await other_api.post(f"/api/campaigns/{theirs['id']}/activate", headers=key)
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    # Another organization's campaign stays unreachable, key or not.
    assert (await other_api.post(f"/api/campaigns/{mine['id']}/pause", headers=key)).status_code == 404


# --- When the API cannot reach Temporal ----------------------------------------------------


@asynccontextmanager
async def cut_off_api(settings: Settings, api: httpx.AsyncClient):
    """An API process of `api`'s organization whose Temporal is unreachable (nothing listens
    there), as if Temporal were down or this process died right after its commits. The
    session's worker, with its relay, still reaches the real Temporal."""
    cut = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}", "status_change_wait_s": 1})
    app = create_app(cut)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test",
        headers={"Authorization": f"Bearer {api.key}"}, timeout=30,  # type: ignore[attr-defined]
    ) as client:
        yield client


async def test_a_configuration_the_api_could_not_tell_reaches_the_workflow(api, settings, pool, temporal_client):
    c = await activated(api)
    async with cut_off_api(settings, api) as cut:
        r = await cut.put(f"/api/campaigns/{c['id']}/configuration",
                          json={"schedule": {"endAt": "2099-06-30T18:00:00"}, "budget": {"daily": 40}})
        # Saved: Postgres owns the configuration. The workflow is told by the relay.
        assert r.status_code == 200, r.text
        version = r.json()["campaign"]["version"]
    entry = await pool.fetchrow("SELECT * FROM campaign_config_outbox WHERE campaign_id = $1", uuid.UUID(c["id"]))
    assert entry is not None and entry["version"] == version

    state = await eventually(lambda: state_of(temporal_client, c["id"]), "the workflow to learn the new version",
                             until=lambda s: s.config.version == version, within=30)
    assert state.config.budget.daily == 40 and str(state.config.schedule.end_at) == "2099-06-30 18:00:00"
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM campaign_config_outbox WHERE campaign_id = $1",
                                           uuid.UUID(c["id"])), "the outbox entry to be cleared",
                     until=lambda n: n == 0)


async def test_a_status_change_the_api_could_not_send_is_pending_then_applied(api, settings, pool, temporal_client):
    c = await activated(api)
    key = {"Idempotency-Key": f"pause-{uuid.uuid4()}"}
    async with cut_off_api(settings, api) as cut:
        r = await cut.post(f"/api/campaigns/{c['id']}/pause?reason=maintenance", headers=key)
        assert r.status_code == 202, r.text
        body = r.json()["campaign"]
        assert body["status"] == "active"
        pending = body["pendingStatusChange"]
        assert pending["target"] == "paused" and pending["reason"] == "maintenance"
        [request] = [r for r in await requests_of(pool, c["id"]) if r["target"] == "paused"]
        assert pending["requestId"] == str(request["id"]) and request["state"] == "pending"
        # Every reader sees it pending until it is applied.
        seen = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
        assert seen["pendingStatusChange"] == pending and seen["status"] == "active"

        # The relay re-sends it, as the same update, until the workflow has applied it.
        done = await wait_for_status(api, c["id"], "paused", within=30)
        assert done["pendingStatusChange"] is None and done["statusReason"] == "maintenance"
        # Asked again with its key (even where Temporal is unreachable), the answer is final.
        again = await cut.post(f"/api/campaigns/{c['id']}/pause?reason=maintenance", headers=key)
        assert again.status_code == 200 and again.json()["campaign"]["status"] == "paused"
        assert again.headers["idempotent-replayed"] == "true"
    assert await consistent(api, temporal_client, c["id"]) == "paused"
    assert [(r["target"], r["state"]) for r in await requests_of(pool, c["id"])] == [
        ("active", "applied"), ("paused", "applied")]


async def test_a_pending_request_the_workflow_refuses_is_resolved_as_refused(api, settings, pool):
    """Pending, then refused by the workflow when it gets there (the schedule ended in the
    meantime): the pending change disappears, and its key answers the refusal."""
    # The relay's first try comes at least 2 s after the request (the cut-off API waits 1 s,
    # then 1 s more): the schedule has ended by then.
    end = (datetime.now(UTC) + timedelta(seconds=2)).replace(tzinfo=None).isoformat(timespec="seconds")
    c = await create(api, schedule={"endAt": end})
    key = {"Idempotency-Key": f"late-{uuid.uuid4()}"}
    async with cut_off_api(settings, api) as cut:
        r = await cut.post(f"/api/campaigns/{c['id']}/activate", headers=key)
        assert r.status_code == 202, r.text
        await eventually(lambda: requests_of(pool, c["id"]), "the relay to resolve the request",
                         until=lambda rows: rows[0]["state"] == "rejected", within=30)
        got = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
        assert got["status"] == "draft" and got["pendingStatusChange"] is None
        again = await cut.post(f"/api/campaigns/{c['id']}/activate", headers=key)
        assert again.status_code == 409 and again.json()["code"] == "schedule_ended"
        assert again.headers["idempotent-replayed"] == "true"


async def test_a_campaign_lists_no_pending_change_when_there_is_none(api):
    c = await create(api, name=f"Listed {uuid.uuid4().hex[:6]}")
    listed = (await api.get("/api/campaigns", params={"q": c["name"]})).json()["campaigns"]
    assert [x["id"] for x in listed] == [c["id"]] and listed[0]["pendingStatusChange"] is None


async def test_a_change_waits_for_the_ones_still_pending_before_it(api, settings, pool, temporal_client):
    """A resume made while an earlier pause is still pending is applied after it, not before
    (which would refuse it as 'already active' and leave the campaign paused)."""
    c = await activated(api)
    async with cut_off_api(settings, api) as cut:
        assert (await cut.post(f"/api/campaigns/{c['id']}/pause")).status_code == 202
    r = await api.post(f"/api/campaigns/{c['id']}/resume")
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "active", r.text
    assert r.json()["campaign"]["pendingStatusChange"] is None
    moves = [(r["target"], r["state"]) for r in await requests_of(pool, c["id"])]
    assert moves == [("active", "applied"), ("paused", "applied"), ("active", "applied")]
    assert await consistent(api, temporal_client, c["id"]) == "active"
