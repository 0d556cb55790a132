"""The API's limits, attacked through the API: keys minted to multiply the per-key limit, and
floods of bad keys that must not reach Postgres at full rate."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid

import httpx
import pytest

from campaigns.auth.service import KEY_PREFIX, create_key, hash_key


@contextlib.contextmanager
def limits(app, **changes):
    """The app's settings with `changes`, for the block."""
    before = app.state.settings
    app.state.settings = before.model_copy(update=changes)
    try:
        yield
    finally:
        app.state.settings = before


def client_from(app, address: str, key: str | None = None) -> httpx.AsyncClient:
    """A client whose requests come from `address`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers, timeout=30)


async def start_of_a_second() -> None:
    await asyncio.sleep(1 - time.time() % 1)


def address() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


async def test_minting_keys_does_not_multiply_the_limit(app, make_api, pool):
    org = f"org-{uuid.uuid4().hex[:8]}"
    clients = [await make_api(org) for _ in range(4)]
    for c in clients:  # known to the process from now on: the burst below is quick
        assert (await c.get("/api/campaigns")).status_code == 200
    with limits(app, rate_limit_per_second=3, rate_limit_org_per_second=5):
        await start_of_a_second()  # so that the burst falls in one window
        answers = await asyncio.gather(*(c.get("/api/campaigns") for c in clients for _ in range(3)))
        statuses = [r.status_code for r in answers]
        # Each key alone stays within 3 a second; all four together pass the organization's 5.
        assert statuses.count(200) <= 5 and statuses.count(429) >= 7, statuses
        limited = next(r for r in answers if r.status_code == 429)
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        other = await make_api()  # another organization is not affected
        assert (await other.get("/api/campaigns")).status_code == 200


async def test_a_flood_of_bad_keys_from_one_address_is_refused_before_any_lookup(app, make_api, pool):
    attacker = address()
    with limits(app, auth_failures_per_minute=5):
        async with client_from(app, attacker) as client:
            statuses = []
            for _ in range(12):
                bad = KEY_PREFIX + secrets.token_urlsafe(32)  # a new key each time: no cache helps
                statuses.append((await client.get("/api/campaigns", headers={"Authorization": f"Bearer {bad}"})))
            assert [r.status_code for r in statuses[:5]] == [401] * 5
            assert {r.status_code for r in statuses[5:]} == {429}
            assert statuses[-1].json()["code"] == "too_many_failed_authentications"
            assert 1 <= int(statuses[-1].headers["retry-after"]) <= 60
            # A valid key this process has not seen yet is refused too: nothing is looked up now.
            fresh, _ = await create_key(pool, organization=f"org-{uuid.uuid4().hex[:8]}")
            r = await client.get("/api/campaigns", headers={"Authorization": f"Bearer {fresh}"})
            assert r.status_code == 429
        # Other addresses are not affected, and keys the process knows keep working from anywhere.
        async with client_from(app, address(), fresh) as elsewhere:
            assert (await elsewhere.get("/api/campaigns")).status_code == 200
        async with client_from(app, attacker, fresh) as same_address:
            assert (await same_address.get("/api/campaigns")).status_code == 200


async def test_a_revoked_key_used_from_many_addresses_is_throttled_by_its_prefix(app, api, make_api):
    created = (await api.post("/api/keys", json={"name": "leaked", "scopes": ["campaigns:read"]})).json()["key"]
    assert (await api.delete(f"/api/keys/{created['id']}")).status_code == 200
    with limits(app, auth_failures_per_minute=4):
        statuses = []
        for _ in range(10):
            async with client_from(app, address(), created["key"]) as bot:
                statuses.append((await bot.get("/api/campaigns")).status_code)
        assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}, statuses
        other = await make_api()  # another key's prefix is not affected
        assert (await other.get("/api/campaigns")).status_code == 200


async def test_a_repeated_unknown_key_is_not_looked_up_again(app, pool, campaign):
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with client_from(app, address(), key) as client:
        assert (await client.get("/api/campaigns")).status_code == 401
        # Were the key looked up again, it would now be found (a key cannot become valid in
        # life: it is random; here its hash is written behind the platform's back).
        org = await pool.fetchval("SELECT organization_id FROM campaigns WHERE id = $1", uuid.UUID(campaign["id"]))
        await pool.execute(
            "INSERT INTO api_keys (id, organization_id, name, prefix, key_hash, scopes)"
            " VALUES ($1, $2, 'x', $3, $4, ARRAY['campaigns:read'])",
            uuid.uuid4(), org, key[:10], hash_key(key),
        )
        assert (await client.get("/api/campaigns")).status_code == 401


@pytest.mark.parametrize("key", [b"not-a-key", b"qck_short", ("qck_" + "\u00e9" * 40).encode("latin-1")])
async def test_malformed_keys_are_refused_without_a_lookup(app, key):
    async with client_from(app, address()) as client:
        r = await client.get("/api/campaigns", headers={"Authorization": b"Bearer " + key})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
