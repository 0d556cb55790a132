"""Every endpoint names the scopes that let a key in; a key without one gets 403."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid

import httpx
import httpx_sse
import pytest
from fastapi.routing import APIRoute

from campaigns.api.app import create_app
from campaigns.api.openapi import api_routes
from campaigns.auth import scopes
from campaigns.settings import Settings
from tests.support.analytics import call, send
from tests.support.campaigns import CAMPAIGN
from tests.support.polling import eventually
from tests.support.servers import serving

PUBLIC = ("/embed/", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")


def required_scopes(route: APIRoute) -> list[tuple[str, ...]]:
    """The scope sets the route's dependencies require (each a set any one of which lets in)."""
    found, stack = [], [route.dependant]
    while stack:
        dependant = stack.pop()
        wanted = getattr(dependant.call, "required_scopes", None)
        if wanted is not None:
            found.append(wanted)
        stack.extend(dependant.dependencies)
    return found


def routes() -> list[APIRoute]:
    return list(api_routes(create_app(Settings(_env_file=None))))


def test_every_api_route_requires_a_scope():
    missing, seen = [], 0
    for route in routes():
        if route.path.startswith(PUBLIC):
            continue
        seen += 1
        needed = required_scopes(route)
        if len(needed) != 1 or not needed[0] or not set(needed[0]) <= set(scopes.ALL):
            missing.append(f"{sorted(route.methods)} {route.path}: {needed}")
    assert seen > 70
    assert not missing, "routes without exactly one scope requirement:\n" + "\n".join(missing)


def test_the_public_routes_are_the_only_ones_without_a_key():
    public = {r.path for r in routes() if not required_scopes(r)}
    assert public and all(path.startswith(PUBLIC) for path in public), public


async def mint(api: httpx.AsyncClient, make_api, *wanted: str) -> httpx.AsyncClient:
    r = await api.post("/api/keys", json={"name": "scoped", "scopes": list(wanted)})
    assert r.status_code == 201, r.text
    assert r.json()["key"]["scopes"] == sorted(wanted)
    return await make_api(key=r.json()["key"]["key"])


async def test_a_key_without_the_scope_is_refused_naming_it(api, make_api, campaign):
    reader = await mint(api, make_api, scopes.CAMPAIGNS_READ)
    assert (await reader.get(f"/api/campaigns/{campaign['id']}")).status_code == 200
    r = await reader.post("/api/campaigns", json=CAMPAIGN)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "insufficient_scope" and "campaigns:write" in r.json()["error"]
    assert r.json()["details"]["required"] == ["campaigns:write"]
    r = await reader.post(f"/api/campaigns/{campaign['id']}/pause")
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    r = await reader.get(f"/api/campaigns/{campaign['id']}/analytics/real-time")
    assert r.status_code == 403 and "analytics:read" in r.json()["error"]
    r = await reader.post("/api/webhooks", json={"url": "https://example.com/h", "eventTypes": ["*"]})
    assert r.status_code == 403 and "webhooks:write" in r.json()["error"]
    assert (await reader.get("/api/webhooks")).status_code == 200  # reading webhooks: campaigns:read will do
    # Nothing was written by the refused calls.
    assert (await api.get("/api/campaigns")).json()["total"] == 1


async def test_a_pipeline_key_sends_events_and_nothing_else(api, make_api, campaign):
    pipeline = await mint(api, make_api, scopes.EVENTS_WRITE)
    r = await pipeline.post("/api/events", json={"events": call(campaign["id"])})
    assert r.status_code == 200, r.text
    r = await pipeline.post(f"/api/campaigns/{campaign['id']}/dial-check", json={"timezone": "UTC"})
    assert r.status_code == 200, r.text
    r = await pipeline.get(f"/api/campaigns/{campaign['id']}")
    assert r.status_code == 403 and r.json()["details"]["required"] == ["campaigns:read"]


async def test_write_implies_read_and_admin_does_everything(api, make_api, campaign):
    writer = await mint(api, make_api, scopes.CAMPAIGNS_WRITE)
    assert (await writer.get(f"/api/campaigns/{campaign['id']}")).status_code == 200
    assert (await writer.put(f"/api/campaigns/{campaign['id']}", json={"name": "renamed"})).status_code == 200
    admin = await mint(api, make_api, scopes.ADMIN)
    assert (await admin.get(f"/api/campaigns/{campaign['id']}/analytics")).status_code == 200


async def test_only_admin_keys_mint_or_revoke_keys(api, make_api):
    writer = await mint(api, make_api, scopes.CAMPAIGNS_WRITE, scopes.WEBHOOKS_WRITE)
    r = await writer.post("/api/keys", json={"name": "escalate", "scopes": ["admin"]})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope" and "admin" in r.json()["error"]
    r = await writer.post("/api/keys", json={"name": "same", "scopes": ["campaigns:write"]})
    assert r.status_code == 403
    listed = (await api.get("/api/keys")).json()["keys"]
    assert len(listed) == 2  # the refused calls made nothing
    r = await writer.delete(f"/api/keys/{listed[0]['id']}")
    assert r.status_code == 403
    assert (await writer.get("/api/keys")).status_code == 403
    assert {tuple(k["scopes"]) for k in listed} == {("admin",), ("campaigns:write", "webhooks:write")}


@pytest.mark.parametrize(
    ("scopes_", "reason"),
    [([], "at least 1"), (["root"], "unknown scope 'root'"), (["admin", "admin"], "scopes repeat")],
)
async def test_minting_checks_the_scopes(api, scopes_, reason):
    r = await api.post("/api/keys", json={"name": "x", "scopes": scopes_})
    assert r.status_code == 400, r.text
    assert any(d["field"].startswith("scopes") and reason in d["reason"] for d in r.json()["details"]), r.json()
    r = await api.post("/api/keys", json={"name": "x"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "scopes"


async def test_the_cli_makes_keys_with_scopes(settings, make_api):
    env = {**os.environ, "DATABASE_URL": settings.database_dsn, "DATA_DIR": str(settings.data_dir)}
    org = f"org-{uuid.uuid4().hex[:8]}"

    def create(*flags: str) -> str:
        argv = [sys.executable, "-m", "campaigns.cli", "keys", "create", "--org", org, *flags]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
        return out.strip().splitlines()[-1]

    first = await make_api(key=await asyncio.to_thread(create))
    keys = (await first.get("/api/keys")).json()["keys"]
    assert [k["scopes"] for k in keys] == [["admin"]]
    reader = await make_api(key=await asyncio.to_thread(create, "--scope", "campaigns:read", "--scope", "events:write"))
    assert (await reader.get("/api/campaigns")).status_code == 200
    assert (await reader.get("/api/keys")).status_code == 403
    keys = (await first.get("/api/keys")).json()["keys"]
    assert [k["scopes"] for k in keys] == [["admin"], ["campaigns:read", "events:write"]]
