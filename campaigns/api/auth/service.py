"""API keys: made with enough randomness that a plain SHA-256 is a safe way to store them
(no slow hash needed), shown once, looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from campaigns.api.auth import repository as repo
from campaigns.api.campaigns import cache as campaign_cache

KEY_PREFIX = "qck_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organization the key belongs to, and the key."""

    organization_id: UUID
    organization_name: str
    key_id: UUID
    key_name: str

    def actor(self) -> dict[str, str]:
        return {"kind": "api_key", "id": str(self.key_id), "name": self.key_name}


@dataclass(frozen=True)
class SystemPrincipal(Principal):
    """The platform acting inside an organization without a key of its own (promoting a
    test's winner, simulating traffic): audited as a system actor."""

    actor_id: str = ""
    actor_name: str = ""

    def actor(self) -> dict[str, str]:
        return {"kind": "system", "id": self.actor_id, "name": self.actor_name}


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_key(pool: asyncpg.Pool, *, organization: str, name: str = "default") -> tuple[str, asyncpg.Record]:
    """Create the organization if needed and a new key for it; return (key, its record)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        org = await repo.get_or_create_organization(conn, organization_id=uuid.uuid4(), name=organization)
        record = await repo.insert_key(
            conn,
            key_id=uuid.uuid4(),
            organization_id=org["id"],
            name=name,
            prefix=key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(key),
        )
    return key, record


def cache_slot(key_hash: bytes) -> str:
    return f"apikey:{key_hash.hex()}"


async def authenticate(pool: asyncpg.Pool, key: str) -> Principal | None:
    """The key's principal; through the API process's memory when it has the campaign cache
    (revoking a key invalidates it there in every process before the revocation returns)."""
    key_hash = hash_key(key)
    cache = campaign_cache.for_pool(pool)
    if cache is not None and (known := cache.peek(cache_slot(key_hash))) is not None:
        return known
    epoch = cache.epoch if cache is not None else 0
    row = await repo.principal_by_hash(pool, key_hash)
    if row is None:
        return None
    if row["last_used_at"] is None or _stale(row["last_used_at"]):
        await repo.touch_key(pool, row["key_id"])
    principal = Principal(row["organization_id"], row["organization_name"], row["key_id"], row["key_name"])
    if cache is not None:
        cache.keep(cache_slot(key_hash), principal, epoch)
    return principal


async def forget(pool: asyncpg.Pool, key_hash: bytes) -> None:
    """After a key is revoked: no API process may go on accepting it from memory."""
    cache = campaign_cache.for_pool(pool)
    if cache is not None:
        await cache.invalidate(cache_slot(key_hash))


def _stale(last_used) -> bool:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - last_used > timedelta(minutes=1)
