"""Integration templates as an attacker would write them: output paths that collide, and
expressions whose result doubles at every step. Refused when saved where that can be
known; otherwise rendering is bounded, runs off the event loop, and fails that delivery
alone (`render_failed`), never the dispatcher's batch nor another tenant's deliveries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from campaigns.campaigns import repository as campaigns_repo
from tests.support.campaigns import fields
from tests.support.receiver import Receiver
from tests.support.webhooks import wait_deliveries

TEN = "[@, @, @, @, @, @, @, @, @, @]"
# The review's expression: 163 characters, the body doubles at each of 18 steps.
DOUBLING = "@" + " | [@, @]" * 18


def integrations(campaign: dict) -> str:
    return f"/api/campaigns/{campaign['id']}/integrations"


def push(mapping: dict[str, str], url: str = "http://127.0.0.1:9/x", **config) -> dict:
    return {"type": "http_push", "name": "CRM", "url": url, "eventTypes": ["lead.created"],
            "config": {"fieldMapping": mapping, **config}}


# --- Saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"fieldMapping": {"a": "type", "a-x": "type", "a.b": "type"}}, "config.fieldMapping", "parent of 'a.b'"),
        ({"fieldMapping": {"x.y.z": "type", "x.y": "type"}}, "config.fieldMapping", "parent of 'x.y.z'"),
        ({"fieldMapping": {"a.b": "type", "a.b.c.d": "type", "a.c": "id"}}, "config.fieldMapping", "parent"),
        ({"fieldMapping": {"event.type": "type"}, "includeEvent": True}, "config", "includeEvent"),
        ({"fieldMapping": {"a": DOUBLING}}, "config.fieldMapping", "nested too deeply"),
        ({"fieldMapping": {"a": "data." + "x." * 150 + "y"}}, "config.fieldMapping", "longer than 300"),
        ({"fieldMapping": {"a": "[" * 20 + "@" + "]" * 20}}, "config.fieldMapping", "nested too deeply"),
    ],
)
async def test_templates_that_cannot_render_are_refused_when_saved(api: httpx.AsyncClient, campaign: dict, config,
                                                                   field, words):
    r = await api.post(integrations(campaign), json={**push({}), "config": config})
    assert r.status_code == 400, r.text
    assert words in fields(r).get(field, ""), fields(r)


async def test_slack_placeholders_are_capped_too(api: httpx.AsyncClient, campaign: dict):
    r = await api.post(integrations(campaign), json={
        "type": "slack", "name": "Ops", "url": "http://127.0.0.1:9/x", "eventTypes": ["lead.created"],
        "config": {"template": "lead {" + DOUBLING + "}"},
    })
    assert r.status_code == 400 and "nested too deeply" in fields(r)["config.template"], r.text


# --- Rendering: one delivery fails, nothing else -------------------------------------------------


async def _record_together(pool, *campaigns: dict) -> None:
    """One lead.created per campaign, in one transaction: the dispatcher takes them in one batch."""
    async with pool.acquire() as conn, conn.transaction():
        for c in campaigns:
            await campaigns_repo.record_platform_event(
                conn, event_id=uuid.uuid4(), organization_id=uuid.UUID(c["organizationId"]),
                campaign_id=uuid.UUID(c["id"]), type_="lead.created", data={"lead": {"email": "ana@example.com"}},
                occurred_at=datetime.now(UTC),
            )


async def test_a_saved_mapping_that_collides_fails_its_delivery_alone(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, campaign: dict, pool, receiver: Receiver
):
    """The review's case: output paths `a`, `a-x` and `a.b`, saved before the validator
    knew better (written here straight into the table). Rendering them used to raise inside
    the dispatcher's transaction, so the batch rolled back and was retried forever, and
    every tenant's deliveries stopped."""
    broken = (await api.post(integrations(campaign), json=push({"a": "type"}))).json()["integration"]
    await pool.execute("UPDATE webhook_endpoints SET config = $2 WHERE id = $1", uuid.UUID(broken["id"]),
                       {"fieldMapping": {"a": "type", "a-x": "type", "a.b": "type"}})
    own = await Receiver().start()
    try:
        r = await api.post(f"/api/campaigns/{campaign['id']}/webhooks", json={"url": own.url,
                                                                               "eventTypes": ["lead.created"]})
        assert r.status_code == 201, r.text
        other = (await other_api.post("/api/campaigns", json={"name": "B", "type": "outbound", "channel": "phone",
                                                               "flowId": "f"})).json()["campaign"]
        r = await other_api.post(f"/api/campaigns/{other['id']}/webhooks", json={"url": receiver.url,
                                                                                  "eventTypes": ["lead.created"]})
        assert r.status_code == 201, r.text
        await _record_together(pool, campaign, other)

        # Everyone else's deliveries go out, the same tenant's other endpoint's included.
        assert (await receiver.wait_for(1))[0].json()["campaignId"] == other["id"]
        assert (await own.wait_for(1))[0].json()["campaignId"] == campaign["id"]
        base = f"{integrations(campaign)}/{broken['id']}"
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        assert delivery["lastErrorClass"] == "render_failed" and delivery["attempts"] == 0
        assert "'a' cannot be both a value and the parent of 'a.b'" in delivery["lastError"]
        got = (await api.get(f"{base}/deliveries/{delivery['id']}")).json()["delivery"]
        assert got["payload"] is None and got["attemptLog"] == []
        # The batch committed: nothing is left in the outbox to retry.
        assert await pool.fetchval("SELECT count(*) FROM webhook_outbox") == 0
    finally:
        await own.stop()


async def test_a_body_that_grows_past_the_cap_fails_as_it_renders(api: httpx.AsyncClient, campaign: dict, pool,
                                                                  receiver: Receiver):
    """Within the expression caps, ×10 five times over: bounded here (≈ 25 MB unrendered,
    so a regression fails this test rather than the machine), yet far past the 256 KiB cap.
    Both `/test` (in the API) and an event (in the dispatcher) fail that delivery at once."""
    explosive = "@ | " + " | ".join([TEN] * 5)
    r = await api.post(integrations(campaign), json=push({"a": explosive}, url=receiver.url))
    assert r.status_code == 201, r.text
    base = f"{integrations(campaign)}/{r.json()['integration']['id']}"
    r = await api.post(f"{base}/test")
    assert r.status_code == 202, r.text
    tested = r.json()["delivery"]
    assert tested["status"] == "failed" and tested["lastErrorClass"] == "render_failed"
    assert "payload cap" in tested["lastError"]
    await _record_together(pool, campaign)
    failed = await wait_deliveries(api, base, count=2, status="failed")
    assert {d["lastErrorClass"] for d in failed} == {"render_failed"}
    await asyncio.sleep(0.3)
    assert receiver.requests == []


# --- The bound itself, under a memory limit --------------------------------------------------------

_BOUNDED = textwrap.dedent("""
    import resource, time
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a regression dies here, not the machine
    from campaigns.domain import integrations as I

    TEN = "[@,@,@,@,@,@,@,@,@,@]"
    event = {"type": "lead.created", "data": {"notes": "x" * 1000}}
    ten_times_ten = "@|" + "|".join([TEN] * 10)  # within the caps; 10^10 copies of the event
    cases = [
        ("http_push", {"fieldMapping": {"a": ten_times_ten}}),
        ("http_push", {"fieldMapping": {"a": "to_string(@|" + "|".join([TEN] * 9) + ")"}}),
        ("http_push", {"fieldMapping": {"a": "join('', [" + ", ".join(["to_string(" + TEN + " | " + TEN + ")"] * 4) + "])"}}),
        ("http_push", {"fieldMapping": {f"f{i}": TEN + " | " + TEN for i in range(100)}}),
        ("slack", {"template": "{" + ten_times_ten + "}"}),
        ("slack", {"template": " ".join(["{" + TEN + " | " + TEN + "}"] * 60)}),
        ("http_push", {"fieldMapping": {"a": "@ | " + " | ".join([TEN] * 4) + " | [][][] | [*].{a: type, b: type}"
                                               " | [*].[a, b, a, b] | [] | length(@)"}}),
    ]
    for kind, config in cases:
        I.CONFIG_MODELS[kind].model_validate(config)  # every one passes the checks when saved
        start = time.perf_counter()
        body, failure = I.render_body(kind, config, event, max_bytes=256 * 1024)
        elapsed = time.perf_counter() - start
        assert body == "null" and failure, (kind, body[:100])
        assert "payload cap" in failure or "too many steps" in failure, failure
        assert elapsed < 3, (failure, elapsed)
    print("bounded")
""")


def test_rendering_is_bounded_in_size_and_steps_under_a_memory_limit():
    result = subprocess.run([sys.executable, "-c", _BOUNDED], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "bounded", result.stderr[-3000:]
