"""Header values a client will not send, and retries that always end: a bad value is
refused when saved; any failure of the sender is a classified attempt; a delivery stops
after its attempts or its maximum age, and each failure counts towards disabling the
endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from campaigns.webhooks.workflow_client import Pending, start_one

from campaigns.webhooks import repository as webhooks_repo
from campaigns.domain.webhooks import dumps, envelope
from campaigns.settings import Settings
from tests.support.campaigns import fields
from tests.support.polling import eventually
from tests.support.receiver import Answer, Receiver
from tests.support.webhooks import FAST_RETRY, record, subscribe, wait_deliveries

BAD_VALUES = ["a\x01b", "\x0b", "x\x7f", "a\r\nInjected: 1", "a\nb", "nul\x00", "\x85", "\u20ac 100", "\u2028"]


@pytest.mark.parametrize("value", BAD_VALUES)
async def test_a_header_value_with_control_or_non_latin1_characters_is_refused(api: httpx.AsyncClient,
                                                                                campaign: dict, value: str):
    hooks = f"/api/campaigns/{campaign['id']}/webhooks"
    body = {"url": "http://127.0.0.1:9/x", "eventTypes": ["lead.created"], "headers": {"X-Ok": "fine", "X-Evil": value}}
    r = await api.post(hooks, json=body)
    assert r.status_code == 400, r.text
    assert "headers.X-Evil" in fields(r) and "X-Ok" not in str(fields(r)), fields(r)
    r = await api.post(f"/api/campaigns/{campaign['id']}/integrations",
                       json={**body, "type": "slack", "name": "Ops"})
    assert r.status_code == 400 and "headers.X-Evil" in fields(r), r.text
    hook = (await api.post(hooks, json={**body, "headers": {"X-Ok": "caf\u00e9"}})).json()["webhook"]  # Latin-1 is fine
    r = await api.put(f"{hooks}/{hook['id']}", json={"headers": {"X-Evil": value}})
    assert r.status_code == 400 and "headers.X-Evil" in fields(r), r.text


async def test_a_sender_error_is_a_failed_attempt_and_the_delivery_ends(api, campaign, pool, receiver: Receiver):
    """A header value saved before it was refused (written here straight into the table):
    the HTTP client raises on it. Each attempt fails as `unexpected`, the delivery ends after
    its attempts, and the failures disable the endpoint like any others."""
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                 retryConfig={**FAST_RETRY, "disableAfterSeconds": 1})
    await pool.execute("UPDATE webhook_endpoints SET url = $3, headers = $2, credentials_encrypted = false "
                       "WHERE id = $1", uuid.UUID(hook["id"]), {"X-Evil": "a\x01b"}, receiver.url)
    await record(pool, campaign, "lead.created")
    [delivery] = await wait_deliveries(api, base, count=1, status="failed", within=30)
    log = (await api.get(f"{base}/deliveries/{delivery['id']}")).json()["delivery"]["attemptLog"]
    assert log and {a["errorClass"] for a in log} == {"unexpected"}, log
    assert "control character" in log[0]["error"]
    state = (await api.get(base)).json()["webhook"]
    assert state["state"] == "disabled" and state["disabledReason"] == "failing"
    assert receiver.requests == []


async def _insert(pool, campaign: dict, hook: dict, *, age: timedelta) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    body = dumps(envelope(event_id=str(delivery_id), type_="webhook.test", occurred_at=datetime.now(UTC), data={},
                          sequence=None, campaign_id=campaign["id"]))
    await webhooks_repo.insert_delivery(pool, delivery_id=delivery_id, endpoint_id=uuid.UUID(hook["id"]),
                                        organization_id=uuid.UUID(campaign["organizationId"]),
                                        event_type="webhook.test", campaign_id=uuid.UUID(campaign["id"]), body=body,
                                        direct=False)  # the test starts its workflow itself
    await pool.execute("UPDATE webhook_deliveries SET created_at = now() - $2::interval, workflow_started = true "
                       "WHERE id = $1", delivery_id, age)
    return delivery_id


async def test_a_delivery_past_its_maximum_age_is_given_up(api, campaign, pool, settings: Settings, temporal_client):
    """However many attempts it has left: one whose next retry would come after the maximum
    age stops after this attempt, one already past it stops without another; both count as
    failures of the endpoint. A redelivery starts the clock again."""
    healthy = False
    receiver = await Receiver(lambda n, r: Answer(200 if healthy else 500)).start()
    try:
        base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                     retryConfig={**FAST_RETRY, "maxAttempts": 20, "initialIntervalSeconds": 2,
                                                  "maxIntervalSeconds": 2})
        max_age = timedelta(seconds=settings.webhook_max_delivery_age_s)
        nearly = await _insert(pool, campaign, hook, age=max_age - timedelta(seconds=1))
        past = await _insert(pool, campaign, hook, age=max_age + timedelta(seconds=1))
        for delivery_id in (nearly, past):
            assert await start_one(temporal_client, settings, Pending(delivery_id, 0, "webhook.test", uuid.uuid4()))

        async def status(delivery_id) -> dict:
            return (await api.get(f"{base}/deliveries/{delivery_id}")).json()["delivery"]

        async def finished(delivery_id):
            got = await status(delivery_id)
            return got if got["status"] != "pending" else None

        got = await eventually(lambda: finished(nearly), "the delivery near its maximum age to end")
        assert got["status"] == "failed" and got["attempts"] == 1 and got["lastErrorClass"] == "http"
        assert "given up" in got["lastError"]
        got = await eventually(lambda: finished(past), "the delivery past its maximum age to end")
        assert got["status"] == "failed" and got["attempts"] == 0 and got["lastErrorClass"] == "expired"
        assert len(receiver.requests) == 1
        assert (await api.get(base)).json()["webhook"]["state"] == "failing"

        healthy = True
        assert (await api.post(f"{base}/deliveries/{past}/redeliver")).status_code == 202
        await eventually(lambda: finished(past), "the redelivery")
        assert (await status(past))["status"] == "succeeded"
    finally:
        await receiver.stop()
