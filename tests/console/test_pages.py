"""Console forms beyond the browser tests, through the in-process app: the configuration
editor (every error listed, a stale version refused), A/B tests created and stopped, the
widget's settings, a webhook's secret rotation, and the clone action."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.abtests import TEST
from tests.support.campaigns import CAMPAIGN


@pytest.fixture
async def console(app, make_api):
    """A signed-in console client, and an API client of the same organization."""
    api = await make_api()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as client:
        form = await client.get("/console/sign-in")
        r = await client.post("/console/sign-in", data={"csrf": _csrf(form.text), "apiKey": api.key})
        assert r.status_code == 303
        yield client, api


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


async def test_the_editor_lists_every_error_and_refuses_a_stale_version(console):
    client, api = console
    campaign = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]
    page = await client.get(f"/console/campaigns/{campaign['id']}/edit")
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = {"voiceSettings": {"speakingRate": 3}, "timezone": "Nowhere/Land"}
    r = await client.post(f"/console/campaigns/{campaign['id']}/edit", data={
        "csrf": _csrf(page.text), "version": version, "name": "Renamed", "configuration": json.dumps(bad)})
    assert r.status_code == 400
    assert "voiceSettings.speakingRate" in r.text and "timezone" in r.text
    good = {"voiceSettings": {"speakingRate": 1.1}}
    r = await client.post(f"/console/campaigns/{campaign['id']}/edit", data={
        "csrf": _csrf(page.text), "version": version, "name": "Renamed", "configuration": json.dumps(good)})
    assert r.status_code == 303
    after = (await api.get(f"/api/campaigns/{campaign['id']}")).json()["campaign"]
    assert after["name"] == "Renamed" and after["voiceSettings"]["speakingRate"] == 1.1
    # The same form again: someone (this form) changed it since it was opened.
    r = await client.post(f"/console/campaigns/{campaign['id']}/edit", data={
        "csrf": _csrf(page.text), "version": version, "name": "Again", "configuration": "{}"})
    assert r.status_code == 412 and "changed this campaign" in r.text


async def test_an_ab_test_is_created_and_stopped(console):
    client, api = console
    cid = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["id"]
    assert (await api.post(f"/api/campaigns/{cid}/activate")).status_code == 200  # a draft cannot be tested
    form = await client.get(f"/console/campaigns/{cid}/ab-tests/new")
    r = await client.post(f"/console/campaigns/{cid}/ab-tests/new",
                          data={"csrf": _csrf(form.text), "design": json.dumps({**TEST, "variants": [{"name": "A"}]})})
    assert r.status_code == 400 and "variants" in r.text
    r = await client.post(f"/console/campaigns/{cid}/ab-tests/new", data={"csrf": _csrf(form.text), "design": json.dumps(TEST)})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert page.status_code == 200 and "Warm greeting" in page.text and "No verdict yet" in page.text
    r = await client.post(r.headers["location"] + "/stop", data={"csrf": _csrf(page.text), "reason": "enough"})
    assert r.status_code == 303
    tests = (await api.get(f"/api/campaigns/{cid}/ab-tests")).json()["tests"]
    assert tests[0]["status"] == "concluded" and tests[0]["conclusion"] == "stopped"


async def test_widget_settings_are_saved_or_their_errors_shown(console):
    client, api = console
    cid = (await api.post("/api/campaigns", json={**CAMPAIGN, "channel": "web"})).json()["campaign"]["id"]
    page = await client.get(f"/console/campaigns/{cid}/widget")
    assert 'src="/embed/preview/' in page.text  # same origin as the console
    fields = {"csrf": _csrf(page.text), "enabled": "on", "launcherText": "Call us", "title": "Hello",
              "primaryColor": "#112233", "position": "bottom-left", "theme": "dark", "greeting": "Hi",
              "allowedOrigins": "https://shop.example\nnot an origin"}
    r = await client.post(f"/console/campaigns/{cid}/widget", data=fields)
    assert r.status_code == 400 and "allowedOrigins" in r.text
    r = await client.post(f"/console/campaigns/{cid}/widget", data={**fields, "allowedOrigins": "https://shop.example"})
    assert r.status_code == 303
    widget = (await api.get(f"/api/campaigns/{cid}/widget")).json()["widget"]
    assert widget["styling"]["launcherText"] == "Call us" and widget["integration"]["allowedOrigins"] == [
        "https://shop.example"]


async def test_rotating_a_secret_shows_the_new_one_once(console):
    client, api = console
    r = await api.post("/api/webhooks", json={"url": "https://example.com/hook", "eventTypes": ["*"]})
    wid = r.json()["webhook"]["id"]
    page = await client.get(f"/console/webhooks/{wid}")
    r = await client.post(f"/console/webhooks/{wid}/rotate", data={"csrf": _csrf(page.text)})
    assert r.status_code == 200
    secret = re.search(r'id="new-secret" class="mono" readonly value="(whsec_[^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    assert secret not in (await client.get(f"/console/webhooks/{wid}")).text
    assert (await client.post(f"/console/webhooks/{wid}/explode", data={"csrf": _csrf(page.text)})).status_code == 404


async def test_clone_makes_a_draft_copy(console):
    client, api = console
    cid = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["id"]
    page = await client.get(f"/console/campaigns/{cid}")
    r = await client.post(f"/console/campaigns/{cid}/clone", data={"csrf": _csrf(page.text), "name": "Copy",
                                                                    "formId": "clone-1"})
    assert r.status_code == 303
    copy = r.headers["location"].split("/console/campaigns/")[1].split("?")[0]
    assert (await api.get(f"/api/campaigns/{copy}")).json()["campaign"]["name"] == "Copy"
    # Without a reason, a status change is refused and nothing changes.
    r = await client.post(f"/console/campaigns/{cid}/status", data={"csrf": _csrf(page.text), "action": "activate"})
    assert r.status_code == 400
    assert (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "draft"
