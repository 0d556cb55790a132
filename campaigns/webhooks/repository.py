"""Every SQL statement about webhook endpoints (and integrations), deliveries, attempts and
the event outbox. Functions take a connection (or pool) and plain values."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from campaigns.db import Conn, Connection, one

# --- Endpoints -------------------------------------------------------------------------

_ENDPOINT_COLUMNS = {
    "name",
    "description",
    "url",
    "event_types",
    "headers",
    "config",
    "retry_config",
    "max_concurrency",
    "enabled",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "credentials_encrypted",
}


async def insert_endpoint(
    conn: Conn,
    *,
    endpoint_id: UUID,
    organization_id: UUID,
    campaign_id: UUID | None,
    kind: str,
    url: str,
    event_types: list[str],
    secret: str,
    name: str | None = None,
    description: str | None = None,
    headers: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    retry_config: dict[str, Any] | None = None,
    max_concurrency: int = 10,
    enabled: bool = True,
) -> asyncpg.Record:
    return one(
        await conn.fetchrow(
            """
        INSERT INTO webhook_endpoints (id, organization_id, campaign_id, kind, name, description, url, event_types,
                                       headers, config, retry_config, max_concurrency, enabled, disabled_reason,
                                       disabled_at, secret, credentials_encrypted)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                CASE WHEN $13 THEN NULL ELSE 'manual' END, CASE WHEN $13 THEN NULL ELSE now() END, $14, true)
        RETURNING *
        """,
            endpoint_id,
            organization_id,
            campaign_id,
            kind,
            name,
            description,
            url,
            event_types,
            headers or {},
            config or {},
            retry_config or {},
            max_concurrency,
            enabled,
            secret,
        )
    )


def _scope(organization_id: UUID, campaign_id: UUID | None, kinds: tuple[str, ...], first: int = 1) -> tuple[str, list]:
    clause = f"organization_id = ${first} AND kind = ANY(${first + 2}) AND "
    clause += f"campaign_id = ${first + 1}" if campaign_id else f"(campaign_id IS NULL AND ${first + 1}::uuid IS NULL)"
    return clause, [organization_id, campaign_id, list(kinds)]


async def get_endpoint(
    conn: Conn,
    *,
    organization_id: UUID,
    campaign_id: UUID | None,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    for_update: bool = False,
) -> asyncpg.Record | None:
    """An endpoint in this scope (the campaign's, or the organization-wide ones), or None."""
    clause, args = _scope(organization_id, campaign_id, kinds, first=2)
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM webhook_endpoints WHERE id = $1 AND {clause}{lock}", endpoint_id, *args)


async def list_endpoints(
    conn: Conn, *, organization_id: UUID, campaign_id: UUID | None, kinds: tuple[str, ...], limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    clause, args = _scope(organization_id, campaign_id, kinds)
    rows = await conn.fetch(
        f"SELECT * FROM webhook_endpoints WHERE {clause} ORDER BY created_at, id "
        f"LIMIT {int(limit)} OFFSET {int(offset)}",
        *args,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM webhook_endpoints WHERE {clause}", *args)
    return list(rows), total


async def update_endpoint(conn: Conn, *, endpoint_id: UUID, fields: dict[str, Any]) -> asyncpg.Record:
    assert set(fields) <= _ENDPOINT_COLUMNS, set(fields) - _ENDPOINT_COLUMNS
    sets = "".join(f"{col} = ${i}, " for i, col in enumerate(fields, start=2))
    return one(
        await conn.fetchrow(
            f"UPDATE webhook_endpoints SET {sets}version = version + 1, updated_at = now() WHERE id = $1 RETURNING *",
            endpoint_id,
            *fields.values(),
        )
    )


async def delete_endpoint(conn: Conn, endpoint_id: UUID) -> None:
    await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)


async def rotate_secret(
    conn: Conn, *, endpoint_id: UUID, secret: str, previous: str | None, previous_expires_at: datetime | None
) -> asyncpg.Record:
    return one(
        await conn.fetchrow(
            """
        UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_secret_expires_at = $4,
               version = version + 1, updated_at = now()
        WHERE id = $1 RETURNING *
        """,
            endpoint_id,
            secret,
            previous,
            previous_expires_at,
        )
    )


async def unsealed_endpoints(conn: Connection, limit: int) -> list[asyncpg.Record]:
    """Endpoints whose URL and header values are still stored in clear (written before they
    were encrypted), locked until the caller's transaction ends; others skip them."""
    return await conn.fetch(
        """
        SELECT id, url, headers, credentials_encrypted FROM webhook_endpoints WHERE NOT credentials_encrypted
        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


async def store_sealed(conn: Conn, *, endpoint_id: UUID, url: str, headers: dict[str, str]) -> None:
    """Replace an endpoint's clear URL and header values with their encrypted form (once)."""
    await conn.execute(
        """
        UPDATE webhook_endpoints SET url = $2, headers = $3, credentials_encrypted = true
        WHERE id = $1 AND NOT credentials_encrypted
        """,
        endpoint_id,
        url,
        headers,
    )


# --- Endpoint health (written by the delivery activity) ---------------------------------


async def record_failure(conn: Conn, endpoint_id: UUID) -> datetime | None:
    """Note a failure; return since when the endpoint has been failing."""
    return await conn.fetchval(
        """
        UPDATE webhook_endpoints SET last_failure_at = now(), failing_since = coalesce(failing_since, now())
        WHERE id = $1 RETURNING failing_since
        """,
        endpoint_id,
    )


async def disable(conn: Conn, *, endpoint_id: UUID, reason: str) -> asyncpg.Record | None:
    """Disable an enabled endpoint; None if it was already disabled (so it is reported once)."""
    return await conn.fetchrow(
        """
        UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, disabled_at = now(),
               version = version + 1, updated_at = now()
        WHERE id = $1 AND enabled RETURNING *
        """,
        endpoint_id,
        reason,
    )


# --- The outbox and fan-out -------------------------------------------------------------

# Notified at the commit of every event (by the outbox trigger, with an empty payload) and
# of every delivery the API makes due (test pings, redeliveries, recoveries: DUE).
CHANNEL = "webhook_outbox"
DUE = "due"


async def claim_events(conn: Connection, limit: int) -> list[asyncpg.Record]:
    """Take up to `limit` events off the outbox, oldest first (inside the caller's
    transaction: they come back if it does not commit). Concurrent dispatchers skip each
    other's rows."""
    return await conn.fetch(
        """
        WITH claimed AS (
            DELETE FROM webhook_outbox WHERE id IN (
                SELECT id FROM webhook_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
            ) RETURNING id, event_id
        )
        SELECT e.*, c.id AS outbox_id FROM claimed c JOIN platform_events e ON e.id = c.event_id ORDER BY c.id
        """,
        limit,
    )


async def subscribers(conn: Conn, organization_ids: list[UUID]) -> list[asyncpg.Record]:
    """Enabled endpoints of these organizations (matching by event type happens in Python)."""
    return await conn.fetch(
        """
        SELECT id, organization_id, campaign_id, kind, event_types, config, created_at
        FROM webhook_endpoints WHERE organization_id = ANY($1) AND enabled
        """,
        organization_ids,
    )


async def insert_deliveries(conn: Connection, rows: list[tuple], *, claim: UUID, lease_s: float) -> list[UUID]:
    """Insert (id, endpoint_id, organization_id, event_id, event_type, campaign_id, sequence, body)
    rows, each claimed for its first attempt by `claim` for `lease_s` seconds; return the ids
    actually inserted (an existing one is never made twice)."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    inserted = await conn.fetch(
        """
        INSERT INTO webhook_deliveries (id, endpoint_id, organization_id, event_id, event_type, campaign_id,
                                        sequence, body, direct, claim, claimed_until)
        SELECT *, true, $9::uuid, now() + make_interval(secs => $10)
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::text[])
        ON CONFLICT DO NOTHING RETURNING id
        """,
        *[list(c) for c in columns],
        claim,
        lease_s,
    )
    return [r["id"] for r in inserted]


async def claim_due(conn: Connection, *, claim: UUID, lease_s: float, limit: int) -> list[UUID]:
    """Claim up to `limit` direct deliveries nobody holds: a lapsed claim (its holder died),
    a test ping, a redelivery, one that found its endpoint busy. Concurrent dispatchers skip
    each other's rows, and a row claimed meanwhile no longer qualifies."""
    rows = await conn.fetch(
        """
        UPDATE webhook_deliveries SET claim = $1, claimed_until = now() + make_interval(secs => $2)
        WHERE id IN (
            SELECT id FROM webhook_deliveries
            WHERE status = 'pending' AND NOT workflow_started AND direct AND claimed_until < now()
            ORDER BY claimed_until LIMIT $3 FOR UPDATE SKIP LOCKED
        )
        RETURNING id
        """,
        claim,
        lease_s,
        limit,
    )
    return [r["id"] for r in rows]


async def release(conn: Conn, *, delivery_id: UUID, claim: UUID, delay_s: float) -> None:
    """Give a claim back without an attempt; the row is due again in `delay_s` seconds."""
    await conn.execute(
        """
        UPDATE webhook_deliveries SET claim = NULL, claimed_until = now() + make_interval(secs => $3)
        WHERE id = $1 AND claim = $2
        """,
        delivery_id,
        claim,
        delay_s,
    )


async def hold(conn: Connection, *, delivery_id: UUID, run: int, claim: UUID) -> bool:
    """Lock the delivery for the rest of the transaction if `claim` still holds it."""
    found = await conn.fetchval(
        "SELECT true FROM webhook_deliveries WHERE id = $1 AND run = $2 AND claim = $3 FOR UPDATE",
        delivery_id,
        run,
        claim,
    )
    return bool(found)


async def notify_dispatchers(conn: Conn) -> None:
    """Wake the dispatchers (at commit, inside a transaction): a delivery is due."""
    await conn.execute(f"SELECT pg_notify('{CHANNEL}', '{DUE}')")


async def mark_started(conn: Conn, delivery_ids: list[UUID]) -> None:
    if delivery_ids:
        await conn.execute(
            "UPDATE webhook_deliveries SET workflow_started = true WHERE id = ANY($1) AND NOT workflow_started",
            delivery_ids,
        )


async def unstarted(conn: Conn, *, limit: int) -> list[asyncpg.Record]:
    """Deliveries handed to a workflow that nobody started in time (a crash in between)."""
    return await conn.fetch(
        """
        SELECT d.id, d.run, d.attempts, d.next_attempt_at, d.event_type, d.endpoint_id FROM webhook_deliveries d
        JOIN webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.status = 'pending' AND NOT d.workflow_started AND NOT d.direct AND d.claimed_until < now()
        ORDER BY d.claimed_until LIMIT $1
        """,
        limit,
    )


async def delete_finished_before(conn: Conn, *, days: float, limit: int) -> int:
    """Forget up to `limit` deliveries finished more than `days` ago (attempts go with them)."""
    result = await conn.execute(
        """
        DELETE FROM webhook_deliveries WHERE id IN (
            SELECT id FROM webhook_deliveries
            WHERE status <> 'pending' AND completed_at < now() - make_interval(secs => $1) LIMIT $2
        )
        """,
        days * 86400,
        limit,
    )
    return int(result.split()[-1])


# --- Attempts -----------------------------------------------------------------------------


# What an attempt needs, from the delivery and its endpoint: the one column list for the
# workflow's attempts and the dispatcher's direct ones.
_ATTEMPT_ROWS = """
    SELECT d.id, d.run, d.status, d.direct, d.body, d.event_type, d.attempts, d.organization_id,
           e.id AS endpoint_id, e.campaign_id AS endpoint_campaign_id, e.kind, e.url, e.headers,
           e.credentials_encrypted, e.retry_config, e.max_concurrency, e.enabled,
           e.secret, e.previous_secret, e.previous_secret_expires_at,
           e.failing_since, coalesce(d.run_started_at, d.created_at) AS run_started_at, now() AS now
    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
"""


async def delivery_for_attempt(conn: Conn, delivery_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(_ATTEMPT_ROWS + "WHERE d.id = $1", delivery_id)


async def deliveries_for_attempt(conn: Conn, delivery_ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(_ATTEMPT_ROWS + "WHERE d.id = ANY($1)", delivery_ids)


async def record_attempt(
    conn: Conn,
    *,
    delivery_id: UUID,
    run: int,
    attempt: int,
    started_at: datetime,
    latency_ms: float | None,
    status_code: int | None,
    excerpt: str | None,
    error_class: str | None,
    error: str | None,
    retry_after_s: float | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO webhook_attempts (delivery_id, run, attempt, started_at, latency_ms, status_code,
                                      response_excerpt, error_class, error, retry_after_s)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (delivery_id, run, attempt) DO UPDATE SET
            started_at = EXCLUDED.started_at, latency_ms = EXCLUDED.latency_ms, status_code = EXCLUDED.status_code,
            response_excerpt = EXCLUDED.response_excerpt, error_class = EXCLUDED.error_class,
            error = EXCLUDED.error, retry_after_s = EXCLUDED.retry_after_s
        """,
        delivery_id,
        run,
        attempt,
        started_at,
        latency_ms,
        status_code,
        excerpt,
        error_class,
        error,
        retry_after_s,
    )


async def record_delivered(
    conn: Conn,
    *,
    delivery_id: UUID,
    endpoint_id: UUID,
    run: int,
    attempt: int,
    started_at: datetime,
    latency_ms: float,
    status_code: int,
    excerpt: str | None,
    claim: UUID | None = None,
) -> bool:
    """The common case in one statement (one round trip, atomic): the attempt, the delivery
    done, and the endpoint's health (written at most once a minute while healthy). With a
    `claim`, only while that claim holds the delivery; False if nothing was written."""
    return bool(
        await conn.fetchval(
            """
        WITH delivery AS (
            UPDATE webhook_deliveries SET status = 'succeeded', attempts = $4, last_status_code = $7,
                   last_error_class = NULL, last_error = NULL, next_attempt_at = NULL, completed_at = now(),
                   direct = false, claim = NULL
            WHERE id = $1 AND run = $3 AND ($9::uuid IS NULL OR claim = $9)
            RETURNING id
        ), attempt AS (
            INSERT INTO webhook_attempts (delivery_id, run, attempt, started_at, latency_ms, status_code,
                                          response_excerpt)
            SELECT id, $3, $4, $5, $6, $7, $8 FROM delivery
            ON CONFLICT (delivery_id, run, attempt) DO UPDATE SET
                started_at = EXCLUDED.started_at, latency_ms = EXCLUDED.latency_ms,
                status_code = EXCLUDED.status_code, response_excerpt = EXCLUDED.response_excerpt,
                error_class = NULL, error = NULL, retry_after_s = NULL
        ), health AS (
            UPDATE webhook_endpoints SET last_success_at = now(), failing_since = NULL
            WHERE id = $2 AND EXISTS (SELECT 1 FROM delivery)
              AND (failing_since IS NOT NULL OR last_success_at IS NULL
                   OR last_success_at < now() - interval '1 minute')
        )
        SELECT EXISTS (SELECT 1 FROM delivery)
        """,
            delivery_id,
            endpoint_id,
            run,
            attempt,
            started_at,
            latency_ms,
            status_code,
            excerpt,
            claim,
        )
    )


async def update_delivery(
    conn: Conn,
    *,
    delivery_id: UUID,
    run: int,
    status: str,
    attempts: int,
    status_code: int | None,
    error_class: str | None,
    error: str | None,
    next_attempt_at: datetime | None,
    start_within_s: float = 0.0,
) -> None:
    """Record where a delivery stands. One still pending is (or stays) its workflow's: a
    direct one is handed over, and the sweep starts the workflow if nobody has within
    `start_within_s` seconds."""
    await conn.execute(
        """
        UPDATE webhook_deliveries SET status = $3, attempts = $4, last_status_code = $5, last_error_class = $6,
               last_error = $7, next_attempt_at = $8,
               completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END,
               claimed_until = CASE WHEN direct AND $3 = 'pending' THEN now() + make_interval(secs => $9)
                                    ELSE claimed_until END,
               direct = false, claim = NULL
        WHERE id = $1 AND run = $2
        """,
        delivery_id,
        run,
        status,
        attempts,
        status_code,
        error_class,
        error,
        next_attempt_at,
        start_within_s,
    )


# --- Reading and replay -------------------------------------------------------------------


async def list_deliveries(
    conn: Conn,
    *,
    endpoint_id: UUID,
    statuses: list[str] | None,
    event_types: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    where, args = ["endpoint_id = $1"], [endpoint_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(f"${len(args)}"))

    if statuses:
        add("status = ANY({})", statuses)
    if event_types:
        add("event_type = ANY({})", event_types)
    if since:
        add("created_at >= {}", since)
    if until:
        add("created_at < {}", until)
    clause = " AND ".join(where)
    rows = await conn.fetch(
        f"SELECT * FROM webhook_deliveries WHERE {clause} ORDER BY created_at DESC, id "
        f"LIMIT {int(limit)} OFFSET {int(offset)}",
        *args,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {clause}", *args)
    return list(rows), total


async def get_delivery(conn: Conn, *, endpoint_id: UUID, delivery_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2", delivery_id, endpoint_id
    )


async def list_attempts(conn: Conn, delivery_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY run, attempt", delivery_id)


async def insert_delivery(
    conn: Conn,
    *,
    delivery_id: UUID,
    endpoint_id: UUID,
    organization_id: UUID,
    event_type: str,
    campaign_id: UUID | None,
    body: str,
    direct: bool = True,
) -> asyncpg.Record:
    """A delivery that belongs to no recorded event (the webhook.test ping), due at once
    for a dispatcher's direct attempt (or, not `direct`, for a workflow's)."""
    return one(
        await conn.fetchrow(
            """
        INSERT INTO webhook_deliveries (id, endpoint_id, organization_id, event_type, campaign_id, body, direct)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
        """,
            delivery_id,
            endpoint_id,
            organization_id,
            event_type,
            campaign_id,
            body,
            direct,
        )
    )


async def reopen(conn: Conn, *, endpoint_id: UUID, delivery_id: UUID) -> asyncpg.Record | None:
    """Start a delivery over as a new run (redelivery), due at once for a direct attempt;
    None while one is still in progress."""
    return await conn.fetchrow(
        """
        UPDATE webhook_deliveries SET run = run + 1, status = 'pending', attempts = 0, next_attempt_at = NULL,
               completed_at = NULL, workflow_started = false, run_started_at = now(),
               direct = true, claim = NULL, claimed_until = '-infinity'
        WHERE id = $1 AND endpoint_id = $2 AND status <> 'pending' RETURNING *
        """,
        delivery_id,
        endpoint_id,
    )


async def reopen_failed(
    conn: Conn, *, endpoint_id: UUID, since: datetime, until: datetime | None, limit: int
) -> list[asyncpg.Record]:
    """Start every failed delivery created in [since, until) over as a new run, each due at
    once for a direct attempt."""
    return await conn.fetch(
        """
        UPDATE webhook_deliveries SET run = run + 1, status = 'pending', attempts = 0, next_attempt_at = NULL,
               completed_at = NULL, workflow_started = false, run_started_at = now(),
               direct = true, claim = NULL, claimed_until = '-infinity'
        WHERE id IN (
            SELECT id FROM webhook_deliveries
            WHERE endpoint_id = $1 AND status = 'failed'
              AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)
            ORDER BY created_at LIMIT $4 FOR UPDATE
        )
        RETURNING id, run, event_type
        """,
        endpoint_id,
        since,
        until,
        limit,
    )


async def attempts_by_hour(conn: Conn, *, endpoint_ids: list[UUID], since: datetime) -> list[asyncpg.Record]:
    """Attempts per endpoint and hour since `since`: how many, how many succeeded (a 2xx),
    and their latencies' median and 95th percentile. Reached through the deliveries' index
    (attempts start after their delivery was created)."""
    return await conn.fetch(
        """
        SELECT d.endpoint_id, date_trunc('hour', a.started_at) AS hour, count(*) AS attempts,
               count(*) FILTER (WHERE a.error_class IS NULL AND a.status_code BETWEEN 200 AND 299) AS succeeded,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms) AS latency_p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms) AS latency_p95
        FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
        WHERE d.endpoint_id = ANY($1::uuid[]) AND a.started_at >= $2
          AND d.created_at >= $2::timestamptz - interval '7 days'
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        endpoint_ids,
        since,
    )
