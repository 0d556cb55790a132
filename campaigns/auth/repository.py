"""SQL for organizations and API keys."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from campaigns.db import Conn, one


async def get_or_create_organization(conn: Conn, *, organization_id: UUID, name: str) -> asyncpg.Record:
    await conn.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", organization_id, name
    )
    return one(await conn.fetchrow("SELECT * FROM organizations WHERE name = $1", name))


async def lock_organization(conn: Conn, organization_id: UUID) -> None:
    """Serialize key changes of one organization until the transaction ends (the key cap)."""
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", organization_id)


async def count_active_keys(conn: Conn, organization_id: UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM api_keys WHERE organization_id = $1 AND revoked_at IS NULL", organization_id
    )


async def insert_key(
    conn: Conn, *, key_id: UUID, organization_id: UUID, name: str, prefix: str, key_hash: bytes, scopes: list[str]
) -> asyncpg.Record:
    return one(
        await conn.fetchrow(
            """
        INSERT INTO api_keys (id, organization_id, name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING id, organization_id, name, prefix, scopes, created_at, last_used_at, revoked_at, key_hash
        """,
            key_id,
            organization_id,
            name,
            prefix,
            key_hash,
            scopes,
        )
    )


async def principal_by_hash(conn: Conn, key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT k.id AS key_id, k.name AS key_name, k.scopes, k.last_used_at,
               o.id AS organization_id, o.name AS organization_name
        FROM api_keys k JOIN organizations o ON o.id = k.organization_id
        WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        """,
        key_hash,
    )


async def touch_key(conn: Conn, key_id: UUID) -> None:
    # At most once a minute per key, so a busy key does not become a hot row.
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1 "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        key_id,
    )


async def list_keys(conn: Conn, organization_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, organization_id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys "
        "WHERE organization_id = $1 ORDER BY created_at",
        organization_id,
    )


async def revoke_key(conn: Conn, *, organization_id: UUID, key_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND organization_id = $2
        RETURNING id, organization_id, name, prefix, scopes, created_at, last_used_at, revoked_at, key_hash
        """,
        key_id,
        organization_id,
    )


async def key_is_active(conn: Conn, key_hash: bytes) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash))


# --- Console sessions ----------------------------------------------------------------------


async def insert_session(
    conn: Conn, *, token_hash: bytes, key_id: UUID, organization_id: UUID, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO console_sessions (token_hash, key_id, organization_id, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        key_id,
        organization_id,
        expires_at,
    )


async def session_key_hash(conn: Conn, token_hash: bytes) -> bytes | None:
    """The hash of the key a live session was opened with; None when the session is over or
    the key revoked."""
    return await conn.fetchval(
        """
        SELECT k.key_hash FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
        WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL
        """,
        token_hash,
    )


async def delete_session(conn: Conn, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE token_hash = $1", token_hash)


async def delete_expired_sessions(conn: Conn) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE expires_at <= now()")
