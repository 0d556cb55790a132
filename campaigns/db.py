"""Postgres: the connection pool and the schema migrations.

Migrations are plain SQL files in `campaigns/migrations`, applied in name order,
each in its own transaction, recorded in `schema_migrations`. An advisory lock lets
several processes start at once without racing (a few lines of asyncpg; a migration
framework would bring a second database driver with it).
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger("campaigns.db")

_MIGRATION_LOCK = 7_240_115  # any constant shared by every process of this app

# A connection, for what needs one (a transaction, a lock, a cursor, COPY, LISTEN); one
# taken from the pool is a proxy of it with the same methods.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
# Where a statement that needs no connection of its own can run: the pool lends one for it.
Conn: TypeAlias = asyncpg.Pool | Connection


# What a statement raises when Postgres is unreachable, restarting or gone mid-statement: the
# request may be retried later (503), it is not the caller's fault nor a bug.
DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def is_down(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised from or while handling, says Postgres is away (a
    dropped connection surfaces as whatever the reconnect then raised)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DOWN):
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend((e.__cause__, e.__context__))
    return False


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that returns one by construction: an aggregate, an INSERT …
    RETURNING, an UPDATE of a row the caller has locked or just made sure of."""
    assert row is not None, "the statement returned no row"
    return row


def _jsonb_encode(value) -> bytes:
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)  # binary jsonb: a version byte


def _jsonb_decode(data: bytes):
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON through orjson; jsonb in its binary format, which COPY needs (events are COPYed).
    await conn.set_type_codec(
        "json",
        encoder=lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    command_timeout: float = 30.0,
    connect_timeout: float = 10.0,
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=command_timeout,
        timeout=connect_timeout,
    )


async def ping(pool: asyncpg.Pool, *, within_s: float = 5.0) -> None:
    """One round trip, bounded whole: waiting for a pooled connection included."""
    async with pool.acquire(timeout=within_s) as conn:
        await conn.fetchval("SELECT 1", timeout=within_s)


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("campaigns") / "migrations"
    files = sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))
    return files


async def migrate(url: str) -> list[str]:
    """Apply the migrations not yet applied; return their names."""
    conn = await asyncpg.connect(url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in _migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied
