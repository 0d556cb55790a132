"""A/B tests as the tests make them (TEST, create_test), and per-variant traffic written as
the analytics rollups hold it (sums per campaign, 15-minute slot and variant), so tests can
give a test any amount of data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

TEST = {
    "name": "Warm greeting",
    "variants": [
        {"name": "Control"},
        {"name": "Warm", "overrides": {"voiceSettings": {"customGreeting": "Hi there!", "speakingStyle": "friendly"}}},
    ],
    "primaryMetric": "conversionRate",
    "sampleSize": 2000,
    "minDurationDays": 0,
    "evaluationIntervalSeconds": 3600,
}


async def create_test(api: httpx.AsyncClient, campaign_id: str, **changes) -> dict:
    """A running test of the campaign: TEST with `changes` on top."""
    r = await api.post(f"/api/campaigns/{campaign_id}/ab-test", json={**TEST, **changes})
    assert r.status_code == 201, r.text
    return r.json()["test"]


def slot(at: datetime) -> datetime:
    epoch = int(at.timestamp()) // 900 * 900
    return datetime.fromtimestamp(epoch, UTC)


async def add(pool: asyncpg.Pool, campaign_id: str, variant_id: str, at: datetime | None = None, **sums: float) -> None:
    """Add sums (rollup column → amount) to the variant's slot holding `at` (default: now)."""
    at = at or datetime.now(UTC)
    names = list(sums)
    await pool.execute(
        f"""
        INSERT INTO analytics_rollups (campaign_id, bucket, variant_id, {", ".join(names)})
        VALUES ($1, $2, $3, {", ".join(f"${i + 4}" for i in range(len(names)))})
        ON CONFLICT (campaign_id, bucket, variant_id) DO UPDATE SET
        {", ".join(f"{n} = analytics_rollups.{n} + EXCLUDED.{n}" for n in names)}
        """,
        uuid.UUID(campaign_id), slot(at), variant_id,
        *(float(v) if n.endswith(("_sum", "_sq")) else round(v) for n, v in sums.items()),
    )


async def calls(pool: asyncpg.Pool, campaign_id: str, variant_id: str, n: int, conversions: int,
                at: datetime | None = None, **more: float) -> None:
    """`n` completed calls of which `conversions` converted."""
    await add(pool, campaign_id, variant_id, at, calls_completed=n, calls_connected=n, conversions=conversions, **more)
