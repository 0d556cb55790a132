"""The console's defences, checked through the in-process app: the session cookie, CSRF,
the Content-Security-Policy, escaping, scopes, sign-out and key revocation."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from campaigns.api.console import security
from campaigns.auth.service import authenticate, create_key
from tests.support.campaigns import CAMPAIGN


@pytest.fixture
async def browser_like(app):
    """A client that keeps cookies, as a browser does (on the console's path)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/console/sign-in")
    return await client.post("/console/sign-in", data={"csrf": _csrf(form.text), "apiKey": key, "next": ""})


async def test_signing_in_sets_a_signed_http_only_same_site_cookie(browser_like, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    r = await _sign_in(browser_like, key)
    assert r.status_code == 303 and r.headers["location"] == "/console/campaigns"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("qc_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    value = browser_like.cookies.get("qc_session")
    assert value and key not in value  # the key itself never reaches a cookie
    assert (await browser_like.get("/console/campaigns")).status_code == 200
    # A cookie whose signature does not match is no session.
    browser_like.cookies.set("qc_session", value[:-3] + "abc", path="/console")
    assert (await browser_like.get("/console/campaigns")).status_code == 303


async def test_the_session_is_the_keys_principal(browser_like, app, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    await _sign_in(browser_like, key)
    token = security.unsign(security.secret(app.state.settings), browser_like.cookies.get("qc_session"))
    row = await pool.fetchrow("SELECT key_id FROM console_sessions WHERE token_hash = sha256($1::text::bytea)", token)
    principal = await authenticate(pool, None, key)
    assert principal is not None and row["key_id"] == principal.key_id


async def test_forms_need_the_csrf_token_and_the_same_origin(browser_like, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    # Sign-in itself: no token, no session.
    r = await browser_like.post("/console/sign-in", data={"apiKey": key})
    assert r.status_code == 403 and "qc_session" not in browser_like.cookies
    await _sign_in(browser_like, key)
    form = await browser_like.get("/console/campaigns/new")
    body = {"name": "Forged", "type": "outbound", "channel": "phone", "timezone": "UTC"}
    assert (await browser_like.post("/console/campaigns/new", data=body)).status_code == 403
    assert (await browser_like.post("/console/campaigns/new", data={**body, "csrf": "guess"})).status_code == 403
    other_site = {"Origin": "https://evil.example"}
    r = await browser_like.post("/console/campaigns/new", data={**body, "csrf": _csrf(form.text)}, headers=other_site)
    assert r.status_code == 403
    r = await browser_like.post("/console/campaigns/new", data={**body, "csrf": _csrf(form.text)})
    assert r.status_code == 303


async def test_every_answer_has_a_policy_without_inline_script(browser_like, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    await _sign_in(browser_like, key)
    for path in ("/console/sign-in", "/console/campaigns", "/console/static/console.js", "/console/nowhere"):
        r = await browser_like.get(path)
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
        assert r.headers["x-content-type-options"] == "nosniff"
    page = (await browser_like.get("/console/campaigns")).text
    assert "<script>" not in page and " on" + "click=" not in page and "style=" not in page


async def test_tenant_data_is_escaped(browser_like, make_api):
    api = await make_api()
    hostile = '<img src=x onerror="alert(1)"> & </script>'
    cid = (await api.post("/api/campaigns", json={**CAMPAIGN, "name": hostile})).json()["campaign"]["id"]
    await _sign_in(browser_like, api.key)
    for path in ("/console/campaigns", f"/console/campaigns/{cid}", f"/console/campaigns/{cid}/widget"):
        html = (await browser_like.get(path)).text
        assert hostile not in html and "&lt;img src=x onerror=" in html, path


async def test_signing_out_ends_the_session(browser_like, pool):
    key, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
    await _sign_in(browser_like, key)
    cookie = browser_like.cookies.get("qc_session")
    page = await browser_like.get("/console/campaigns")
    r = await browser_like.post("/console/sign-out", data={"csrf": _csrf(page.text)})
    assert r.status_code == 303
    browser_like.cookies.set("qc_session", cookie, path="/console")  # a copy kept by someone
    assert (await browser_like.get("/console/campaigns")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(browser_like, make_api):
    admin = await make_api()
    r = await admin.post("/api/keys", json={"name": "console", "scopes": ["campaigns:read"]})
    assert r.status_code == 201, r.text
    created = r.json()["key"]
    await _sign_in(browser_like, created["key"])
    assert (await browser_like.get("/console/campaigns")).status_code == 200
    assert (await admin.delete(f"/api/keys/{created['id']}")).status_code == 200
    r = await browser_like.get("/console/campaigns")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")


async def test_a_read_only_key_sees_no_actions_and_is_refused_them(browser_like, make_api):
    api = await make_api()
    cid = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["id"]
    r = await api.post("/api/keys", json={"name": "reader", "scopes": ["campaigns:read"]})
    assert r.status_code == 201, r.text
    await _sign_in(browser_like, r.json()["key"]["key"])
    page = await browser_like.get(f"/console/campaigns/{cid}")
    assert page.status_code == 200
    assert "Activate" not in page.text and "Edit configuration" not in page.text
    r = await browser_like.post(f"/console/campaigns/{cid}/status",
                                data={"csrf": _csrf(page.text), "action": "activate", "reason": "try"})
    assert r.status_code == 403 and "campaigns:write" in r.text
    assert (await browser_like.get("/console/campaigns/new")).status_code == 403
    assert (await api.get(f"/api/campaigns/{cid}")).json()["campaign"]["status"] == "draft"


async def test_another_organizations_campaign_is_not_found(browser_like, make_api):
    theirs = await make_api()
    cid = (await theirs.post("/api/campaigns", json={**CAMPAIGN, "name": "Theirs"})).json()["campaign"]["id"]
    mine = await make_api()
    await _sign_in(browser_like, mine.key)
    for path in (f"/console/campaigns/{cid}", f"/console/campaigns/{cid}/stream", f"/console/campaigns/{cid}/edit"):
        r = await browser_like.get(path)
        assert r.status_code == 404 and "Theirs" not in r.text, path
