"""The widget API (`/api/campaigns/{id}/widget…`) and its public side (`/embed/…`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from campaigns.domain.widget import normalize_origin
from campaigns.limits import WindowLimiter
from campaigns.widget import public as embed_service
from tests.support.campaigns import CAMPAIGN, fields
from tests.support.embed import HOSTILE, tokens

SHOP = "https://shop.example.com"


async def widget_of(api: httpx.AsyncClient, campaign_id: str) -> dict:
    r = await api.get(f"/api/campaigns/{campaign_id}/widget")
    assert r.status_code == 200, r.text
    return r.json()["widget"]


# --- Configuration ---------------------------------------------------------------------


async def test_a_new_widget_has_defaults_and_a_key(api, campaign):
    w = await widget_of(api, campaign["id"])
    assert w["campaignId"] == campaign["id"] and w["name"] == campaign["name"] and w["status"] == "draft"
    assert w["styling"]["primaryColor"] == "#4f46e5" and w["styling"]["launcherText"] == "Talk to us"
    assert w["behavior"]["autoOpenDelay"] is None and w["integration"]["allowedOrigins"] == []
    assert w["voiceSettings"]["ttsVoice"] == campaign["voiceSettings"]["ttsVoice"]
    assert w["publishableKey"].startswith("qcw_pk_")
    assert w["scriptUrl"].endswith("/embed/widget.js")
    assert w["previewUrl"].endswith(f"/embed/preview/{campaign['id']}?key={w['publishableKey']}")
    assert (await widget_of(api, campaign["id"]))["publishableKey"] == w["publishableKey"]


async def test_put_merges_and_validates(api, campaign):
    url = f"/api/campaigns/{campaign['id']}/widget"
    r = await api.put(url, json={
        "styling": {"primaryColor": "#ABC", "position": "bottom-left", "launcherText": "Call us", "theme": "dark",
                    "avatarUrl": "https://cdn.example.com/a.png"},
        "behavior": {"autoOpenDelay": 5, "showOnPages": ["/pricing", "/blog/**"], "showOnlyDuringWindow": True},
        "integration": {"allowedOrigins": ["https://Shop.Example.com/", "https://*.example.org"]},
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["message"] == "Widget configuration updated"
    w = body["widget"]
    assert w["styling"]["primaryColor"] == "#aabbcc" and w["styling"]["textColor"] == "#ffffff"
    assert w["integration"]["allowedOrigins"] == [SHOP, "https://*.example.org"]
    assert w["version"] == 2 and r.headers["etag"] == 'W/"2"'
    # A second patch changes one field and keeps the rest; null resets to the default.
    r = await api.put(url, json={"styling": {"launcherText": "Hi", "avatarUrl": None}})
    w = r.json()["widget"]
    assert w["styling"]["launcherText"] == "Hi" and w["styling"]["primaryColor"] == "#aabbcc"
    assert w["styling"]["avatarUrl"] is None and w["behavior"]["autoOpenDelay"] == 5
    assert (await widget_of(api, campaign["id"]))["styling"]["launcherText"] == "Hi"


async def test_put_lists_every_bad_field(api, campaign):
    r = await api.put(f"/api/campaigns/{campaign['id']}/widget", json={
        "styling": {"primaryColor": "blue", "size": "huge", "launcherText": "x" * 41},
        "behavior": {"autoOpenDelay": 99999, "hideOnPages": ["checkout"]},
        "integration": {"allowedOrigins": ["*", "ftp://x.com"]},
    })
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    got = fields(r)
    assert {"styling.primaryColor", "styling.size", "styling.launcherText", "behavior.autoOpenDelay",
            "behavior.hideOnPages[0]", "integration.allowedOrigins[0]", "integration.allowedOrigins[1]"} <= set(got)
    assert "list each origin" in got["integration.allowedOrigins[0]"]
    r = await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"colour": "#fff"})
    assert r.status_code == 400 and fields(r) == {"colour": "unknown field"}
    r = await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"styling": {"colour": "#fff"}})
    assert r.status_code == 400 and fields(r) == {"styling.colour": "unknown field"}


async def test_if_match_guards_concurrent_edits(api, campaign):
    url = f"/api/campaigns/{campaign['id']}/widget"
    await widget_of(api, campaign["id"])
    r = await api.put(url, json={"enabled": False}, headers={"If-Match": 'W/"7"'})
    assert r.status_code == 412 and r.json()["details"] == {"currentVersion": 1}
    r = await api.put(url, json={"enabled": False}, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.json()["widget"]["enabled"] is False


async def test_archived_campaigns_widget_is_read_only(api, campaign):
    assert (await api.delete(f"/api/campaigns/{campaign['id']}")).status_code == 200
    assert (await api.get(f"/api/campaigns/{campaign['id']}/widget")).status_code == 200
    r = await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"enabled": False})
    assert r.status_code == 409 and r.json()["code"] == "campaign_archived"


async def test_another_organizations_widget_is_not_found(api, other_api, campaign):
    base = f"/api/campaigns/{campaign['id']}/widget"
    calls = [
        other_api.get(base),
        other_api.put(base, json={"enabled": False}),
        other_api.get(base + "/embed-code"),
        other_api.post(base + "/rotate-key"),
        other_api.get(f"/api/campaigns/{uuid.uuid4()}/widget"),
    ]
    for call in calls:
        r = await call
        assert r.status_code == 404 and r.json()["code"] == "campaign_not_found", r.text
    assert (await widget_of(api, campaign["id"]))["enabled"] is True


async def test_the_widget_api_needs_a_key(anonymous, campaign):
    assert (await anonymous.get(f"/api/campaigns/{campaign['id']}/widget")).status_code == 401


# --- Embed code ------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE[:8])
async def test_embed_code_is_inert_with_hostile_names_and_settings(api, name):
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "name": name.replace("\x00", "")[:200] or "x"})
    assert r.status_code == 201, r.text
    campaign = r.json()["campaign"]
    hostile_text = "</script><!-- -->\u2028\"'"
    r = await api.put(f"/api/campaigns/{campaign['id']}/widget", json={
        "styling": {"launcherText": hostile_text[:40], "title": hostile_text},
        "behavior": {"greeting": hostile_text},
    })
    assert r.status_code == 200, r.text
    r = await api.get(f"/api/campaigns/{campaign['id']}/widget/embed-code",
                      params={"onCallStart": "myApp.onCallStart", "onLeadCreated": "leads.created"})
    assert r.status_code == 200, r.text
    code = r.json()["embedCode"]
    kinds = [t[0] for t in tokens(code["html"])]
    assert kinds == ["comment", "start", "data", "end", "start", "end", "comment"]
    loader = tokens(code["html"])[4][2]
    assert loader["data-on-call-start"] == "myApp.onCallStart" and loader["data-on-lead-created"] == "leads.created"
    assert loader["data-key"] == code["publishableKey"]
    assert code["configuration"]["styling"]["title"] == hostile_text
    assert "allowedOrigins" not in str(code["configuration"])
    assert code["previewUrl"].endswith(f"?key={code['publishableKey']}")


@pytest.mark.parametrize("code", ["alert(1)", "function(){}", "a.__proto__", "x\" onload=\"y", "</script>"])
async def test_embed_code_refuses_code_as_callbacks(api, campaign, code):
    r = await api.get(f"/api/campaigns/{campaign['id']}/widget/embed-code", params={"onCallEnd": code})
    assert r.status_code == 400
    assert "name of a function" in fields(r)["query.onCallEnd"] or "must not use" in fields(r)["query.onCallEnd"]


async def test_rotating_the_key_retires_the_old_one(api, anonymous, campaign):
    old = (await widget_of(api, campaign["id"]))["publishableKey"]
    r = await api.post(f"/api/campaigns/{campaign['id']}/widget/rotate-key")
    new = r.json()["widget"]["publishableKey"]
    assert new != old and new.startswith("qcw_pk_")
    assert (await anonymous.get("/embed/config", params={"key": old})).status_code == 404
    assert (await anonymous.get("/embed/config", params={"key": new})).status_code == 200


# --- The public side ---------------------------------------------------------------------


async def test_widget_js_is_served_and_cacheable(anonymous):
    r = await anonymous.get("/embed/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "widget.impression" in r.text and "widget.click" in r.text and "widget.display" in r.text
    assert "eval(" not in r.text and "innerHTML" not in r.text and "new Function" not in r.text
    assert len(r.content) < 20_000
    again = await anonymous.get("/embed/widget.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


async def test_config_says_whether_to_show_and_enforces_origins(api, anonymous, settings, campaign):
    w = await widget_of(api, campaign["id"])
    key = w["publishableKey"]
    await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"integration": {"allowedOrigins": [SHOP]}})

    r = await anonymous.get("/embed/config", params={"key": key}, headers={"Origin": SHOP})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SHOP
    body = r.json()
    assert body["visible"] is False and body["hiddenReason"] == "campaign_draft"
    assert body["styling"]["launcherText"] == "Talk to us" and "integration" not in body
    preview = (await anonymous.get("/embed/config", params={"key": key, "preview": "true"})).json()
    assert preview["visible"] is True and preview["preview"] is True

    r = await anonymous.get("/embed/config", params={"key": key}, headers={"Origin": "https://evil.example.net"})
    assert r.status_code == 403 and r.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    platform = normalize_origin(settings.base_url)
    assert (await anonymous.get("/embed/config", params={"key": key}, headers={"Origin": platform})).status_code == 200
    for bad in (None, "nope", "qcw_pk_unknown"):
        assert (await anonymous.get("/embed/config", params={"key": bad} if bad else {})).status_code == 404

    assert (await api.post(f"/api/campaigns/{campaign['id']}/activate")).status_code == 200
    assert (await anonymous.get("/embed/config", params={"key": key})).json()["visible"] is True
    await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"enabled": False})
    body = (await anonymous.get("/embed/config", params={"key": key})).json()
    assert body["visible"] is False and body["hiddenReason"] == "widget_disabled"


async def test_preview_page_shows_the_widget_under_a_strict_policy(api, anonymous, campaign):
    hostile = "</script><script>window.pwned=1</script>"
    await api.put(f"/api/campaigns/{campaign['id']}", json={"name": hostile})
    w = await widget_of(api, campaign["id"])
    r = await anonymous.get(f"/embed/preview/{campaign['id']}", params={"key": w["publishableKey"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
    page = r.text
    # Only the embed code's two script elements; the name is text wherever it appears.
    assert page.count("<script") == 2 and hostile not in page
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1" in page
    assert [t for t in tokens(page) if t[0] == "start" and t[1] == "script"][1][2]["data-preview"] == "true"

    wrong = [
        anonymous.get(f"/embed/preview/{campaign['id']}", params={"key": "qcw_pk_nope"}),
        anonymous.get(f"/embed/preview/{campaign['id']}"),
        anonymous.get(f"/embed/preview/{uuid.uuid4()}", params={"key": w["publishableKey"]}),
    ]
    for call in wrong:
        assert (await call).status_code == 404


async def test_events_need_an_allowed_origin_and_a_valid_body(api, anonymous, campaign):
    w = await widget_of(api, campaign["id"])
    await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"integration": {"allowedOrigins": [SHOP]}})
    batch = {"key": w["publishableKey"], "events": [{"id": "e1", "type": "widget.click"}]}

    for origin in (None, "https://evil.example.net", "null"):
        headers = {"Content-Type": "text/plain"} | ({"Origin": origin} if origin else {})
        r = await anonymous.post("/embed/events", json=batch, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "origin_not_allowed", origin
    r = await anonymous.post("/embed/events", json={**batch, "key": "qcw_pk_unknown"}, headers={"Origin": SHOP})
    assert r.status_code == 404
    for body in (b"not json", b"[]", b'{"key": "x"}', b'{"key": "x", "events": []}'):
        r = await anonymous.post("/embed/events", content=body, headers={"Origin": SHOP, "Content-Type": "text/plain"})
        assert r.status_code == 400, body
    r = await anonymous.post("/embed/events", content=b"x" * 70_000, headers={"Origin": SHOP})
    assert r.status_code == 413


async def test_events_preflight(anonymous):
    r = await anonymous.options("/embed/events", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SHOP
    assert "POST" in r.headers["access-control-allow-methods"]


async def test_rate_limit_counts_events_per_visitor(redis_client):
    limiter = WindowLimiter(redis_client, name=f"widget-{uuid.uuid4().hex[:6]}", window_s=60)
    key = f"qcw_pk_{uuid.uuid4().hex}"
    assert embed_service.within_rate(limiter, key=key, client="1.2.3.4", count=5, per_minute=10) is None
    assert embed_service.within_rate(limiter, key=key, client="1.2.3.4", count=5, per_minute=10) is None
    wait = embed_service.within_rate(limiter, key=key, client="1.2.3.4", count=1, per_minute=10)
    assert wait is not None and 0 < wait <= 60
    assert embed_service.within_rate(limiter, key=key, client="5.6.7.8", count=1, per_minute=10) is None


# --- Events and analytics ----------------------------------------------------------------


async def test_events_are_recorded_once_and_counted(api, anonymous, app, pool, campaign):
    w = await widget_of(api, campaign["id"])
    await api.put(f"/api/campaigns/{campaign['id']}/widget", json={"integration": {"allowedOrigins": [SHOP]}})
    headers = {"Origin": SHOP, "Content-Type": "text/plain"}
    events = [
        {"id": "i1", "type": "widget.impression", "subjectId": "visitor-1"},
        {"id": "i2", "type": "widget.impression", "subjectId": "visitor-2"},
        {"id": "c1", "type": "widget.click", "subjectId": "visitor-1"},
        {"id": "d1", "type": "widget.display", "subjectId": "visitor-1", "data": {"ms": 4000}},
        {"id": "x1", "type": "conversion", "subjectId": "visitor-1"},
        {"id": "d2", "type": "widget.display", "data": {"ms": -5}},
        {"id": "i3", "type": "widget.impression", "data": {"ms": 1}},
    ]
    r = await anonymous.post("/embed/events", json={"key": w["publishableKey"], "events": events}, headers=headers)
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    body = r.json()
    assert body["accepted"] == 4 and body["duplicates"] == 0
    assert [x["index"] for x in body["rejected"]] == [4, 5, 6]  # a conversion is not the widget's to send
    again = await anonymous.post("/embed/events", json={"key": w["publishableKey"], "events": events[:4]},
                                 headers=headers)
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 4
    stored = await pool.fetch("SELECT event_id FROM analytics_events WHERE campaign_id = $1", uuid.UUID(campaign["id"]))
    expected = sorted(f"widget:{campaign['id']}:{i}" for i in ("i1", "i2", "c1", "d1"))
    assert sorted(r["event_id"] for r in stored) == expected

    # A conversion the pipeline reports for the visitor who clicked counts as the widget's.
    r = await api.post("/api/events", json={"events": [{
        "id": f"conv-{uuid.uuid4().hex}", "campaignId": campaign["id"], "type": "conversion",
        "occurredAt": datetime.now(UTC).isoformat(), "subjectId": "visitor-1", "data": {"revenue": 50}}]})
    assert r.status_code == 200, r.text
    await app.state.analytics.refresher.drain()
    a = (await api.get(f"/api/campaigns/{campaign['id']}/widget/analytics")).json()["analytics"]
    assert (a["impressions"], a["clicks"], a["displays"], a["uniqueVisitors"]) == (2, 1, 1, 2)
    assert a["clickThroughRate"] == 0.5 and a["averageDisplayTime"] == 4000
    assert a["conversions"] == 1 and a["conversionRate"] == 1.0
    assert (await api.get(f"/api/campaigns/{campaign['id']}/widget/analytics",
                          params={"timeframe": "24h"})).json()["analytics"]["impressions"] == 2
    bad = await api.get(f"/api/campaigns/{campaign['id']}/widget/analytics", params={"timeframe": "1y"})
    assert bad.status_code == 400


async def test_widget_analytics_of_another_organization_is_not_found(other_api, campaign):
    r = await other_api.get(f"/api/campaigns/{campaign['id']}/widget/analytics")
    assert r.status_code == 404
