"""The console in a real browser (headless Chromium through Playwright, against the API on a
real port): signing in, a campaign's life from a bad form to a paused campaign with live
tiles, an A/B test's results, redelivering a failed webhook, and another organization's
campaign refused. Each test saves screenshots under test-artifacts/console/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from campaigns.auth.service import create_key
from tests.support import abtests
from tests.support.browser import browser, chromium, live_api, screenshot  # noqa: F401 (fixtures)
from tests.support.campaigns import CAMPAIGN, EVERY_DAY
from tests.support.polling import eventually
from tests.support.receiver import Answer, Receiver
from tests.support.webhooks import FAST_RETRY

pytestmark = pytest.mark.browser


async def _org(pool) -> str:
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    return key


async def _signed_in(browser, live_api, key: str):  # noqa: F811
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors and refusals by the Content-Security-Policy (a failed load is an expected 4xx).
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None)
    await page.goto(f"{live_api.url}/console/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: url.endswith('/console/campaigns'))
    return context, page, errors


def _api(live_api, key: str) -> httpx.AsyncClient:  # noqa: F811
    return httpx.AsyncClient(base_url=live_api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


async def test_a_campaign_from_a_bad_form_to_paused(browser, live_api, pool):  # noqa: F811
    key = await _org(pool)
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors and refusals by the Content-Security-Policy (a failed load is an expected 4xx).
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None)

    # Signed out, a console page leads to the sign-in form, and back after signing in.
    await page.goto(f"{live_api.url}/console/campaigns")
    await page.wait_for_url(lambda url: '/console/sign-in?next=' in url)
    await screenshot(page, "console/sign-in")
    await page.get_by_label("API key").fill("qck_not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    assert "not valid" in await page.get_by_role("alert").text_content()
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: url.endswith('/console/campaigns'))
    cookie = next(c for c in await context.cookies() if c["name"] == "qc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # A bad field: the form comes back with the API's reason beside that field.
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Name").fill("Sydney <b>evening</b> calls")
    await page.get_by_label("Conversation flow id").fill("flow-1")
    await page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    await page.get_by_role("button", name="Create draft").click()
    error = page.locator("#timezone-error")
    await error.wait_for()
    assert "zone" in (await error.text_content()).lower()
    assert await page.get_by_label("Name").input_value() == "Sydney <b>evening</b> calls"
    await screenshot(page, "console/new-campaign-error")

    await page.get_by_label("Time zone").fill("Australia/Sydney")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url(lambda url: '?done=created' in url)
    campaign_id = page.url.split("/console/campaigns/")[1].split("?")[0]
    heading = page.get_by_role("heading", level=1)
    assert "Sydney <b>evening</b> calls" in await heading.text_content()  # shown as text, not markup
    assert await page.locator("h1 b").count() == 0

    # Activate: a dialog asks for confirmation and a reason.
    await page.get_by_role("link", name="Activate").click()
    dialog = page.locator("dialog#dialog-activate")
    await dialog.get_by_label("Reason").fill("launch night")
    await dialog.get_by_role("button", name="Activate").click()
    await page.wait_for_url(lambda url: '?done=activate' in url)
    assert (await page.locator("h1 .badge").first.text_content()).strip() == "active"

    # Events ingested through the API reach the live tile within two seconds.
    tile = page.locator('[data-metric="todayCalls"]')
    assert (await tile.text_content()).strip() == "0"
    await page.wait_for_timeout(500)  # the stream is open
    now = datetime.now(UTC).isoformat()
    events = []
    for n in range(3):
        call = f"{campaign_id}-{n}"
        events += [
            {"id": f"{call}-start", "campaignId": campaign_id, "type": "call.started", "occurredAt": now, "callId": call},
            {"id": f"{call}-done", "campaignId": campaign_id, "type": "call.completed", "occurredAt": now,
             "callId": call, "data": {"durationSec": 60, "outcome": "connected"}},
        ]
    async with _api(live_api, key) as api:
        r = await api.post("/api/events", json={"events": events})
        assert r.status_code in (200, 202), r.text
    sent = datetime.now(UTC)
    await eventually(lambda: tile.text_content(), "the calls tile to show 3", until=lambda t: t.strip() == "3",
                     within=2)
    assert datetime.now(UTC) - sent < timedelta(seconds=2)
    await screenshot(page, "console/campaign")

    # Pause, with its reason in the audit log.
    await page.get_by_role("link", name="Pause").click()
    dialog = page.locator("dialog#dialog-pause")
    await dialog.get_by_label("Reason").fill("21:00 in Sydney")
    await dialog.get_by_role("button", name="Pause").click()
    await page.wait_for_url(lambda url: '?done=pause' in url)
    assert (await page.locator("h1 .badge").first.text_content()).strip() == "paused"
    assert await page.get_by_text("21:00 in Sydney").count() >= 1
    assert await page.get_by_role("link", name="Resume").count() == 1

    # The other pages of the campaign, for a look: a schedule with windows and a blackout day.
    blackout = (datetime.now(UTC) + timedelta(days=2)).astimezone(ZoneInfo("Australia/Sydney")).date()
    async with _api(live_api, key) as api:
        r = await api.put(f"/api/campaigns/{campaign_id}/configuration", json={"schedule": {
            "windows": {**{d: ["09:00-12:30", "14:00-20:00"] for d in EVERY_DAY[:5]}, "saturday": ["10:00-14:00"]},
            "blackoutDates": [blackout.isoformat()]}})
        assert r.status_code == 200, r.text
    await page.get_by_role("link", name="Schedule").click()
    assert await page.locator("svg.calendar .blackout").count() == 1
    await page.get_by_label("Phone number (E.164)").fill("+61 2 9374 4000")
    await page.get_by_role("button", name="May we dial now?").click()
    await page.get_by_role("status").wait_for()
    await screenshot(page, "console/schedule")
    await page.get_by_role("link", name="Widget").click()
    await page.locator("iframe.preview").wait_for()
    await page.wait_for_timeout(800)
    await screenshot(page, "console/widget")
    async with _api(live_api, key) as api:  # a fuller list to look at
        for name, channel, activate in [("Renewals outreach", "phone", True), ("Inbound support line", "multi", True),
                                        ("Web leads", "web", False), ("Spring promo, Paris", "sms", False)]:
            r = await api.post("/api/campaigns", json={**CAMPAIGN, "name": name, "channel": channel,
                                                       "timezone": "Europe/Paris"})
            if activate:
                await api.post(f"/api/campaigns/{r.json()['campaign']['id']}/activate")
    await page.goto(f"{live_api.url}/console/campaigns")
    assert await page.locator("table.list tbody tr").count() == 5
    await screenshot(page, "console/campaigns")

    # Signing out ends the session.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(lambda url: url.endswith("/console/sign-in"))
    await page.goto(f"{live_api.url}/console/campaigns/{campaign_id}")
    await page.wait_for_url(lambda url: '/console/sign-in?next=' in url)
    assert not errors, errors
    await context.close()


async def test_an_ab_test_with_results(browser, live_api, pool):  # noqa: F811
    key = await _org(pool)
    async with _api(live_api, key) as api:
        r = await api.post("/api/campaigns", json={**CAMPAIGN, "name": "Greeting test"})
        cid = r.json()["campaign"]["id"]
        assert (await api.post(f"/api/campaigns/{cid}/activate")).status_code == 200
        test = await abtests.create_test(api, cid, evaluationIntervalSeconds=5, guardrailMetrics=[
            {"metric": "callFailureRate"}])
        control, warm = (v["id"] for v in test["variants"])
        await abtests.calls(pool, cid, control, 900, 90)
        await abtests.calls(pool, cid, warm, 900, 135)

        async def evaluated():
            r = await api.get(f"/api/campaigns/{cid}/ab-test/{test['id']}/evaluations")
            return r.json()["evaluations"]

        await eventually(evaluated, "an evaluation of the test", within=30)
    context, page, errors = await _signed_in(browser, live_api, key)
    await page.goto(f"{live_api.url}/console/campaigns/{cid}/ab-tests/{test['id']}")
    assert await page.get_by_role("heading", name="Against control").count() == 1
    plot = page.locator("figure.chart svg").first
    assert "Warm" in await plot.locator("desc").text_content()
    assert await page.locator("g.interval").count() >= 1
    assert await page.get_by_role("heading", name="The running interval").count() == 1
    assert await page.locator(".verdict h2").count() == 1
    await screenshot(page, "console/ab-test")
    assert not errors, errors
    await context.close()


async def test_redeliver_a_failed_webhook(browser, live_api, pool):  # noqa: F811
    key = await _org(pool)
    healthy = False
    receiver = await Receiver(lambda n, r: Answer(200 if healthy else 503, body=b"down for maintenance")).start()
    try:
        async with _api(live_api, key) as api:
            r = await api.post("/api/webhooks", json={
                "url": receiver.url, "eventTypes": ["*"], "description": "CRM sync",
                "retryConfig": {**FAST_RETRY, "maxAttempts": 2}})
            assert r.status_code == 201, r.text
            wid = r.json()["webhook"]["id"]
            assert (await api.post(f"/api/webhooks/{wid}/test")).status_code == 202

            async def failed():
                r = await api.get(f"/api/webhooks/{wid}/deliveries", params={"status": "failed"})
                return r.json()["deliveries"]

            delivery = (await eventually(failed, "the ping to fail", within=30))[0]
        context, page, errors = await _signed_in(browser, live_api, key)
        await page.get_by_role("link", name="Webhooks").click()
        await page.get_by_role("link", name="CRM sync").click()
        row = page.locator(f'tr[data-delivery="{delivery["id"]}"]')
        assert "failed" in await row.locator(".badge").text_content()
        await row.get_by_text("2 attempts").click()
        assert "down for maintenance" in await row.locator("table.attempts").text_content()
        await screenshot(page, "console/webhook")

        healthy = True
        page.once("dialog", lambda d: d.accept())
        await row.get_by_role("button", name="Redeliver").click()
        await page.wait_for_url(lambda url: '?done=redelivered' in url)

        async def succeeded():
            await page.reload()
            return await page.locator(f'tr[data-delivery="{delivery["id"]}"] .badge').text_content()

        await eventually(succeeded, "the redelivery to succeed", until=lambda s: "succeeded" in s, within=20)
        assert "run 1" in await page.locator(f'tr[data-delivery="{delivery["id"]}"]').text_content()
        assert not errors, errors
        await context.close()
    finally:
        await receiver.stop()


async def test_another_organizations_campaign_is_refused(browser, live_api, pool):  # noqa: F811
    theirs = await _org(pool)
    async with _api(live_api, theirs) as api:
        cid = (await api.post("/api/campaigns", json={**CAMPAIGN, "name": "Their secret"})).json()["campaign"]["id"]
    context, page, _ = await _signed_in(browser, live_api, await _org(pool))
    for path in (f"/console/campaigns/{cid}", f"/console/campaigns/{cid}/schedule", f"/console/campaigns/{cid}/widget"):
        response = await page.goto(f"{live_api.url}{path}")
        assert response.status == 404
        assert "Their secret" not in await page.content()
    await screenshot(page, "console/refused")
    await context.close()
