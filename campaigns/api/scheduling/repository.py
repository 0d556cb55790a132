"""Every SQL statement about scheduling: what the preview and dial check read, and the
calling-window projection the campaign workflow writes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def get(conn: Conn, *, organization_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
    """What scheduling needs of a campaign of this organization (None for another's)."""
    return await conn.fetchrow(
        """
        SELECT id, status, type, timezone, config, window_open, next_window_change
        FROM campaigns WHERE id = $1 AND organization_id = $2
        """,
        campaign_id,
        organization_id,
    )


async def apply_window(
    conn: Conn, *, campaign_id: UUID, open_: bool, next_change: datetime | None, at: datetime
) -> bool:
    """Write the projection unless a newer write is already there. True if written."""
    done = await conn.fetchval(
        """
        UPDATE campaigns SET window_open = $2, next_window_change = $3, window_updated_at = $4
        WHERE id = $1 AND (window_updated_at IS NULL OR window_updated_at <= $4)
        RETURNING 1
        """,
        campaign_id,
        open_,
        next_change,
        at,
    )
    return bool(done)
