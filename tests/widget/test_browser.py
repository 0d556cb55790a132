"""The widget in a real browser: headless Chromium (Debian's `chromium`, installed by this
test's setup when it is missing and the suite runs as root) loads the preview page and a
customer's page on another origin, sees the launcher, clicks it, and the events arrive
and are counted. A page on an origin the widget does not allow shows nothing."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from campaigns.auth.service import create_key
from tests.support.browser import browser, chromium, live_api  # noqa: F401 (fixtures)
from tests.support.campaigns import CAMPAIGN
from tests.support.polling import eventually
from tests.support.servers import Server

# Marked by hand: conftest.py tells browser tests by this marker, wherever they live.
pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
async def shop():
    """A customer's site, on another origin than the API, that pastes the embed code."""
    app = FastAPI()
    app.state.snippet = ""

    @app.get("/{path:path}", response_class=HTMLResponse)
    async def page(path: str) -> str:
        return f"""<!doctype html><html><head><title>Shop</title>
<script>window.hooks = {{ started: function (d) {{ window.callStarted = d.campaignId; }} }};</script>
</head><body><h1>Shop page /{path}</h1>{app.state.snippet}</body></html>"""

    server = Server(app)
    await server.start()
    server.origin = f"http://localhost:{server.port}"  # localhost ≠ 127.0.0.1: a different origin
    yield server
    await server.stop()


async def test_the_widget_in_a_browser(browser, live_api, shop, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    hostile = "</script><script>window.pwned=1</script> --><!--"
    async with httpx.AsyncClient(base_url=live_api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        campaign = (await api.post("/api/campaigns", json={**CAMPAIGN, "name": hostile, "channel": "web"})).json()
        cid = campaign["campaign"]["id"]
        assert (await api.post(f"/api/campaigns/{cid}/activate")).status_code == 200
        r = await api.put(f"/api/campaigns/{cid}/widget", json={
            "styling": {"launcherText": "Talk to </script> us", "primaryColor": "#0a7"},
            "behavior": {"greeting": "<img src=x onerror=window.pwned=2>", "hideOnPages": ["/checkout/**"]},
            "integration": {"allowedOrigins": [shop.origin]},
        })
        assert r.status_code == 200, r.text
        widget = r.json()["widget"]
        code = (await api.get(f"/api/campaigns/{cid}/widget/embed-code",
                              params={"onCallStart": "hooks.started"})).json()["embedCode"]
        shop.app.state.snippet = code["html"]

        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Events the platform accepted, counted by what each batch carried: how the widget
        # batches them depends on timing, so counting responses would be flaky.
        accepted: list[str] = []
        statuses: list[int] = []

        def on_response(r) -> None:
            if "/embed/events" not in r.url:
                return
            statuses.append(r.status)
            if r.status == 202:
                accepted.extend(e["type"] for e in json.loads(r.request.post_data or "{}").get("events", []))

        page.on("response", on_response)

        # 1. The preview page: launcher, click, open and close the panel.
        await page.goto(widget["previewUrl"])
        launcher = page.locator("[data-quantum-voice-widget] button.launcher")
        await launcher.wait_for(state="visible", timeout=15_000)
        assert (await launcher.text_content()).strip() == "Talk to </script> us"
        await launcher.click()
        panel = page.locator("[data-quantum-voice-widget] .panel")
        await panel.wait_for(state="visible")
        assert await page.locator("[data-quantum-voice-widget] .greeting").text_content() == \
            "<img src=x onerror=window.pwned=2>"
        await page.wait_for_timeout(300)
        await page.locator("[data-quantum-voice-widget] button.close").click()
        await panel.wait_for(state="hidden")
        await eventually(lambda: len(accepted) >= 3, "impression, click and display accepted", within=15)
        assert await page.evaluate("typeof window.pwned") == "undefined"

        # 2. The shop, on another origin: CORS for real, and the page's callback by name.
        await page.goto(f"{shop.origin}/products")
        await launcher.wait_for(state="visible", timeout=15_000)
        await launcher.click()
        await page.locator("[data-quantum-voice-widget] button.call").click()
        assert await page.evaluate("window.callStarted") == cid
        await page.locator("[data-quantum-voice-widget] button.close").click()
        await eventually(lambda: len(accepted) >= 6, "the shop's events accepted", within=15)
        assert sorted(accepted) == sorted(["widget.impression", "widget.click", "widget.display"] * 2)
        assert await page.evaluate("typeof window.pwned") == "undefined"
        # The shop's checkout is a hidden page.
        await page.goto(f"{shop.origin}/checkout/pay")
        await page.wait_for_timeout(1000)
        assert await launcher.count() == 0

        # 3. The same page on an origin the widget does not allow: nothing shows, nothing counts.
        before = len(statuses)
        await page.goto(f"http://127.0.0.1:{shop.port}/products")
        await page.wait_for_timeout(1500)
        assert await launcher.count() == 0 and len(statuses) == before
        assert not errors, errors
        await page.close()

        # The events arrived and are counted: two visits with a click each, two panels shown.
        async def counted():
            a = (await api.get(f"/api/campaigns/{cid}/widget/analytics")).json()["analytics"]
            return a if a["impressions"] >= 2 and a["clicks"] >= 2 and a["displays"] >= 2 else None

        analytics = await eventually(counted, "the widget's events counted")
        assert analytics["impressions"] == 2 and analytics["clicks"] == 2
        assert analytics["clickThroughRate"] == 1.0 and analytics["averageDisplayTime"] > 0
