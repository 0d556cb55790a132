"""Every SQL statement about campaigns: rows, configuration, idempotency keys, the audit
log, platform events, and the hand-over to workflows (the configuration outbox and status
requests). Functions take a connection (or pool) and plain values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from campaigns.db import Conn, Connection

# A campaign's row: as read here, or as the cache keeps it (a dict of the same columns).
Row: TypeAlias = asyncpg.Record | Mapping[str, Any]

# A campaign with its performance summary and its oldest pending status request (the change
# that is accepted but not applied yet), if any.
_SELECT = """
SELECT c.*, p.total_calls, p.completed_calls, p.qualified_leads, p.conversions, p.conversion_rate,
       p.average_call_duration, p.total_cost, p.cost_per_lead, p.revenue, p.cost_by_category,
       p.updated_at AS performance_updated_at,
       q.id AS pending_request_id, q.target AS pending_target, q.reason AS pending_reason,
       q.requested_at AS pending_requested_at
FROM campaigns c LEFT JOIN campaign_performance p ON p.campaign_id = c.id
LEFT JOIN LATERAL (
    SELECT r.id, r.target, r.reason, r.requested_at FROM status_requests r
    WHERE r.campaign_id = c.id AND r.state = 'pending' ORDER BY r.requested_at, r.id LIMIT 1
) q ON true
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


# Columns of _SELECT that a campaign just created has no values for yet.
_NOT_YET = (
    "total_calls completed_calls qualified_leads conversions conversion_rate average_call_duration total_cost "
    "cost_per_lead revenue cost_by_category performance_updated_at pending_request_id pending_target "
    "pending_reason pending_requested_at"
).split()


async def create_draft(
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
    actor: dict[str, Any],
    audit_changes: dict[str, Any],
    event_id: UUID,
    event_data: dict[str, Any],
) -> dict[str, Any]:
    """A new draft with its performance summary, its `created` audit entry and its
    `campaign.created` event (sequence 1): one statement, one round trip, all or nothing.
    Returns its row as `get` would."""
    row = await conn.fetchrow(
        """
        WITH c AS (
            INSERT INTO campaigns (id, organization_id, user_id, name, description, status, type, channel,
                                   timezone, config, last_event_seq)
            VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, 1)
            RETURNING *
        ), p AS (
            INSERT INTO campaign_performance (campaign_id, organization_id) SELECT id, organization_id FROM c
        ), a AS (
            INSERT INTO audit_log (organization_id, campaign_id, actor, action, changes, created_at)
            SELECT organization_id, id, $10, 'created', $11, created_at FROM c
        ), e AS (
            INSERT INTO platform_events (id, organization_id, campaign_id, seq, type, data, occurred_at)
            SELECT $12, organization_id, id, 1, 'campaign.created', $13, created_at FROM c
        )
        SELECT * FROM c
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
        actor,
        audit_changes,
        event_id,
        event_data,
    )
    assert row is not None
    return {**dict(row), **dict.fromkeys(_NOT_YET)}


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


async def get_for_update(conn: Connection, *, organization_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
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


async def update_fields(conn: Connection, *, campaign_id: UUID, fields: dict[str, Any]) -> int:
    """Write top-level columns (name, description, type, channel, timezone, config) and bump
    the version; returns the new version."""
    allowed = {"name", "description", "type", "channel", "timezone", "config"}
    assert set(fields) <= allowed, set(fields) - allowed
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(fields, start=2))
    version: int = await conn.fetchval(
        f"UPDATE campaigns SET {sets}, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
        campaign_id,
        *fields.values(),
    )
    return version


# --- Lifecycle projection (written only by the campaign workflow's activity) ---------


async def apply_transition(
    conn: Connection,
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


# --- The hand-over to the campaign's workflow -------------------------------------


async def request_workflow(conn: Connection, *, organization_id: UUID, campaign_id: UUID) -> None:
    """Note that the campaign's workflow may start from now on (its first lifecycle request).
    Only the first time writes, and holds the row until the caller's transaction ends, so a
    configuration change either commits before (and the workflow starts with it) or sees
    this and goes through the outbox."""
    await conn.execute(
        """
        UPDATE campaigns SET workflow_requested_at = now()
        WHERE id = $1 AND organization_id = $2 AND workflow_requested_at IS NULL
        """,
        campaign_id,
        organization_id,
    )


async def enqueue_configuration(conn: Connection, *, campaign_id: UUID, version: int, retry_in_s: float) -> None:
    """Record (in the configuration's transaction) that the workflow must learn `version`;
    the relay takes it after `retry_in_s` unless it was delivered by then."""
    await conn.execute(
        """
        INSERT INTO campaign_config_outbox (campaign_id, version, next_attempt_at)
        VALUES ($1, $2, now() + make_interval(secs => $3))
        ON CONFLICT (campaign_id) DO UPDATE SET version = greatest(campaign_config_outbox.version, EXCLUDED.version),
            next_attempt_at = least(campaign_config_outbox.next_attempt_at, EXCLUDED.next_attempt_at)
        """,
        campaign_id,
        version,
        retry_in_s,
    )


async def configuration_delivered(conn: Conn, *, campaign_id: UUID, version: int) -> None:
    """The workflow accepted a signal carrying `version`: older entries are done."""
    await conn.execute(
        "DELETE FROM campaign_config_outbox WHERE campaign_id = $1 AND version <= $2", campaign_id, version
    )


async def claim_configurations(conn: Conn, *, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Due outbox entries, leased for `lease_s` (another relay skips them meanwhile)."""
    return list(
        await conn.fetch(
            """
            UPDATE campaign_config_outbox o SET attempts = o.attempts + 1,
                   next_attempt_at = now() + make_interval(secs => $2)
            WHERE o.campaign_id IN (
                SELECT campaign_id FROM campaign_config_outbox WHERE next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            RETURNING o.campaign_id, o.version, o.attempts
            """,
            limit,
            lease_s,
        )
    )


async def configuration_failed(conn: Conn, *, campaign_id: UUID, error: str, retry_in_s: float) -> None:
    await conn.execute(
        """
        UPDATE campaign_config_outbox SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
        WHERE campaign_id = $1
        """,
        campaign_id,
        error[:1000],
        retry_in_s,
    )


async def insert_status_request(
    conn: Connection,
    *,
    request_id: UUID,
    organization_id: UUID,
    campaign_id: UUID,
    idempotency_key: str | None,
    request_hash: bytes,
    target: str,
    reason: str | None,
    actor: dict[str, Any],
    retry_in_s: float,
) -> asyncpg.Record | None:
    """Record a status request (pending). With an idempotency key another request holds,
    wait for that request's transaction and return its row instead; None means recorded."""
    inserted = await conn.fetchval(
        """
        INSERT INTO status_requests (id, organization_id, campaign_id, idempotency_key, request_hash, target,
                                     reason, actor, next_attempt_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
        ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING 1
        """,
        request_id,
        organization_id,
        campaign_id,
        idempotency_key,
        request_hash,
        target,
        reason,
        actor,
        retry_in_s,
    )
    if inserted:
        return None
    return await conn.fetchrow(
        "SELECT * FROM status_requests WHERE organization_id = $1 AND idempotency_key = $2",
        organization_id,
        idempotency_key,
    )


async def get_status_request(conn: Conn, request_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM status_requests WHERE id = $1", request_id)


async def mark_request_applied(conn: Conn, *, request_id: UUID, status: str, at: datetime) -> bool:
    """The workflow applied the request (written in the transition's own transaction);
    False if it was resolved already."""
    done = await conn.fetchval(
        """
        UPDATE status_requests SET state = 'applied', outcome = $2, resolved_at = $3
        WHERE id = $1 AND state = 'pending' RETURNING 1
        """,
        request_id,
        {"status": status},
        at,
    )
    return bool(done)


async def mark_request_rejected(conn: Conn, *, request_id: UUID, outcome: dict[str, Any]) -> bool:
    """The workflow (or a check before it) refused the request; False if it was resolved already."""
    done = await conn.fetchval(
        """
        UPDATE status_requests SET state = 'rejected', outcome = $2, resolved_at = now()
        WHERE id = $1 AND state = 'pending' RETURNING 1
        """,
        request_id,
        outcome,
    )
    return bool(done)


async def forget_status_request(conn: Conn, *, request_id: UUID) -> None:
    """Drop a pending request the workflow refused for now (a service it needs was down):
    nothing was applied, and a retry with the same Idempotency-Key asks again."""
    await conn.execute("DELETE FROM status_requests WHERE id = $1 AND state = 'pending'", request_id)


async def older_pending(conn: Conn, *, request_id: UUID) -> list[asyncpg.Record]:
    """The pending requests of the same campaign made before this one, oldest first."""
    return list(
        await conn.fetch(
            """
            SELECT o.* FROM status_requests me JOIN status_requests o ON o.campaign_id = me.campaign_id
            WHERE me.id = $1 AND o.state = 'pending' AND (o.requested_at, o.id) < (me.requested_at, me.id)
            ORDER BY o.requested_at, o.id
            """,
            request_id,
        )
    )


async def claim_status_requests(conn: Conn, *, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Due pending requests, each the oldest pending one of its campaign (so a campaign's
    requests reach its workflow in the order they were made), leased for `lease_s`."""
    return list(
        await conn.fetch(
            """
            UPDATE status_requests r SET attempts = r.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
            WHERE r.id IN (
                SELECT s.id FROM status_requests s
                WHERE s.state = 'pending' AND s.next_attempt_at <= now()
                  AND NOT EXISTS (
                      SELECT 1 FROM status_requests o WHERE o.campaign_id = s.campaign_id AND o.state = 'pending'
                        AND (o.requested_at, o.id) < (s.requested_at, s.id))
                ORDER BY s.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            RETURNING r.*
            """,
            limit,
            lease_s,
        )
    )


async def status_request_failed(conn: Conn, *, request_id: UUID, error: str, retry_in_s: float) -> None:
    await conn.execute(
        """
        UPDATE status_requests SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
        WHERE id = $1 AND state = 'pending'
        """,
        request_id,
        error[:1000],
        retry_in_s,
    )


async def prune_status_requests(conn: Conn, *, older_than_s: float, limit: int) -> int:
    """Forget resolved requests (and so their idempotency keys) older than `older_than_s`."""
    result = await conn.execute(
        """
        DELETE FROM status_requests WHERE id IN (
            SELECT id FROM status_requests WHERE state <> 'pending'
              AND resolved_at < now() - make_interval(secs => $1) LIMIT $2)
        """,
        older_than_s,
        limit,
    )
    return int(result.split()[-1])


# --- Idempotency keys --------------------------------------------------------------


async def claim_idempotency_key(
    conn: Connection, *, organization_id: UUID, key: str, request_hash: bytes, campaign_id: UUID
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


async def record_platform_event(
    conn: Connection,
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
    existing = await conn.fetchrow("SELECT seq FROM platform_events WHERE id = $1", event_id)
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
        INSERT INTO platform_events (id, organization_id, campaign_id, seq, type, data, occurred_at)
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


async def known_platform_events(conn: Conn, event_ids: list[UUID]) -> set[UUID]:
    """Which of these platform events are recorded already."""
    return {r[0] for r in await conn.fetch("SELECT id FROM platform_events WHERE id = ANY($1::uuid[])", event_ids)}


async def status_of(conn: Conn, campaign_id: UUID) -> str | None:
    return await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)


async def count_by_status(conn: Conn) -> dict[str, int]:
    """Campaigns by status, over every organization (for the metrics endpoint)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM campaigns GROUP BY status")
    return {r["status"]: r["n"] for r in rows}
