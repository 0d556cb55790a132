"""The simulator's one query: which campaigns are taking calls now, with their running A/B test."""

from __future__ import annotations

from campaigns.db import Conn
from campaigns.simulator.traffic import SimCampaign


async def taking_calls(conn: Conn, *, limit: int = 10_000) -> list[SimCampaign]:
    """Active campaigns whose calling window is open. A campaign without windows may call
    at any hour; one with windows is left out until the workflow reports its window state."""
    rows = await conn.fetch(
        """
        SELECT c.id, c.organization_id, c.channel, c.type, t.id AS ab_test_id
        FROM campaigns c LEFT JOIN ab_tests t ON t.campaign_id = c.id AND t.status = 'running'
        WHERE c.status = 'active' AND coalesce(c.config->'schedule'->'windows', '{}'::jsonb) = '{}'::jsonb
        ORDER BY c.id LIMIT $1
        """,
        limit,
    )
    return [SimCampaign(r["id"], r["organization_id"], r["channel"], r["type"], r["ab_test_id"]) for r in rows]
