"""The simulator's one query: which campaigns are taking calls now."""

from __future__ import annotations

import asyncpg

from campaigns.simulator.traffic import SimCampaign


async def taking_calls(conn: asyncpg.Pool | asyncpg.Connection, *, limit: int = 10_000) -> list[SimCampaign]:
    """Active campaigns whose calling window is open. A campaign without windows may call
    at any hour; one with windows is left out until the workflow reports its window state."""
    rows = await conn.fetch(
        """
        SELECT id, organization_id, channel, type FROM campaigns
        WHERE status = 'active' AND coalesce(config->'schedule'->'windows', '{}'::jsonb) = '{}'::jsonb
        ORDER BY id LIMIT $1
        """,
        limit,
    )
    return [SimCampaign(r["id"], r["organization_id"], r["channel"], r["type"]) for r in rows]
