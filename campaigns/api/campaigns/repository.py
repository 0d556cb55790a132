"""Every SQL statement about campaigns: rows, configuration, idempotency keys, the audit
log and platform events. Functions take a connection (or pool) and plain values."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_SELECT = """
SELECT c.*, p.total_calls, p.completed_calls, p.qualified_leads, p.conversions, p.conversion_rate,
       p.average_call_duration, p.total_cost, p.cost_per_lead, p.revenue, p.cost_by_category,
       p.updated_at AS performance_updated_at
FROM campaigns c LEFT JOIN campaign_performance p ON p.campaign_id = c.id
"""

# Sort keys the list endpoint accepts, and the SQL each one means. Ties break on id so
# pages never overlap.
SORTS = {
    "createdAt": "c.created_at",
    "updatedAt": "c.updated_at",
    "name": "lower(c.name)",
    "status": "c.status",
    "conversionRate": "p.conversion_rate",
    "qualifiedLeads": "p.qualified_leads",
    "costPerLead": "p.cost_per_lead",
    "totalCost": "p.total_cost",
    "totalCalls": "p.total_calls",
    "revenue": "p.revenue",
}

# Performance filters the list endpoint accepts: keyword → SQL (the summary is kept fresh
# by the analytics refresher, so these cost an index range, not a computation).
PERFORMANCE_FILTERS = {
    "min_conversion_rate": "p.conversion_rate >= {}",
    "max_conversion_rate": "p.conversion_rate <= {}",
    "min_qualified_leads": "p.qualified_leads >= {}",
    "max_cost_per_lead": "p.cost_per_lead <= {}",
    "min_total_calls": "p.total_calls >= {}",
}


async def insert(
    conn: Conn,
    *,
    campaign_id: UUID,
    organization_id: UUID,
    user_id: str,
    name: str,
    description: str | None,
    type_: str,
    channel: str,
    timezone: str,
    config: dict[str, Any],
) -> asyncpg.Record:
    await conn.execute(
        """
        INSERT INTO campaigns (id, organization_id, user_id, name, description, status, type, channel,
                               timezone, config)
        VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9)
        """,
        campaign_id,
        organization_id,
        user_id,
        name,
        description,
        type_,
        channel,
        timezone,
        config,
    )
    await conn.execute(
        "INSERT INTO campaign_performance (campaign_id, organization_id) VALUES ($1, $2)",
        campaign_id,
        organization_id,
    )
    row = await get(conn, organization_id=organization_id, campaign_id=campaign_id)
    assert row is not None
    return row


async def get(conn: Conn, *, organization_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
    """A campaign of this organization, or None (another organization's is None too)."""
    return await conn.fetchrow(_SELECT + " WHERE c.id = $1 AND c.organization_id = $2", campaign_id, organization_id)


async def get_many(conn: Conn, campaign_ids: list[UUID]) -> list[asyncpg.Record]:
    """Campaigns by id, whatever their organization (for the cache, which checks it on read)."""
    return list(await conn.fetch(_SELECT + " WHERE c.id = ANY($1::uuid[])", campaign_ids))


async def get_any(conn: Conn, campaign_id: UUID) -> asyncpg.Record | None:
    """A campaign by id, whatever its organization (for the cache, which checks it on read)."""
    return await conn.fetchrow(_SELECT + " WHERE c.id = $1", campaign_id)


async def active_ids(conn: Conn, *, limit: int) -> list[UUID]:
    """The most recently changed active campaigns, the ones worth having in the cache."""
    rows = await conn.fetch("SELECT id FROM campaigns WHERE status = 'active' ORDER BY updated_at DESC LIMIT $1", limit)
    return [r["id"] for r in rows]


async def get_for_update(
    conn: asyncpg.Connection, *, organization_id: UUID, campaign_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM campaigns WHERE id = $1 AND organization_id = $2 FOR UPDATE", campaign_id, organization_id
    )


async def list_(
    conn: Conn,
    *,
    organization_id: UUID,
    statuses: list[str] | None,
    types: list[str] | None,
    channels: list[str] | None,
    search: str | None,
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
    performance: dict[str, float | None] | None = None,
) -> tuple[list[asyncpg.Record], int]:
    where = ["c.organization_id = $1"]
    args: list[Any] = [organization_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(f"${len(args)}"))

    if statuses:
        add("c.status = ANY({})", statuses)
    else:
        where.append("c.status <> 'archived'")
    if types:
        add("c.type = ANY({})", types)
    if channels:
        add("c.channel = ANY({})", channels)
    if search:
        add("c.name ILIKE {}", "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    for key, value in (performance or {}).items():
        if value is not None:
            add(PERFORMANCE_FILTERS[key], value)
    clause = " AND ".join(where)
    order = f"{SORTS[sort]} {'DESC' if descending else 'ASC'} NULLS LAST, c.id {'DESC' if descending else 'ASC'}"
    rows = await conn.fetch(f"{_SELECT} WHERE {clause} ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}", *args)
    total = await conn.fetchval(
        f"SELECT count(*) FROM campaigns c LEFT JOIN campaign_performance p ON p.campaign_id = c.id WHERE {clause}",
        *args,
    )
    return list(rows), total


async def update_fields(conn: asyncpg.Connection, *, campaign_id: UUID, fields: dict[str, Any]) -> None:
    """Write top-level columns (name, description, type, channel, timezone, config) and bump the version."""
    allowed = {"name", "description", "type", "channel", "timezone", "config"}
    assert set(fields) <= allowed, set(fields) - allowed
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE campaigns SET {sets}, version = version + 1, updated_at = now() WHERE id = $1",
        campaign_id,
        *fields.values(),
    )


# --- Lifecycle projection (written only by the campaign workflow's activity) ---------


async def apply_transition(
    conn: asyncpg.Connection,
    *,
    campaign_id: UUID,
    status: str,
    reason: str,
    at: datetime,
    started_at: datetime | None,
    ended_at: datetime | None,
) -> None:
    await conn.execute(
        """
        UPDATE campaigns SET status = $2, status_reason = $3, status_changed_at = $4,
               started_at = $5, ended_at = $6, updated_at = now()
        WHERE id = $1
        """,
        campaign_id,
        status,
        reason,
        at,
        started_at,
        ended_at,
    )


async def exists(conn: Conn, campaign_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM campaigns WHERE id = $1", campaign_id))


# --- Idempotency keys --------------------------------------------------------------


async def claim_idempotency_key(
    conn: asyncpg.Connection, *, organization_id: UUID, key: str, request_hash: bytes, campaign_id: UUID
) -> asyncpg.Record | None:
    """Claim `key` for a new campaign. If another request holds it, wait for that request's
    transaction and return its row (request_hash, campaign_id); None means claimed by us."""
    inserted = await conn.fetchval(
        """
        INSERT INTO idempotency_keys (organization_id, key, request_hash, campaign_id)
        VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
        """,
        organization_id,
        key,
        request_hash,
        campaign_id,
    )
    if inserted:
        return None
    return await conn.fetchrow(
        "SELECT request_hash, campaign_id FROM idempotency_keys WHERE organization_id = $1 AND key = $2",
        organization_id,
        key,
    )


# --- Audit log ----------------------------------------------------------------------


async def add_audit(
    conn: Conn,
    *,
    organization_id: UUID,
    campaign_id: UUID,
    actor: dict[str, Any],
    action: str,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
    dedupe_key: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Append an audit entry; False if one with this dedupe_key is already there."""
    done = await conn.fetchval(
        """
        INSERT INTO audit_log (organization_id, campaign_id, actor, action, changes, reason, dedupe_key, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()))
        ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1
        """,
        organization_id,
        campaign_id,
        actor,
        action,
        changes or {},
        reason,
        dedupe_key,
        at,
    )
    return bool(done)


async def list_audit(
    conn: Conn, *, organization_id: UUID, campaign_id: UUID, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        """
        SELECT * FROM audit_log WHERE campaign_id = $1 AND organization_id = $2
        ORDER BY id LIMIT $3 OFFSET $4
        """,
        campaign_id,
        organization_id,
        limit,
        offset,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE campaign_id = $1 AND organization_id = $2", campaign_id, organization_id
    )
    return list(rows), total


# --- Platform events ----------------------------------------------------------------


async def record_event(
    conn: asyncpg.Connection,
    *,
    event_id: UUID,
    organization_id: UUID,
    campaign_id: UUID | None,
    type_: str,
    data: dict[str, Any],
    occurred_at: datetime,
) -> int | None:
    """Record an event once (by id); a campaign's events get consecutive sequence numbers.
    Returns the sequence number (None for organization-level events)."""
    existing = await conn.fetchrow("SELECT seq FROM domain_events WHERE id = $1", event_id)
    if existing:
        return existing["seq"]
    seq = None
    if campaign_id is not None:
        seq = await conn.fetchval(
            "UPDATE campaigns SET last_event_seq = last_event_seq + 1 WHERE id = $1 RETURNING last_event_seq",
            campaign_id,
        )
    await conn.execute(
        """
        INSERT INTO domain_events (id, organization_id, campaign_id, seq, type, data, occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        event_id,
        organization_id,
        campaign_id,
        seq,
        type_,
        data,
        occurred_at,
    )
    return seq
