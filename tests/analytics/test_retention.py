"""The event record by month: ids unique across partitions, months past the retention dropped
with the rollups kept, rebuilds that leave dropped months alone, and the migration that
partitions an existing record without losing an event.

Each test gets a database of its own on the session's Postgres: dropping months must not
touch the events other tests read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from campaigns import db
from campaigns.analytics import repository as repo
from campaigns.analytics.apply import consume
from campaigns.analytics.directory import CampaignDirectory
from campaigns.analytics.ingest import ingest
from campaigns.analytics.realtime import Realtime
from campaigns.analytics.rebuild import rebuild
from campaigns.analytics.retention import maintain
from campaigns.campaigns import repository as campaigns_repo
from campaigns.settings import Settings
from tests.support.analytics import call, event


@pytest.fixture
async def fresh_db(settings: Settings) -> AsyncIterator[str]:
    name = f"retention_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(settings.database_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield settings.database_dsn.rsplit("/", 1)[0] + "/" + name
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def fresh_pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(fresh_db)
    pool = await db.create_pool(fresh_db, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def campaign_in(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID]:
    org = await pool.fetchval("INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING id", uuid.uuid4(),
                              f"org-{uuid.uuid4().hex[:8]}")
    row = await campaigns_repo.insert(pool, campaign_id=uuid.uuid4(), organization_id=org, user_id="t", name="R",
                                      description=None, type_="outbound", channel="phone", timezone="UTC",
                                      config={"flowId": "f"})
    return org, row["id"]


async def send_at(pool, realtime, org, events, now, retention=None):
    return await ingest(pool=pool, realtime=realtime, directory=CampaignDirectory(pool), organization_id=org,
                        body=orjson.dumps({"events": events}), now=now, retention=retention)


async def apply_all(pool, realtime, now) -> None:
    async with pool.acquire() as conn, conn.transaction():
        while (await consume(conn, realtime, limit=500, now=now)).batches:
            pass


async def rollup_calls(pool, cid) -> dict[str, int]:
    rows = await pool.fetch("SELECT to_char(bucket, 'YYYY-MM') AS m, sum(calls_completed)::int AS n "
                            "FROM analytics_rollups WHERE campaign_id = $1 GROUP BY 1 ORDER BY 1", cid)
    return {r["m"]: r["n"] for r in rows}


async def test_ids_stay_unique_across_monthly_partitions(fresh_pool, redis_client):
    realtime = Realtime(redis_client)
    org, cid = await campaign_in(fresh_pool)
    now = datetime.now(UTC)
    early = event(str(cid), "cost", {"amount": 1, "category": "llm"}, at=now - timedelta(days=70), id="same-id")
    assert (await send_at(fresh_pool, realtime, org, [early], now)).accepted == 1
    # The same id again, even with another occurredAt (another month, another partition): a duplicate.
    late = {**early, "occurredAt": now.isoformat()}
    again = await send_at(fresh_pool, realtime, org, [late, early], now)
    assert again.accepted == 0 and len(again.duplicates) == 2
    partitions = {name for name, _ in await repo.event_partitions(fresh_pool)}
    stored = await fresh_pool.fetch("SELECT tableoid::regclass::text AS p FROM analytics_events")
    assert len(stored) == 1 and stored[0]["p"] in partitions


async def test_months_past_the_retention_are_dropped_and_their_rollups_kept(fresh_pool, redis_client):
    realtime = Realtime(redis_client)
    org, cid = await campaign_in(fresh_pool)
    now = datetime.now(UTC)
    for days in (100, 10, 0):
        result = await send_at(fresh_pool, realtime, org, call(str(cid), at=now - timedelta(days=days)), now)
        assert result.accepted == 2
    await apply_all(fresh_pool, realtime, now)
    before = await rollup_calls(fresh_pool, cid)
    assert sum(before.values()) == 3

    done = await maintain(fresh_pool, retention_days=60, now=now)
    old_month = (now - timedelta(days=100)).strftime("%Y_%m")
    assert f"analytics_events_{old_month}" in done.dropped and done.ids_forgotten == 2
    assert await fresh_pool.fetchval("SELECT count(*) FROM analytics_events") == 4
    assert await fresh_pool.fetchval("SELECT count(*) FROM analytics_event_ids") == 4
    dropped_before = await repo.dropped_before(fresh_pool)
    assert now - timedelta(days=100) < dropped_before <= now - timedelta(days=60)
    assert await rollup_calls(fresh_pool, cid) == before  # the rollups stay
    # Partitions are ready two months ahead.
    ahead = {first for _, first in await repo.event_partitions(fresh_pool)}
    assert (now + timedelta(days=60)).date().replace(day=1) in ahead

    # A rebuild recomputes what it still has the events of, and keeps the dropped months.
    await fresh_pool.execute("UPDATE analytics_rollups SET calls_completed = 99 WHERE campaign_id = $1", cid)
    await rebuild(fresh_pool, realtime, None, campaign_ids=[cid])
    rebuilt = await rollup_calls(fresh_pool, cid)
    assert rebuilt[(now - timedelta(days=100)).strftime("%Y-%m")] == 99  # untouched: no events to redo it from
    assert sum(n for m, n in rebuilt.items() if m != (now - timedelta(days=100)).strftime("%Y-%m")) == 2

    # Events older than the retention are refused (their month is gone).
    refused = await send_at(fresh_pool, realtime, org, [event(str(cid), "cost", {"amount": 1, "category": "llm"},
                                                              at=now - timedelta(days=70))], now,
                            retention=timedelta(days=60))
    assert refused.accepted == 0 and refused.rejected[0].field == "occurredAt"
    assert "retention" in refused.rejected[0].reason
    assert (await maintain(fresh_pool, retention_days=60, now=now)).dropped == []  # nothing more to do


async def test_the_migration_partitions_an_existing_record(fresh_db: str):
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL "
                           "DEFAULT now())")
        files = db._migration_files()
        for name, sql in files:
            if name < "011":
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        org, campaign = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        times = [now - timedelta(days=300), now - timedelta(days=31), now]
        await conn.executemany(
            "INSERT INTO analytics_events (organization_id, event_id, campaign_id, type, occurred_at, data) "
            "VALUES ($1, $2, $3, 'cost', $4, '{\"amount\": 1, \"category\": \"llm\"}')",
            [(org, f"e{i}", campaign, t) for i, t in enumerate(times)],
        )
    finally:
        await conn.close()
    assert await db.migrate(fresh_db) == [name for name, _ in files if name >= "011"]
    conn = await asyncpg.connect(fresh_db)
    try:
        rows = await conn.fetch("SELECT event_id, tableoid::regclass::text AS p FROM analytics_events ORDER BY 1")
        assert [r["event_id"] for r in rows] == ["e0", "e1", "e2"]
        assert len({r["p"] for r in rows}) == 3 and all(r["p"].startswith("analytics_events_") for r in rows)
        assert await conn.fetchval("SELECT count(*) FROM analytics_event_ids") == 3
        assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'analytics_events'") == "p"
        with pytest.raises(asyncpg.RaiseError):  # still append-only, in every partition
            await conn.execute("DELETE FROM analytics_events WHERE event_id = 'e0'")
    finally:
        await conn.close()
