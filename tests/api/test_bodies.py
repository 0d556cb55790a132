"""Request bodies: refused past their route's size without being buffered, and JSON nested
too deep refused before anything recursive reads it."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from campaigns.domain import jsonbody
from tests.support.analytics import event

MIB = 1024 * 1024


async def asgi_post(app, path: str, chunks: int, chunk: bytes, *, headers: list[tuple[bytes, bytes]] = ()):
    """POST to the app a body of `chunks` pieces, handed over only as the app asks for them;
    return (status, json body, pieces the app pulled)."""
    pulled = 0
    sent: dict = {}
    body = b""

    async def receive():
        nonlocal pulled
        if pulled >= chunks:
            await asyncio.sleep(3600)  # the client has nothing more to say
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message):
        nonlocal body
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "server": ("api.test", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"api.test"), (b"content-type", b"application/json"), *headers],
    }
    await asyncio.wait_for(app(scope, receive, send), 30)
    return sent["status"], json.loads(body), pulled


async def test_a_huge_declared_body_is_refused_before_a_byte_is_read(app):
    """The 200 MB anonymous widget POST: answered from Content-Length alone."""
    status, body, pulled = await asgi_post(
        app, "/embed/events", 200, b"x" * MIB, headers=[(b"content-length", str(200 * MIB).encode())]
    )
    assert status == 413 and body["code"] == "payload_too_large" and pulled == 0
    assert "65536 bytes" in body["error"]


@pytest.mark.parametrize(
    ("path", "limit"), [("/embed/events", 64 * 1024), ("/api/campaigns", MIB), ("/api/events", 16 * MIB)]
)
async def test_a_chunked_body_is_cut_off_as_it_passes_the_limit(app, api, path, limit):
    """No Content-Length: the body is counted as it streams and refused the moment it is too
    large, having pulled only as much as the limit (a 200 MB stream reads a sliver of it)."""
    piece = 16 * 1024
    key = [(b"authorization", f"Bearer {api.key}".encode())]
    status, body, pulled = await asgi_post(app, path, 200 * MIB // piece, b" " * piece, headers=key)
    assert status == 413 and body["code"] == "payload_too_large", body
    assert pulled == limit // piece + 1


async def test_the_events_endpoint_takes_bodies_past_the_default_limit(api: httpx.AsyncClient, campaign: dict):
    events = [event(campaign["id"], "widget.impression", subjectId=f"{n:0>120}") for n in range(5000)]
    body = json.dumps({"events": events}).encode()
    assert len(body) > 1.1 * MIB
    r = await api.post("/api/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 5000, r.text[:300]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_deep_json_to_the_anonymous_widget_endpoint_is_a_400(anonymous: httpx.AsyncClient):
    """1,000 levels used to be a RecursionError (500) before the key was even looked at."""
    for doc in (nested(1000), b'{"key": "qcw_pk_x", "events": [' + nested(100) + b"]}"):
        r = await anonymous.post("/embed/events", content=doc, headers={"content-type": "text/plain"})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_json" and "levels deep" in r.json()["error"]


@pytest.mark.parametrize("depth", [40, 300, 1000, 5000])
async def test_deep_json_to_the_api_is_a_400_naming_the_body(api: httpx.AsyncClient, campaign: dict, depth: int):
    deep = json.loads(nested(min(depth, 900)))  # as deep as json itself will build
    attempts = [
        ("POST", "/api/campaigns", nested(depth)),
        # Read into a model by FastAPI; the nesting hides in a free-form field.
        ("POST", "/api/campaigns", json.dumps(
            {"name": "x", "type": "outbound", "channel": "phone", "targetAudience": {"customAttributes": {"a": deep}}}
        ).encode() if depth < 1000 else nested(depth)),
        # Read by the route itself (merge patches).
        ("PUT", f"/api/campaigns/{campaign['id']}", nested(depth)),
        ("PUT", f"/api/campaigns/{campaign['id']}/configuration", b'{"goals": ' + nested(depth) + b"}"),
        ("POST", f"/api/campaigns/{campaign['id']}/ab-test", nested(depth)),
        ("POST", f"/api/campaigns/{campaign['id']}/integrations", json.dumps(
            {"type": "http_push", "name": "n", "url": "https://example.com/x", "eventTypes": ["*"],
             "config": {"fieldMapping": {"a": "b"}, "x": deep}}
        ).encode() if depth < 1000 else nested(depth)),
        ("POST", "/api/events", nested(depth)),
    ]
    for method, path, body in attempts:
        r = await api.request(method, path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, (method, path, r.status_code, r.text[:300])
    # And nothing changed.
    mine = (await api.get(f"/api/campaigns/{campaign['id']}")).json()["campaign"]
    assert mine["version"] == campaign["version"]
    assert (await api.get("/api/campaigns")).json()["total"] == 1


def test_the_parser_measures_depth_without_recursing():
    assert jsonbody.loads(b'{"a": [1, {"b": []}]}', max_depth=4) == {"a": [1, {"b": []}]}
    with pytest.raises(jsonbody.InvalidJson, match="nested more than 3 levels"):
        jsonbody.loads(b'{"a": [1, {"b": []}]}', max_depth=3)
    with pytest.raises(jsonbody.InvalidJson, match="nested more than 32"):
        jsonbody.loads(nested(100_000))
    with pytest.raises(jsonbody.InvalidJson, match="not valid JSON"):
        jsonbody.loads(b'{"a": NaN}')
    assert not jsonbody.depth_exceeds([[1], {"a": "[[[[[["}], 2)
