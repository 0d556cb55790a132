"""Every SQL statement about campaign widgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_BY_KEY = """
SELECT w.*, c.name AS campaign_name, c.status AS campaign_status, c.config AS campaign_config
FROM campaign_widgets w JOIN campaigns c ON c.id = w.campaign_id
"""


async def get_or_create(
    conn: Conn, *, campaign_id: UUID, organization_id: UUID, settings: dict[str, Any], publishable_key: str
) -> asyncpg.Record:
    """The campaign's widget; made with these defaults and key the first time it is asked for."""
    row = await conn.fetchrow("SELECT * FROM campaign_widgets WHERE campaign_id = $1", campaign_id)
    if row is not None:
        return row
    row = await conn.fetchrow(
        """
        INSERT INTO campaign_widgets (campaign_id, organization_id, settings, publishable_key)
        VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id) DO NOTHING RETURNING *
        """,
        campaign_id,
        organization_id,
        settings,
        publishable_key,
    )
    # None: a concurrent first read made it.
    return row or await conn.fetchrow("SELECT * FROM campaign_widgets WHERE campaign_id = $1", campaign_id)


async def get_for_update(conn: asyncpg.Connection, campaign_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM campaign_widgets WHERE campaign_id = $1 FOR UPDATE", campaign_id)


async def update_settings(conn: Conn, *, campaign_id: UUID, settings: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        UPDATE campaign_widgets SET settings = $2, version = version + 1, updated_at = now()
        WHERE campaign_id = $1 RETURNING *
        """,
        campaign_id,
        settings,
    )


async def set_key(conn: Conn, *, campaign_id: UUID, publishable_key: str) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        UPDATE campaign_widgets SET publishable_key = $2, version = version + 1, updated_at = now()
        WHERE campaign_id = $1 RETURNING *
        """,
        campaign_id,
        publishable_key,
    )


async def by_key(conn: Conn, publishable_key: str) -> asyncpg.Record | None:
    """A widget by its publishable key, with what the public endpoints need of its campaign."""
    return await conn.fetchrow(_BY_KEY + " WHERE w.publishable_key = $1", publishable_key)


async def analytics(conn: Conn, campaign_id: UUID, since: datetime | None) -> asyncpg.Record:
    """Widget figures from the analytics rollups (15-minute buckets) and, for what needs
    visitors, the events: conversions of visitors who clicked, and distinct visitors."""
    return await conn.fetchrow(
        """
        WITH r AS (
            SELECT coalesce(sum(widget_impressions), 0) AS impressions, coalesce(sum(widget_clicks), 0) AS clicks,
                   coalesce(sum(widget_displays), 0) AS displays, coalesce(sum(display_ms_sum), 0) AS display_ms
            FROM analytics_rollups WHERE campaign_id = $1 AND ($2::timestamptz IS NULL OR bucket >= $2)
        ), clickers AS (
            SELECT DISTINCT subject_id FROM analytics_events
            WHERE campaign_id = $1 AND type = 'widget.click' AND subject_id IS NOT NULL
              AND ($2::timestamptz IS NULL OR occurred_at >= $2)
        )
        SELECT r.*,
               (SELECT count(*) FROM analytics_events e JOIN clickers USING (subject_id)
                WHERE e.campaign_id = $1 AND e.type = 'conversion'
                  AND ($2::timestamptz IS NULL OR e.occurred_at >= $2)) AS conversions,
               (SELECT count(DISTINCT subject_id) FROM analytics_events
                WHERE campaign_id = $1 AND type = 'widget.impression' AND subject_id IS NOT NULL
                  AND ($2::timestamptz IS NULL OR occurred_at >= $2)) AS visitors
        FROM r
        """,
        campaign_id,
        since,
    )
