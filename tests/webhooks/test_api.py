"""The webhooks API: subscriptions (a campaign's and organization-wide), validation,
secrets, and no way into another organization's endpoints."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.fernet import Fernet

from campaigns.settings import Settings
from campaigns.webhooks import secrets
from tests.support.campaigns import fields

HOOK = {"url": "http://127.0.0.1:9/hook", "eventTypes": ["campaign.*"]}


def hooks(campaign: dict) -> str:
    return f"/api/campaigns/{campaign['id']}/webhooks"


async def test_create_shows_the_secret_once(api: httpx.AsyncClient, campaign: dict):
    r = await api.post(hooks(campaign), json={**HOOK, "description": "CRM sync", "headers": {"X-Token": "t"}})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    assert hook["secret"].startswith("whsec_")
    assert hook["campaignId"] == campaign["id"] and hook["state"] == "active" and hook["enabled"] is True
    assert hook["retryConfig"]["maxAttempts"] == 8 and hook["maxConcurrency"] == 10
    assert r.headers["location"] == f"{hooks(campaign)}/{hook['id']}"
    got = (await api.get(f"{hooks(campaign)}/{hook['id']}")).json()["webhook"]
    assert got["secret"] is None and got["headers"] == {"X-Token": "****"} and got["description"] == "CRM sync"
    listed = (await api.get(hooks(campaign))).json()
    assert listed["total"] == 1 and listed["webhooks"][0]["secret"] is None


async def test_secret_is_encrypted_at_rest(api: httpx.AsyncClient, campaign: dict, pool, settings: Settings):
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    stored = await pool.fetchval("SELECT secret FROM webhook_endpoints WHERE id = $1", uuid.UUID(hook["id"]))
    assert hook["secret"] not in stored and "whsec_" not in stored
    assert secrets.decrypt(settings, stored) == hook["secret"]
    # A key from the environment: several keys, the first encrypts, any decrypts.
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Settings(_env_file=None, webhook_secret_keys=old)
    after = Settings(_env_file=None, webhook_secret_keys=f"{new},{old}")
    token = secrets.encrypt(before, "whsec_abc")
    assert secrets.decrypt(after, token) == "whsec_abc"
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRET_KEYS"):
        secrets.decrypt(Settings(_env_file=None, webhook_secret_keys=new), token)


async def test_update_changes_only_what_is_given(api: httpx.AsyncClient, campaign: dict):
    hook = (await api.post(hooks(campaign), json={**HOOK, "description": "d"})).json()["webhook"]
    url = f"{hooks(campaign)}/{hook['id']}"
    r = await api.put(url, json={"eventTypes": ["campaign.paused", "goal.*"], "retryConfig": {"maxAttempts": 3}})
    assert r.status_code == 200, r.text
    got = r.json()["webhook"]
    assert got["eventTypes"] == ["campaign.paused", "goal.*"] and got["retryConfig"]["maxAttempts"] == 3
    assert got["url"] == HOOK["url"] and got["description"] == "d" and got["version"] == hook["version"] + 1
    r = await api.put(url, json={"enabled": False})
    assert r.json()["webhook"]["state"] == "disabled" and r.json()["webhook"]["disabledReason"] == "manual"
    r = await api.put(url, json={"enabled": True, "description": None})
    assert r.json()["webhook"]["state"] == "active" and r.json()["webhook"]["description"] is None


async def test_delete(api: httpx.AsyncClient, campaign: dict):
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    assert (await api.delete(f"{hooks(campaign)}/{hook['id']}")).status_code == 200
    assert (await api.get(f"{hooks(campaign)}/{hook['id']}")).status_code == 404
    assert (await api.get(hooks(campaign))).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"eventTypes": ["campaign.*"]}, "url", "required"),
        ({**HOOK, "url": "ftp://x.example/"}, "url", "http"),
        ({**HOOK, "url": "http://10.0.0.8/hook"}, "url", "private"),
        ({**HOOK, "url": "http://169.254.169.254/latest/meta-data"}, "url", "private/internal"),
        ({**HOOK, "url": "http://[::ffff:192.168.0.1]/"}, "url", "private"),
        ({**HOOK, "url": "http://0.0.0.0:80/"}, "url", "refused"),
        ({**HOOK, "url": "http://167772161/"}, "url", "private"),  # 10.0.0.1 spelled as one number
        ({**HOOK, "url": "https://user:pw@example.com/"}, "url", "credentials"),
        ({**HOOK, "eventTypes": []}, "eventTypes", "at least 1"),
        ({**HOOK, "eventTypes": ["campaign.launched"]}, "eventTypes[0]", "not a known event"),
        ({**HOOK, "eventTypes": ["campaign.*", "campaign.*"]}, "eventTypes", "repeat"),
        ({**HOOK, "headers": {"webhook-signature": "v1,forged"}}, "headers", "cannot be overridden"),
        ({**HOOK, "headers": {"Connection": "upgrade"}}, "headers", "cannot be overridden"),
        ({**HOOK, "retryConfig": {"maxAttempts": 0}}, "retryConfig.maxAttempts", "greater than or equal to 1"),
        ({**HOOK, "retryConfig": {"maxAttempts": 50}}, "retryConfig.maxAttempts", "20"),
        ({**HOOK, "retryConfig": {"initialIntervalSeconds": 60, "maxIntervalSeconds": 5}}, "retryConfig", "maxInterval"),
        ({**HOOK, "maxConcurrency": 0}, "maxConcurrency", "greater than or equal to 1"),
        ({**HOOK, "secret": "whsec_mine"}, "secret", "unknown field"),
    ],
)
async def test_bad_input_names_the_field(api: httpx.AsyncClient, campaign: dict, body, field, words):
    r = await api.post(hooks(campaign), json=body)
    assert r.status_code == 400, r.text
    errors = fields(r)
    assert field in errors, errors
    assert words.lower() in errors[field].lower(), errors


async def test_localhost_is_refused_unless_allowed(settings: Settings):
    from campaigns.errors import BadRequest
    from campaigns.webhooks.service import check_destination

    strict = settings.model_copy(update={"webhook_allowed_networks": ""})
    for url in ("http://localhost:8080/hook", "http://127.0.0.1/hook", "http://[::1]/hook"):
        with pytest.raises(BadRequest) as err:
            await check_destination(strict, url)
        reason = err.value.details[0]["reason"]
        assert reason.startswith("refused: private/internal address")
        assert "127.0.0.1" not in reason and "::1" not in reason  # what a name resolved to is not told
    await check_destination(settings, "http://localhost:8080/hook")  # the tests allow loopback


async def test_rotation_keeps_the_old_secret_for_the_grace_period(api: httpx.AsyncClient, campaign: dict):
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    r = await api.post(f"{hooks(campaign)}/{hook['id']}/rotate-secret", json={"gracePeriodSeconds": 3600})
    assert r.status_code == 200, r.text
    rotated = r.json()["webhook"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert rotated["secretRotation"]["previousSecretExpiresAt"]
    r = await api.post(f"{hooks(campaign)}/{hook['id']}/rotate-secret", json={"gracePeriodSeconds": 0})
    assert r.json()["webhook"]["secretRotation"] is None
    r = await api.post(f"{hooks(campaign)}/{hook['id']}/rotate-secret", json={"gracePeriodSeconds": -1})
    assert r.status_code == 400 and "gracePeriodSeconds" in fields(r)


async def test_organization_wide_webhooks(api: httpx.AsyncClient, campaign: dict):
    r = await api.post("/api/webhooks", json={**HOOK, "eventTypes": ["*"]})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    assert hook["campaignId"] is None
    assert r.headers["location"] == f"/api/webhooks/{hook['id']}"
    assert (await api.get("/api/webhooks")).json()["total"] == 1
    # The two scopes are separate: a campaign's list does not show it, nor does its path reach it.
    assert (await api.get(hooks(campaign))).json()["total"] == 0
    assert (await api.get(f"{hooks(campaign)}/{hook['id']}")).status_code == 404


async def test_event_catalogue(api: httpx.AsyncClient):
    r = await api.get("/api/webhooks/event-types")
    types = {e["type"] for e in r.json()["eventTypes"]}
    assert {"campaign.created", "campaign.activated", "campaign.paused", "campaign.resumed", "campaign.ended",
            "campaign.window_opened", "campaign.window_closed", "goal.achieved", "budget.exhausted",
            "lead.created", "ab_test.concluded", "webhook.test"} <= types


async def test_another_organization_reaches_nothing(api: httpx.AsyncClient, other_api: httpx.AsyncClient,
                                                    campaign: dict, anonymous: httpx.AsyncClient):
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    org_hook = (await api.post("/api/webhooks", json=HOOK)).json()["webhook"]
    base = f"{hooks(campaign)}/{hook['id']}"
    delivery = f"{base}/deliveries/{uuid.uuid4()}"
    calls = [
        ("GET", hooks(campaign), None), ("POST", hooks(campaign), HOOK), ("GET", base, None),
        ("PUT", base, {"enabled": False}), ("DELETE", base, None), ("POST", f"{base}/rotate-secret", None),
        ("POST", f"{base}/test", None), ("GET", f"{base}/deliveries", None), ("GET", delivery, None),
        ("GET", f"{delivery}/attempts", None), ("POST", f"{delivery}/redeliver", None),
        ("POST", f"{base}/recover", {"since": "2030-01-01T00:00:00Z"}),
        ("GET", f"/api/webhooks/{org_hook['id']}", None), ("PUT", f"/api/webhooks/{org_hook['id']}", {"enabled": False}),
        ("DELETE", f"/api/webhooks/{org_hook['id']}", None), ("POST", f"/api/webhooks/{org_hook['id']}/test", None),
        ("GET", f"/api/webhooks/{org_hook['id']}/deliveries", None),
        ("POST", f"/api/webhooks/{org_hook['id']}/rotate-secret", None),
    ]
    for method, url, body in calls:
        r = await other_api.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert (await anonymous.request(method, url, json=body)).status_code == 401
    # Untouched.
    assert (await api.get(base)).json()["webhook"]["enabled"] is True
    assert (await other_api.get("/api/webhooks")).json()["total"] == 0


async def test_missing_things_are_404(api: httpx.AsyncClient, campaign: dict):
    assert (await api.get(f"{hooks(campaign)}/{uuid.uuid4()}")).status_code == 404
    assert (await api.get(f"/api/campaigns/{uuid.uuid4()}/webhooks")).status_code == 404
    r = await api.get(f"{hooks(campaign)}/not-a-uuid")
    assert r.status_code == 400 and "path.webhookId" in fields(r)
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    r = await api.get(f"{hooks(campaign)}/{hook['id']}/deliveries/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["code"] == "delivery_not_found"
    r = await api.get(f"{hooks(campaign)}/{hook['id']}/deliveries", params={"status": "lost"})
    assert r.status_code == 400 and "query.status" in fields(r)
    r = await api.get(f"{hooks(campaign)}/{hook['id']}/deliveries", params={"since": "2030-01-01T00:00:00"})
    assert r.status_code == 400 and "query.since" in fields(r)
    r = await api.post(f"{hooks(campaign)}/{hook['id']}/recover", json={"since": "2030-01-01T00:00:00"})
    assert r.status_code == 400 and "since" in fields(r)


async def test_null_is_refused_where_a_value_is_required(api: httpx.AsyncClient, campaign: dict):
    hook = (await api.post(hooks(campaign), json=HOOK)).json()["webhook"]
    r = await api.put(f"{hooks(campaign)}/{hook['id']}", json={"url": None, "eventTypes": None})
    assert r.status_code == 400 and {"url", "eventTypes"} <= set(fields(r))
