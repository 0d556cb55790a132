"""The voice-AI pipeline and knowledge bases, against the stand-in services on a real
port: provisioning follows the lifecycle, survives the pipeline being down, happens once;
knowledge bases are checked when configured and again on activation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from campaigns.api.app import create_app
from campaigns.auth.service import create_key
from campaigns.messages.campaign import workflow_id
from campaigns.simulator.standins import StandInState
from campaigns.simulator.standins import create_app as create_standins
from campaigns.worker import build_worker
from campaigns.workflows.campaign import CampaignWorkflow
from tests.support.campaigns import CAMPAIGN
from tests.support.polling import eventually
from tests.support.servers import Server

# The stand-ins run on real ports, even for the test that needs nothing else.
pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
async def standins():
    """The pipeline stand-in; `standins.kb` serves the knowledge bases from the same state
    on another port, so each service can go down on its own."""
    state = StandInState()
    app = create_standins(state)
    server, kb = Server(app), Server(app)
    await server.start()
    await kb.start()
    server.state, server.kb = state, kb  # type: ignore[attr-defined]
    yield server
    await kb.stop()
    await server.stop()


@pytest.fixture(scope="module")
async def voice_settings(settings, standins):
    """The session's settings, with the pipeline and knowledge bases at the stand-ins, on a task queue of their own."""
    return settings.model_copy(
        update={
            "pipeline_url": standins.url,
            "knowledge_base_url": standins.kb.url,
            "temporal_task_queue": f"voice-{uuid.uuid4().hex[:8]}",
        }
    )


@pytest.fixture(scope="module")
async def voice_app(voice_settings, temporal_client, pool, redis_client):
    worker = build_worker(temporal_client, pool, voice_settings.temporal_task_queue,
                          settings=voice_settings, redis=redis_client)
    application = create_app(voice_settings)
    async with worker, application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def vapi(voice_app, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=voice_app), base_url="http://api.test",
                                 headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


async def new_campaign(vapi, **extra) -> dict:
    r = await vapi.post("/api/campaigns", json={**CAMPAIGN, "knowledgeBaseIds": ["kb-faq"], **extra})
    assert r.status_code == 201, r.text
    return r.json()["campaign"]


def effective(standins, campaign_id: str) -> list[str]:
    return [op.operation for op in standins.state.effective(campaign_id)]


# --- Provisioning follows the lifecycle --------------------------------------------------


async def test_lifecycle_provisions_reinitializes_and_deprovisions(vapi, standins):
    c = await new_campaign(vapi)
    cid = c["id"]
    assert (await vapi.post(f"/api/campaigns/{cid}/activate")).status_code == 200
    await eventually(lambda: effective(standins, cid) == ["provision"], "provisioning")
    provisioned = standins.state.campaigns[cid]
    assert provisioned["flowId"] == "flow-1" and provisioned["knowledgeBaseIds"] == ["kb-faq"]
    assert provisioned["voiceSettings"]["ttsVoice"] == c["voiceSettings"]["ttsVoice"]

    # A change the pipeline does not use tells it nothing; a voice change reinitializes.
    await vapi.put(f"/api/campaigns/{cid}", json={"description": "new words"})
    r = await vapi.put(f"/api/campaigns/{cid}/configuration", json={"voiceSettings": {"speakingRate": 1.1}})
    assert r.status_code == 200, r.text
    await eventually(lambda: effective(standins, cid) == ["provision", "reinitialize"], "reinitialization")
    assert standins.state.campaigns[cid]["voiceSettings"]["speakingRate"] == 1.1

    assert (await vapi.post(f"/api/campaigns/{cid}/pause")).status_code == 200
    await eventually(lambda: effective(standins, cid)[-1:] == ["deprovision"], "deprovisioning on pause")
    assert cid not in standins.state.campaigns
    # Changes while paused travel with the next provisioning.
    await vapi.put(f"/api/campaigns/{cid}/configuration", json={"knowledgeBaseIds": ["kb-faq", "kb-pricing"]})
    assert (await vapi.post(f"/api/campaigns/{cid}/resume")).status_code == 200
    await eventually(lambda: effective(standins, cid)[-1:] == ["provision"], "provisioning on resume")
    assert standins.state.campaigns[cid]["knowledgeBaseIds"] == ["kb-faq", "kb-pricing"]
    assert (await vapi.post(f"/api/campaigns/{cid}/end")).status_code == 200
    await eventually(lambda: effective(standins, cid) == ["provision", "reinitialize", "deprovision",
                                                         "provision", "deprovision"], "deprovisioning at the end")
    deletes = [op for op in standins.state.operations if op.campaign_id == cid and op.method == "DELETE"]
    assert [op.path for op in deletes] == [f"/v1/campaigns/{cid}"] * 2


async def test_pipeline_down_for_a_while_then_provisioned_once(vapi, standins):
    c = await new_campaign(vapi)
    cid = c["id"]
    await standins.stop()  # connection refused, like a pipeline that is down
    try:
        r = await vapi.post(f"/api/campaigns/{cid}/activate")
        # The activation does not wait for the pipeline.
        assert r.status_code == 200 and r.json()["campaign"]["status"] == "active"
    finally:
        # Back up, but answering 503 twice more before it recovers.
        standins.state.fail_next, standins.state.fail_status = 2, 503
        await standins.start()
    await eventually(lambda: effective(standins, cid) == ["provision"], "provisioning once back up", within=30)
    attempts = [op for op in standins.state.operations if op.campaign_id == cid]
    assert [op.status for op in attempts] == [503, 503, 201]
    assert len({op.idempotency_key for op in attempts}) == 1  # every retry is the same operation


async def test_a_replayed_operation_changes_nothing(standins):
    async with httpx.AsyncClient(base_url=standins.url) as client:
        cid = str(uuid.uuid4())
        body = {"campaignId": cid, "flowId": "f"}
        first = await client.put(f"/v1/campaigns/{cid}", json=body, headers={"Idempotency-Key": "k1-" + cid})
        again = await client.put(f"/v1/campaigns/{cid}", json=body, headers={"Idempotency-Key": "k1-" + cid})
        assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert effective(standins, cid) == ["provision"]


async def test_a_refusal_is_not_retried_forever(vapi, standins, temporal_client):
    standins.state.refuse_flows.add("flow-broken")
    c = await new_campaign(vapi, flowId="flow-broken")
    assert (await vapi.post(f"/api/campaigns/{c['id']}/activate")).status_code == 200
    handle = temporal_client.get_workflow_handle(workflow_id(c["id"]))

    async def refused():
        state = await handle.query(CampaignWorkflow.current)
        return state.pipeline and state.pipeline.refused

    await eventually(refused, "the pipeline's refusal")
    state = await handle.query(CampaignWorkflow.current)
    assert "unknown flow" in state.pipeline.refusal and state.status.value == "active"
    assert [op.status for op in standins.state.operations if op.campaign_id == c["id"]] == [422]
    # Fixing the flow is a new wish: provisioned then.
    await vapi.put(f"/api/campaigns/{c['id']}/configuration", json={"flowId": "flow-fixed"})
    await eventually(lambda: effective(standins, c["id"]) == ["provision"], "provisioning of the fixed flow")


# --- Knowledge bases --------------------------------------------------------------------


async def test_configuration_checks_knowledge_bases_exist(vapi):
    r = await vapi.post("/api/campaigns", json={**CAMPAIGN, "knowledgeBaseIds": ["kb-faq", "kb-nope"]})
    assert r.status_code == 400
    assert r.json()["details"] == [
        {"field": "knowledgeBaseIds[1]", "reason": "knowledge base 'kb-nope' does not exist"}
    ]
    c = await new_campaign(vapi)
    r = await vapi.put(f"/api/campaigns/{c['id']}/configuration", json={"knowledgeBaseIds": ["kb-gone", "kb-faq"]})
    assert r.status_code == 400 and "knowledgeBaseIds[0]" in r.json()["error"]
    r = await vapi.put(f"/api/campaigns/{c['id']}", json={"knowledgeBaseIds": ["kb-pricing"]})
    assert r.status_code == 200 and r.json()["campaign"]["knowledgeBaseIds"] == ["kb-pricing"]


async def test_knowledge_base_service_down_is_a_503(vapi, standins):
    c = await new_campaign(vapi)
    await standins.kb.stop()
    try:
        r = await vapi.put(f"/api/campaigns/{c['id']}/configuration", json={"knowledgeBaseIds": ["kb-pricing"]})
        assert r.status_code == 503 and r.json()["code"] == "knowledge_base_unavailable"
    finally:
        await standins.kb.start()
    assert (await vapi.get(f"/api/campaigns/{c['id']}")).json()["campaign"]["knowledgeBaseIds"] == ["kb-faq"]


async def test_activation_refused_when_a_knowledge_base_is_gone(vapi, standins):
    kb = f"kb-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=standins.kb.url) as client:
        assert (await client.put(f"/v1/knowledge-bases/{kb}", json={"name": "temp"})).status_code == 201
        c = await new_campaign(vapi, knowledgeBaseIds=["kb-faq", kb])
        assert (await client.delete(f"/v1/knowledge-bases/{kb}")).status_code == 204
    r = await vapi.post(f"/api/campaigns/{c['id']}/activate")
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "knowledge_base_missing" and kb in body["error"] and "knowledgeBaseIds" in body["error"]
    assert body["details"] == {"missingKnowledgeBaseIds": [kb]}
    assert (await vapi.get(f"/api/campaigns/{c['id']}")).json()["campaign"]["status"] == "draft"
    assert effective(standins, c["id"]) == []


async def test_a_scheduled_start_with_a_missing_knowledge_base_pauses_instead(vapi, standins):
    kb = f"kb-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=standins.kb.url) as client:
        await client.put(f"/v1/knowledge-bases/{kb}", json={"name": "temp"})
        start = (datetime.now(UTC) + timedelta(seconds=3)).replace(tzinfo=None, microsecond=0)
        c = await new_campaign(vapi, knowledgeBaseIds=[kb], schedule={"startAt": start.isoformat()})
        r = await vapi.post(f"/api/campaigns/{c['id']}/activate")
        assert r.status_code == 200 and r.json()["campaign"]["status"] == "scheduled"
        await client.delete(f"/v1/knowledge-bases/{kb}")

    async def paused():
        campaign = (await vapi.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
        return campaign if campaign["status"] == "paused" else None

    campaign = await eventually(paused, "the campaign paused at its start", within=30)
    assert campaign["statusReason"] == "knowledge_base_missing"
    audit = (await vapi.get(f"/api/campaigns/{c['id']}/audit")).json()["audit"]
    assert audit[-1]["reason"] == "knowledge_base_missing" and audit[-1]["actor"]["kind"] == "system"
    assert effective(standins, c["id"]) == []
