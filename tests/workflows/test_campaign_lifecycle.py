"""The lifecycle, owned by each campaign's workflow: every transition, valid and invalid,
the workflow's own moves at the schedule's start and end, and what the Temporal UI shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from campaigns.messages.campaign import CampaignState, workflow_id
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.campaigns import CAMPAIGN, wait_for_status
from tests.support.polling import eventually

STATUSES = ["draft", "scheduled", "active", "paused", "ended", "archived"]

# (from, requested) → status reached; anything absent must be refused with 409.
ALLOWED = {
    ("draft", "active"): "active",
    ("draft", "archived"): "archived",
    ("scheduled", "paused"): "paused",
    ("scheduled", "ended"): "ended",
    ("scheduled", "archived"): "archived",
    ("active", "paused"): "paused",
    ("active", "ended"): "ended",
    ("paused", "active"): "active",
    ("paused", "ended"): "ended",
    ("paused", "archived"): "archived",
    ("ended", "archived"): "archived",
}

FAR_FUTURE = {"startAt": "2099-01-01T09:00:00"}


def local(minutes_from_now: float = 0, seconds: float = 0, tz: str = "UTC") -> str:
    when = datetime.now(UTC) + timedelta(minutes=minutes_from_now, seconds=seconds)
    return when.astimezone(ZoneInfo(tz)).replace(tzinfo=None).isoformat(timespec="seconds")


async def set_status(api: httpx.AsyncClient, campaign_id: str, status: str) -> httpx.Response:
    return await api.put(f"/api/campaigns/{campaign_id}", json={"status": status})


async def campaign_in(api: httpx.AsyncClient, status: str) -> dict:
    """A new campaign brought to `status` through the API."""
    body = dict(CAMPAIGN)
    if status == "scheduled":
        body["schedule"] = FAR_FUTURE
    c = (await api.post("/api/campaigns", json=body)).json()["campaign"]
    path = {"draft": [], "scheduled": ["active"], "active": ["active"], "paused": ["active", "paused"],
            "ended": ["active", "ended"], "archived": ["archived"]}[status]
    for step in path:
        r = await set_status(api, c["id"], step)
        assert r.status_code == 200, r.text
    got = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
    assert got["status"] == status
    return got


@pytest.mark.parametrize("source", STATUSES)
async def test_every_transition(api: httpx.AsyncClient, source: str):
    for requested in STATUSES:
        c = await campaign_in(api, source)
        r = await set_status(api, c["id"], requested)
        expected = ALLOWED.get((source, requested))
        if expected is None:
            assert r.status_code == 409, (source, requested, r.text)
            body = r.json()
            assert source in body["error"] and requested in body["error"], body
            assert body["code"] in ("invalid_transition", "no_change")
            assert (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]["status"] == source
        else:
            assert r.status_code == 200, (source, requested, r.text)
            # The answer already shows the persisted status: no read-after-write gap.
            assert r.json()["campaign"]["status"] == expected


async def test_status_change_records_timestamps_and_reason(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    active = (await api.post(url + "/activate", params={"reason": "go"})).json()["campaign"]
    assert active["startedAt"] and active["endedAt"] is None and active["statusReason"] == "go"
    paused = (await api.post(url + "/pause")).json()["campaign"]
    resumed = (await api.post(url + "/resume")).json()["campaign"]
    assert resumed["startedAt"] == active["startedAt"]  # the first start is kept
    assert paused["statusChangedAt"] < resumed["statusChangedAt"]
    ended = (await api.post(url + "/end")).json()["campaign"]
    assert ended["endedAt"] and ended["status"] == "ended"


async def test_activation_needs_a_flow(api: httpx.AsyncClient):
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "flowId": None})).json()["campaign"]
    r = await api.post(f"/api/campaigns/{c['id']}/activate")
    assert r.status_code == 409 and r.json()["code"] == "campaign_not_ready"
    assert r.json()["details"][0]["field"] == "flowId"


async def test_activating_with_a_passed_end_is_refused(api: httpx.AsyncClient):
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "schedule": {"endAt": "2001-01-01T00:00:00"}}))
    r = await api.post(f"/api/campaigns/{c.json()['campaign']['id']}/activate")
    assert r.status_code == 409 and r.json()["code"] == "schedule_ended"


async def test_archived_campaigns_are_read_only(api: httpx.AsyncClient):
    c = await campaign_in(api, "archived")
    r = await api.put(f"/api/campaigns/{c['id']}", json={"name": "again"})
    assert r.status_code == 409 and r.json()["code"] == "campaign_archived"
    assert (await api.delete(f"/api/campaigns/{c['id']}")).status_code == 409


async def test_concurrent_requests_apply_one_at_a_time(api: httpx.AsyncClient, campaign: dict):
    await set_status(api, campaign["id"], "active")
    answers = await asyncio.gather(*(set_status(api, campaign["id"], "paused") for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409, 409]
    audit = (await api.get(f"/api/campaigns/{campaign['id']}/audit")).json()["audit"]
    assert [e["changes"].get("status", {}).get("to") for e in audit[1:]] == ["active", "paused"]


async def test_retried_status_change_with_idempotency_key_is_applied_once(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    await set_status(api, campaign["id"], "active")
    key = {"Idempotency-Key": "pause-1"}
    first = await api.post(url + "/pause", headers=key)
    again = await api.post(url + "/pause", headers=key)
    assert first.status_code == again.status_code == 200
    audit = (await api.get(url + "/audit")).json()["audit"]
    assert sum(1 for e in audit if e["changes"].get("status", {}).get("to") == "paused") == 1


# --- The workflow moves by itself on its schedule ------------------------------------


async def test_scheduled_campaign_starts_and_ends_by_itself(api: httpx.AsyncClient):
    tz = "Asia/Kathmandu"  # +05:45: local times really are converted
    schedule = {"startAt": local(seconds=3, tz=tz), "endAt": local(seconds=6, tz=tz)}
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "timezone": tz, "schedule": schedule})).json()["campaign"]
    r = await api.post(f"/api/campaigns/{c['id']}/activate")
    assert r.json()["campaign"]["status"] == "scheduled"
    active = await wait_for_status(api, c["id"], "active")
    assert active["statusReason"] == "schedule_start"
    ended = await wait_for_status(api, c["id"], "ended")
    assert ended["statusReason"] == "schedule_end"
    audit = (await api.get(f"/api/campaigns/{c['id']}/audit")).json()["audit"]
    assert [e["actor"]["kind"] for e in audit if e["action"] == "status_changed"] == ["api_key", "system", "system"]


async def test_editing_the_schedule_replans_at_once(api: httpx.AsyncClient):
    c = await campaign_in(api, "scheduled")
    r = await api.put(f"/api/campaigns/{c['id']}/configuration", json={"schedule": {"startAt": None}})
    assert r.status_code == 200
    await wait_for_status(api, c["id"], "active", within=10)


async def test_pausing_a_scheduled_campaign_keeps_it_from_starting(api: httpx.AsyncClient):
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "schedule": {"startAt": local(seconds=2)}}))
    cid = c.json()["campaign"]["id"]
    assert (await set_status(api, cid, "active")).json()["campaign"]["status"] == "scheduled"
    assert (await set_status(api, cid, "paused")).status_code == 200
    await asyncio.sleep(3)
    assert (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "paused"
    # Resuming re-evaluates against the clock: the start has passed, so it is active.
    assert (await set_status(api, cid, "active")).json()["campaign"]["status"] == "active"


async def test_resuming_after_the_end_passed_ends_the_campaign(api: httpx.AsyncClient):
    c = (await api.post("/api/campaigns", json={**CAMPAIGN, "schedule": {"endAt": local(seconds=30)}}))
    cid = c.json()["campaign"]["id"]
    await set_status(api, cid, "active")
    await set_status(api, cid, "paused")
    await api.put(f"/api/campaigns/{cid}/configuration", json={"schedule": {"endAt": local(seconds=-1)}})
    resumed = (await set_status(api, cid, "active")).json()["campaign"]
    assert resumed["status"] == "ended" and resumed["statusReason"] == "schedule_end_passed"


# --- What the Temporal UI shows ----------------------------------------------------


async def test_search_attributes_and_summary(api: httpx.AsyncClient, campaign: dict, temporal_client: Client):
    await set_status(api, campaign["id"], "active")
    query = (f"CampaignOrganization = '{campaign['organizationId']}' AND CampaignStatus = 'active' "
             "AND CampaignType = 'outbound' AND CampaignChannel = 'phone'")

    async def listed() -> list[str]:
        return [w.id async for w in temporal_client.list_workflows(query)]

    found = await eventually(listed, "the campaign in Temporal's visibility")  # eventually consistent
    assert found == [workflow_id(campaign["id"])]
    handle = temporal_client.get_workflow_handle(workflow_id(campaign["id"]))
    description = await handle.describe()
    assert await description.static_summary() == f"Campaign {campaign['name']}"
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert campaign["name"] in meta.current_details and "active" in meta.current_details
    state = await handle.query(CampaignWorkflow.current)
    assert isinstance(state, CampaignState) and state.status == "active"


async def test_archiving_completes_the_workflow(api: httpx.AsyncClient, campaign: dict, temporal_client: Client):
    await api.delete(f"/api/campaigns/{campaign['id']}")
    handle = temporal_client.get_workflow_handle(workflow_id(campaign["id"]), result_type=CampaignState)
    final = await asyncio.wait_for(handle.result(), 10)
    assert final.status == "archived"


async def test_a_lost_workflow_is_restarted_from_postgres(api: httpx.AsyncClient, temporal_client: Client):
    """If Temporal loses a campaign's workflow, the next change starts it again from the projection."""
    c = await campaign_in(api, "active")
    handle = temporal_client.get_workflow_handle(workflow_id(c["id"]))
    await handle.terminate("simulated loss")
    r = await set_status(api, c["id"], "paused")
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "paused"
    state = await temporal_client.get_workflow_handle(workflow_id(c["id"])).query(CampaignWorkflow.current)
    assert state.status == "paused" and state.started_at is not None
