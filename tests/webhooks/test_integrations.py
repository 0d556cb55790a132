"""Integrations: a generic HTTP JSON push with a field mapping and a Slack-compatible
message, on the webhook engine."""

from __future__ import annotations

import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.campaigns import fields
from tests.support.receiver import Receiver
from tests.support.webhooks import record, wait_deliveries


def integrations(campaign: dict) -> str:
    return f"/api/campaigns/{campaign['id']}/integrations"


CRM = {
    "type": "http_push",
    "name": "CRM leads",
    "eventTypes": ["lead.created"],
    "config": {"fieldMapping": {"contact.email": "data.lead.email", "contact.score": "data.lead.score",
                                "campaign": "campaignId", "source": "'quantum-campaigns'"}},
}


async def test_http_push_sends_the_mapped_fields(api, campaign, pool, receiver: Receiver):
    r = await api.post(integrations(campaign), json={**CRM, "url": receiver.url, "headers": {"X-Api-Key": "k"}})
    assert r.status_code == 201, r.text
    integration = r.json()["integration"]
    assert integration["type"] == "http_push" and integration["secret"].startswith("whsec_")
    await record(pool, campaign, "lead.created", {"lead": {"email": "ana@example.com", "score": 91}})
    [request] = await receiver.wait_for(1)
    assert request.json() == {"contact": {"email": "ana@example.com", "score": 91}, "campaign": campaign["id"],
                              "source": "quantum-campaigns"}
    assert request.headers["x-api-key"] == "k"
    Webhook(integration["secret"]).verify(request.body, request.headers)  # signed like any webhook
    base = f"{integrations(campaign)}/{integration['id']}"
    [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
    assert delivery["eventType"] == "lead.created"


async def test_slack_message(api, campaign, receiver: Receiver):
    r = await api.post(integrations(campaign), json={
        "type": "slack", "name": "Ops channel", "url": receiver.url, "eventTypes": ["campaign.activated"],
        "config": {"channel": "#ops", "iconEmoji": ":telephone:"},
    })
    assert r.status_code == 201, r.text
    assert (await api.post(f"/api/campaigns/{campaign['id']}/activate")).status_code == 200
    [request] = await receiver.wait_for(1)
    assert request.json() == {"text": "Campaign *Spring promo* is live.", "channel": "#ops", "icon_emoji": ":telephone:"}


async def test_slack_test_ping(api, campaign, receiver: Receiver):
    created = (await api.post(integrations(campaign), json={
        "type": "slack", "name": "Ops", "url": receiver.url, "eventTypes": ["goal.*"],
        "config": {"template": "{type}: {data.message}"},
    })).json()["integration"]
    r = await api.post(f"{integrations(campaign)}/{created['id']}/test")
    assert r.status_code == 202, r.text
    [request] = await receiver.wait_for(1)
    assert request.json() == {"text": "webhook.test: This is a test delivery from Quantum Campaigns."}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**CRM, "config": {}}, "config.fieldMapping", "required"),
        ({**CRM, "config": {"fieldMapping": {"email": "data.[["}}}, "config.fieldMapping", "JMESPath"),
        ({**CRM, "config": {"fieldMapping": {"a": "x"}, "extra": 1}}, "config.extra", "unknown field"),
        ({**CRM, "type": "salesforce"}, "type", "http_push"),
        ({**CRM, "name": ""}, "name", "at least 1"),
        ({**CRM, "type": "slack", "config": {"template": "{data.[[}"}}, "config.template", "JMESPath"),
        ({**CRM, "type": "slack", "config": {"iconEmoji": "phone"}}, "config.iconEmoji", "pattern"),
        ({**CRM, "url": "http://192.168.1.10/crm"}, "url", "private"),
    ],
)
async def test_configuration_is_validated_on_creation(api, campaign, body, field, words):
    r = await api.post(integrations(campaign), json={"url": "http://127.0.0.1:9/x", **body})
    assert r.status_code == 400, r.text
    errors = fields(r)
    assert field in errors, errors
    assert words.lower() in errors[field].lower(), errors


async def test_update_list_delete(api, campaign):
    created = (await api.post(integrations(campaign), json={**CRM, "url": "http://127.0.0.1:9/x"})).json()["integration"]
    item = f"{integrations(campaign)}/{created['id']}"
    r = await api.put(item, json={"config": {"fieldMapping": {"email": "data.email"}}, "name": "CRM v2"})
    assert r.status_code == 200, r.text
    assert r.json()["integration"]["config"]["fieldMapping"] == {"email": "data.email"}
    r = await api.put(item, json={"config": {"fieldMapping": {"email": "[["}}})
    assert r.status_code == 400 and "config.fieldMapping" in fields(r)
    listed = (await api.get(integrations(campaign))).json()
    assert listed["total"] == 1 and listed["integrations"][0]["name"] == "CRM v2"
    assert listed["integrations"][0]["secret"] is None
    # Integrations and webhooks are listed apart.
    assert (await api.get(f"/api/campaigns/{campaign['id']}/webhooks")).json()["total"] == 0
    assert (await api.get(f"/api/campaigns/{campaign['id']}/webhooks/{created['id']}")).status_code == 404
    assert (await api.delete(item)).status_code == 200
    assert (await api.get(item)).status_code == 404


async def test_another_organization_reaches_no_integration(api, other_api, campaign):
    created = (await api.post(integrations(campaign), json={**CRM, "url": "http://127.0.0.1:9/x"})).json()["integration"]
    item = f"{integrations(campaign)}/{created['id']}"
    calls = [("GET", integrations(campaign), None), ("POST", integrations(campaign), {**CRM, "url": "http://127.0.0.1:9/"}),
             ("GET", item, None), ("PUT", item, {"name": "x"}), ("DELETE", item, None), ("POST", f"{item}/test", None),
             ("GET", f"{item}/deliveries", None), ("GET", f"{item}/deliveries/{uuid.uuid4()}", None),
             ("POST", f"{item}/rotate-secret", None)]
    for method, url, body in calls:
        r = await other_api.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.text)
    assert (await api.get(item)).json()["integration"]["name"] == "CRM leads"
