"""An organization holds a bounded number of active keys (minting more multiplied its
per-key rate limit)."""

from __future__ import annotations

import httpx

from campaigns.settings import Settings
from tests.support.servers import another_app


async def test_keys_per_organization_are_capped(settings: Settings, worker, api: httpx.AsyncClient):
    async with another_app(settings.model_copy(update={"max_api_keys_per_organization": 3})) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {api.key}"}) as client:
            made = [(await client.post("/api/keys", json={"name": f"k{i}", "scopes": ["events:write"]})) for i in
                    range(2)]
            assert [r.status_code for r in made] == [201, 201]
            r = await client.post("/api/keys", json={"name": "one too many", "scopes": ["events:write"]})
            assert r.status_code == 409 and r.json()["code"] == "key_limit_reached", r.text
            assert r.json()["details"] == {"limit": 3} and "revoke" in r.json()["error"]
            assert len((await client.get("/api/keys")).json()["keys"]) == 3
            # Revoked keys do not count.
            assert (await client.delete(f"/api/keys/{made[0].json()['key']['id']}")).status_code == 200
            r = await client.post("/api/keys", json={"name": "replacement", "scopes": ["events:write"]})
            assert r.status_code == 201, r.text
