"""API keys: made with enough randomness that a plain SHA-256 is a safe way to store them
(no slow hash needed), shown once, looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from campaigns.auth import repository as repo
from campaigns.auth import scopes as scopes_
from campaigns.auth.cache import PrincipalCache
from campaigns.auth.principals import Principal, require_scope
from campaigns.errors import Conflict, NotFound

KEY_PREFIX = "qck_"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_key(
    pool: asyncpg.Pool,
    *,
    organization: str,
    name: str = "default",
    scopes: Sequence[str] = (scopes_.ADMIN,),
    max_keys: int | None = None,
) -> tuple[str, asyncpg.Record]:
    """Create the organization if needed and a new key for it with these scopes; return
    (key, its record). 409 `key_limit_reached` when the organization already has `max_keys`
    active keys."""
    unknown = sorted(set(scopes) - set(scopes_.ALL))
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {unknown}; known: {list(scopes_.ALL)}" if unknown else "no scope")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        org = await repo.get_or_create_organization(conn, organization_id=uuid.uuid4(), name=organization)
        if max_keys is not None:
            await repo.lock_organization(conn, org["id"])
            if await repo.count_active_keys(conn, org["id"]) >= max_keys:
                raise Conflict(
                    f"the organization already has {max_keys} active API keys, the most it may have; "
                    "revoke one it no longer uses first",
                    code="key_limit_reached",
                    details={"limit": max_keys},
                )
        record = await repo.insert_key(
            conn,
            key_id=uuid.uuid4(),
            organization_id=org["id"],
            name=name,
            prefix=key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(key),
            scopes=sorted(set(scopes)),
        )
    return key, record


async def mint_key(
    *, pool: asyncpg.Pool, principal: Principal, name: str, scopes: Sequence[str], max_keys: int
) -> tuple[str, asyncpg.Record]:
    """Another key for the caller's organization, with no scope the caller lacks."""
    for scope in scopes:
        require_scope(principal, scope)
    return await create_key(pool, organization=principal.organization_name, name=name, scopes=scopes, max_keys=max_keys)


async def authenticate(pool: asyncpg.Pool, principals: PrincipalCache | None, key: str) -> Principal | None:
    """The key's principal; through the process's memory when it has a principal cache
    (revoking a key drops it there in every process before the revocation returns)."""
    return await authenticate_hash(pool, principals, hash_key(key))


async def authenticate_hash(pool: asyncpg.Pool, principals: PrincipalCache | None, key_hash: bytes) -> Principal | None:
    """`authenticate` for a key known by its hash (a console session keeps only that)."""
    if principals is not None and (known := principals.get(key_hash)) is not None:
        return known
    epoch = principals.epoch if principals is not None else 0
    row = await repo.principal_by_hash(pool, key_hash)
    if row is None:
        return None
    if row["last_used_at"] is None or _stale(row["last_used_at"]):
        await repo.touch_key(pool, row["key_id"])
    principal = Principal(
        row["organization_id"],
        row["organization_name"],
        row["key_id"],
        row["key_name"],
        scopes_.expand(row["scopes"]),
    )
    if principals is not None:
        principals.keep(key_hash, principal, epoch)
    return principal


async def until_revoked(*, pool: asyncpg.Pool, principals: PrincipalCache, key_hash: bytes) -> None:
    """Return once the key is revoked. Waits for the key's invalidation (which every process
    hears), then confirms in Postgres: no query while nothing happens."""
    with principals.watch(key_hash) as woken:
        while True:
            await woken.wait()
            woken.clear()
            if not await repo.key_is_active(pool, key_hash):
                return


def _stale(last_used: datetime) -> bool:
    return datetime.now(UTC) - last_used > timedelta(minutes=1)


async def list_keys(*, pool: asyncpg.Pool, principal: Principal) -> list[asyncpg.Record]:
    """The organization's API keys (never the keys themselves)."""
    return await repo.list_keys(pool, principal.organization_id)


async def revoke_key(
    *, pool: asyncpg.Pool, principals: PrincipalCache | None, principal: Principal, key_id: UUID
) -> asyncpg.Record:
    """Revoke a key of the caller's organization; no process accepts it once this returns."""
    row = await repo.revoke_key(pool, organization_id=principal.organization_id, key_id=key_id)
    if row is None:
        raise NotFound("API key not found", code="key_not_found")
    if principals is not None:
        await principals.forget(row["key_hash"])
    return row
