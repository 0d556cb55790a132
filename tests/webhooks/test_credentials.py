"""A receiver's credentials (custom header values, an integration's URL) are encrypted at
rest, shown masked, kept by updates that do not change them, and kept out of workflow
summaries, logs and the errors a tenant reads."""

from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest

from campaigns.messages.webhook_delivery import workflow_id
from campaigns.settings import Settings
from campaigns.webhooks import service
from tests.support.receiver import Answer, Receiver
from tests.support.webhooks import FAST_RETRY, wait_deliveries

TOKEN = "Bearer s3cr3t-t0ken-cdef"
SLACK_PATH = "/hook/services/T0001/B0002/XXXXabcd"


def integrations(campaign: dict) -> str:
    return f"/api/campaigns/{campaign['id']}/integrations"


async def stored(pool, endpoint_id: str) -> str:
    row = await pool.fetchrow("SELECT url, headers::text AS headers FROM webhook_endpoints WHERE id = $1",
                              uuid.UUID(endpoint_id))
    return row["url"] + row["headers"]


async def test_credentials_are_encrypted_at_rest_and_masked_on_every_read(api, campaign, pool, receiver: Receiver):
    hooks = f"/api/campaigns/{campaign['id']}/webhooks"
    r = await api.post(hooks, json={"url": receiver.url, "eventTypes": ["*"], "headers": {"Authorization": TOKEN}})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    assert hook["headers"] == {"Authorization": "****cdef"} and hook["url"] == receiver.url
    slack_url = receiver.url.removesuffix("/hook") + SLACK_PATH
    r = await api.post(integrations(campaign), json={"type": "slack", "name": "Ops", "url": slack_url,
                                                      "eventTypes": ["*"], "headers": {"X-Key": "k3y-0f-the-integration"}})
    assert r.status_code == 201, r.text
    slack = r.json()["integration"]
    masked = f"http://127.0.0.1:{receiver.port}/…/****abcd"
    assert slack["url"] == masked and slack["headers"] == {"X-Key": "****tion"}

    for endpoint in (hook, slack):
        at_rest = await stored(pool, endpoint["id"])
        assert "s3cr3t" not in at_rest and "XXXXabcd" not in at_rest and "k3y-0f" not in at_rest
        assert str(receiver.port) not in at_rest  # the URL too
    listed = (await api.get(hooks)).json()["webhooks"][0]
    assert listed["headers"] == {"Authorization": "****cdef"}
    assert (await api.get(integrations(campaign))).json()["integrations"][0]["url"] == masked
    assert (await api.get(f"{integrations(campaign)}/{slack['id']}")).json()["integration"]["url"] == masked

    # …and the receivers get the real thing.
    assert (await api.post(f"{hooks}/{hook['id']}/test")).status_code == 202
    assert (await api.post(f"{integrations(campaign)}/{slack['id']}/test")).status_code == 202
    requests = await receiver.wait_for(2)
    assert {r.path for r in requests} == {"/hook", SLACK_PATH}
    assert next(r for r in requests if r.path == "/hook").headers["authorization"] == TOKEN
    assert next(r for r in requests if r.path == SLACK_PATH).headers["x-key"] == "k3y-0f-the-integration"


async def test_updates_keep_what_they_do_not_change(api, campaign, receiver: Receiver):
    slack_url = receiver.url.removesuffix("/hook") + SLACK_PATH
    r = await api.post(integrations(campaign), json={
        "type": "slack", "name": "Ops", "url": slack_url, "eventTypes": ["*"],
        "headers": {"Authorization": TOKEN, "X-Other": "another-value-1234"}})
    item = f"{integrations(campaign)}/{r.json()['integration']['id']}"
    shown = r.json()["integration"]

    # Not touching the headers or the URL keeps them; giving back what was shown keeps them too.
    assert (await api.put(item, json={"name": "Renamed"})).status_code == 200
    r = await api.put(item, json={"url": shown["url"], "headers": {**shown["headers"], "X-Other": "changed-value-99"}})
    assert r.status_code == 200, r.text
    assert r.json()["integration"]["headers"] == {"Authorization": "****cdef", "X-Other": "****e-99"}
    r = await api.put(item, json={"url": "https://hooks.example.com/…/****zzzz"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "url"

    assert (await api.post(f"{item}/test")).status_code == 202
    [request] = await receiver.wait_for(1)
    assert request.path == SLACK_PATH
    assert request.headers["authorization"] == TOKEN and request.headers["x-other"] == "changed-value-99"


async def test_urls_stay_out_of_workflow_summaries_and_logs(api, campaign, temporal_client, receiver: Receiver,
                                                           caplog):
    slack_url = receiver.url.removesuffix("/hook") + SLACK_PATH
    r = await api.post(integrations(campaign), json={"type": "slack", "name": "Ops", "url": slack_url,
                                                      "eventTypes": ["*"], "retryConfig": FAST_RETRY})
    item = f"{integrations(campaign)}/{r.json()['integration']['id']}"
    # The first attempt fails, so its retries run in a delivery workflow, whose summary is shown.
    receiver.answer = lambda n, _: Answer(500) if n == 1 else Answer()
    delivery = (await api.post(f"{item}/test")).json()["delivery"]
    await wait_deliveries(api, item, count=1, status="succeeded")
    description = await temporal_client.get_workflow_handle(workflow_id(uuid.UUID(delivery["id"]))).describe()
    summary = await description.static_summary()
    assert summary == f"webhook.test → endpoint {r.json()['integration']['id']}"
    assert "XXXX" not in summary and str(receiver.port) not in summary

    # A refused destination is logged by host, never by URL.
    with caplog.at_level(logging.INFO, logger="campaigns.webhooks"):
        r = await api.post(integrations(campaign), json={"type": "slack", "name": "x", "eventTypes": ["*"],
                                                          "url": "https://hooks.slack.com/services/T1/B1/abcdXXXXsecret"})
        assert r.status_code == 201
    assert "abcdXXXXsecret" not in caplog.text


async def test_connection_errors_name_no_address(api, campaign):
    """A name that resolves to an address the operator allows (loopback here): the tenant
    learns that the connection was refused, not where the name led."""
    hooks = f"/api/campaigns/{campaign['id']}/webhooks"
    r = await api.post(hooks, json={"url": "http://localhost:9/closed", "eventTypes": ["*"],
                                    "retryConfig": {"maxAttempts": 1}})
    item = f"{hooks}/{r.json()['webhook']['id']}"
    assert (await api.post(f"{item}/test")).status_code == 202
    [delivery] = await wait_deliveries(api, item, count=1, status="failed")
    [attempt] = (await api.get(f"{item}/deliveries/{delivery['id']}")).json()["delivery"]["attemptLog"]
    assert attempt["errorClass"] == "connect" and "refused" in attempt["error"], attempt
    assert not re.search(r"127\.0\.0\.1|::1", attempt["error"]), attempt["error"]


async def test_rows_stored_in_clear_are_encrypted_in_place_once(api, campaign, pool, settings: Settings,
                                                               receiver: Receiver):
    """An upgrade: endpoints saved before encryption are read as they are, and `campaigns
    migrate` (and every worker on start) encrypts them, once."""
    hooks = f"/api/campaigns/{campaign['id']}/webhooks"
    r = await api.post(hooks, json={"url": "https://example.com/x", "eventTypes": ["*"]})
    endpoint_id = uuid.UUID(r.json()["webhook"]["id"])
    await pool.execute("UPDATE webhook_endpoints SET url = $2, headers = $3, credentials_encrypted = false "
                       "WHERE id = $1", endpoint_id, receiver.url, {"Authorization": TOKEN})
    item = f"{hooks}/{endpoint_id}"
    assert (await api.get(item)).json()["webhook"]["headers"] == {"Authorization": "****cdef"}

    assert await service.seal_stored_credentials(pool=pool, settings=settings) >= 1
    assert await service.seal_stored_credentials(pool=pool, settings=settings) == 0
    at_rest = await stored(pool, str(endpoint_id))
    assert "s3cr3t" not in at_rest and str(receiver.port) not in at_rest
    got = (await api.get(item)).json()["webhook"]
    assert got["headers"] == {"Authorization": "****cdef"} and got["url"] == receiver.url
    assert (await api.post(f"{item}/test")).status_code == 202
    [request] = await receiver.wait_for(1)
    assert request.headers["authorization"] == TOKEN


@pytest.mark.parametrize(("value", "shown"), [("ab", "****"), ("0123456789ab", "****89ab")])
def test_short_values_show_nothing_of_themselves(value, shown):
    from campaigns.domain.webhooks import mask
    assert mask(value) == shown
