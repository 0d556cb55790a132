"""Console sessions: an API key exchanged for a session.

The browser holds a random token (in a signed cookie, see the console); Postgres holds only
the token's SHA-256 and the key it was opened with. Every request finds the key again
through the principal cache, exactly as an API request would, so a session has its key's
scopes and ends the moment the key is revoked. Signing out deletes the session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg

from campaigns.auth import repository as repo
from campaigns.auth import scopes
from campaigns.auth.cache import PrincipalCache
from campaigns.auth.principals import Principal, require_scope
from campaigns.auth.service import authenticate, authenticate_hash
from campaigns.errors import Unauthorized


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def open_session(
    *, pool: asyncpg.Pool, principals: PrincipalCache | None, key: str, ttl: timedelta
) -> tuple[str, Principal]:
    """Exchange an API key (one that may at least read campaigns) for a session token."""
    principal = await authenticate(pool, principals, key.strip())
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    require_scope(principal, scopes.CAMPAIGNS_READ)
    token = secrets.token_urlsafe(32)
    await repo.delete_expired_sessions(pool)
    await repo.insert_session(
        pool,
        token_hash=_hash(token),
        key_id=principal.key_id,
        organization_id=principal.organization_id,
        expires_at=datetime.now(UTC) + ttl,
    )
    return token, principal


async def resume(
    *, pool: asyncpg.Pool, principals: PrincipalCache | None, token: str
) -> tuple[Principal, bytes] | None:
    """The principal of a live session and its key's hash (what a long response watches for
    the key's revocation): None once it expired, was ended, or its key revoked."""
    key_hash = await repo.session_key_hash(pool, _hash(token))
    if key_hash is None:
        return None
    principal = await authenticate_hash(pool, principals, bytes(key_hash))
    return None if principal is None else (principal, bytes(key_hash))


async def close(*, pool: asyncpg.Pool, token: str) -> None:
    """End a session (sign out)."""
    await repo.delete_session(pool, _hash(token))
