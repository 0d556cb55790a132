"""Every SQL statement about A/B tests: the tests, their evaluations, bandit weight epochs
and sticky assignments, and the per-variant sufficient statistics read from the analytics
rollups (never from raw events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from campaigns.domain.abtest.catalogue import UNIT_COLUMNS, MetricDef

Conn = asyncpg.Connection | asyncpg.Pool


async def insert(
    conn: Conn,
    *,
    test_id: UUID,
    organization_id: UUID,
    campaign_id: UUID,
    name: str,
    mode: str,
    design: dict[str, Any],
    weights: dict[str, float],
    started_at: datetime,
    ends_at: datetime,
) -> asyncpg.Record | None:
    """Insert a running test; None if the campaign already has one running."""
    return await conn.fetchrow(
        """
        INSERT INTO ab_tests (id, organization_id, campaign_id, name, mode, design, status, weights,
                              started_at, ends_at)
        VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $9)
        ON CONFLICT (campaign_id) WHERE status = 'running' DO NOTHING
        RETURNING *
        """,
        test_id,
        organization_id,
        campaign_id,
        name,
        mode,
        design,
        weights,
        started_at,
        ends_at,
    )


async def insert_epoch(
    conn: Conn, *, test_id: UUID, version: int, effective_from: datetime, weights: dict[str, float]
) -> None:
    await conn.execute(
        """
        INSERT INTO ab_test_weight_epochs (test_id, version, effective_from, weights)
        VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING
        """,
        test_id,
        version,
        effective_from,
        weights,
    )


async def get(conn: Conn, *, organization_id: UUID, campaign_id: UUID, test_id: UUID) -> asyncpg.Record | None:
    """A test of this organization's campaign, or None (another organization's is None too)."""
    return await conn.fetchrow(
        "SELECT * FROM ab_tests WHERE id = $1 AND campaign_id = $2 AND organization_id = $3",
        test_id,
        campaign_id,
        organization_id,
    )


async def get_for_assignment(
    conn: Conn, *, organization_id: UUID, campaign_id: UUID, test_id: UUID
) -> asyncpg.Record | None:
    """The test with its campaign's status and configuration, in one round trip."""
    return await conn.fetchrow(
        """
        SELECT t.*, c.status AS campaign_status, c.config AS campaign_config
        FROM ab_tests t JOIN campaigns c ON c.id = t.campaign_id
        WHERE t.id = $1 AND t.campaign_id = $2 AND t.organization_id = $3
        """,
        test_id,
        campaign_id,
        organization_id,
    )


async def get_by_id(conn: Conn, test_id: UUID) -> asyncpg.Record | None:
    """For the test's own workflow, which knows its id."""
    return await conn.fetchrow("SELECT * FROM ab_tests WHERE id = $1", test_id)


async def running_for_campaign(conn: Conn, campaign_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM ab_tests WHERE campaign_id = $1 AND status = 'running'", campaign_id)


async def list_(
    conn: Conn, *, organization_id: UUID, campaign_id: UUID, status: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where = "campaign_id = $1 AND organization_id = $2" + (" AND status = $3" if status else "")
    args: list[Any] = [campaign_id, organization_id] + ([status] if status else [])
    rows = await conn.fetch(
        f"SELECT * FROM ab_tests WHERE {where} ORDER BY created_at DESC, id DESC LIMIT {int(limit)} OFFSET {int(offset)}",
        *args,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM ab_tests WHERE {where}", *args)
    return list(rows), total


# --- Sufficient statistics from the rollups -------------------------------------------------


def _sum(columns: tuple[str, ...]) -> str:
    return " + ".join(f"r.{c}" for c in columns)


def sums_select_list(metrics: list[MetricDef]) -> str:
    """`sum(...) AS "name:key"` for every statistic `catalogue.stats` reads. Column names
    come from the catalogue, never from a request."""
    parts = [f'sum({_sum(cols)})::float8 AS "units:{unit}"' for unit, cols in UNIT_COLUMNS.items()]
    for m in {m.name: m for m in metrics}.values():
        num, den = f"({_sum(m.num)})::float8", f"({_sum(m.den)})::float8"
        if m.kind == "proportion":
            parts += [f'sum({num}) AS "{m.name}:x"', f'sum({den}) AS "{m.name}:n"']
        elif m.kind == "mean":
            parts += [
                f'sum({num}) AS "{m.name}:sum"',
                f'sum(r.{m.sq})::float8 AS "{m.name}:sq"',
                f'sum({den}) AS "{m.name}:n"',
            ]
        else:
            # Each 15-minute slot of the variant is one unit of the delta method.
            parts += [
                f'count(*) FILTER (WHERE {num} <> 0 OR {den} <> 0)::float8 AS "{m.name}:m"',
                f'sum({num}) AS "{m.name}:sy"',
                f'sum({den}) AS "{m.name}:sx"',
                f'sum({num} * {num}) AS "{m.name}:syy"',
                f'sum({den} * {den}) AS "{m.name}:sxx"',
                f'sum({num} * {den}) AS "{m.name}:sxy"',
            ]
    return ",\n       ".join(parts)


async def variant_sums(
    conn: Conn,
    *,
    campaign_id: UUID,
    variant_ids: list[str],
    metrics: list[MetricDef],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, float]]:
    """Per variant, the sums of the rollup slots starting in [start, end) (`start` is rounded
    down to its slot)."""
    rows = await conn.fetch(
        f"""
        SELECT r.variant_id, {sums_select_list(metrics)}
        FROM analytics_rollups r
        WHERE r.campaign_id = $1 AND r.variant_id = ANY($2::text[])
          AND r.bucket >= date_bin('15 minutes', $3::timestamptz, TIMESTAMPTZ 'epoch') AND r.bucket < $4
        GROUP BY r.variant_id
        """,
        campaign_id,
        variant_ids,
        start,
        end,
    )
    return {row["variant_id"]: {k: v for k, v in row.items() if k != "variant_id" and v is not None} for row in rows}


# --- Bandit: weight epochs and sticky assignments ------------------------------------------


async def epoch_counts(conn: Conn, test_id: UUID) -> list[tuple[dict[str, float], dict[str, int]]]:
    """Per weight epoch, oldest first: (its weights, assignments made in it by variant)."""
    epochs = await conn.fetch(
        "SELECT version, weights FROM ab_test_weight_epochs WHERE test_id = $1 ORDER BY version", test_id
    )
    counts = await conn.fetch(
        "SELECT epoch, variant_id, count(*) AS n FROM ab_test_assignments WHERE test_id = $1 GROUP BY 1, 2",
        test_id,
    )
    by_epoch: dict[int, dict[str, int]] = {}
    for r in counts:
        by_epoch.setdefault(r["epoch"], {})[r["variant_id"]] = r["n"]
    return [(e["weights"], by_epoch.get(e["version"], {})) for e in epochs]


async def sticky_assignment(conn: Conn, *, test_id: UUID, subject_id: str, variant_id: str, epoch: int) -> str:
    """The subject's stored variant: the one given if this is its first assignment."""
    stored = await conn.fetchval(
        """
        INSERT INTO ab_test_assignments (test_id, subject_id, variant_id, epoch) VALUES ($1, $2, $3, $4)
        ON CONFLICT (test_id, subject_id) DO NOTHING RETURNING variant_id
        """,
        test_id,
        subject_id,
        variant_id,
        epoch,
    )
    if stored is not None:
        return stored
    return await conn.fetchval(
        "SELECT variant_id FROM ab_test_assignments WHERE test_id = $1 AND subject_id = $2", test_id, subject_id
    )


# --- Evaluations and conclusion (written by the test's workflow) ----------------------------


async def record_evaluation(
    conn: asyncpg.Connection,
    *,
    test_id: UUID,
    seq: int,
    at: datetime,
    conclusion: str | None,
    reason: str,
    summary: dict[str, Any],
    running: dict[str, Any],
    weights: dict[str, float] | None,
    sums: dict[str, dict[str, float]] | None = None,
    sums_through: datetime | None = None,
) -> bool:
    """Record evaluation `seq` and move the test's projection on; False if already recorded."""
    inserted = await conn.fetchval(
        """
        INSERT INTO ab_test_evaluations (test_id, seq, evaluated_at, conclusion, reason, summary, weights)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1
        """,
        test_id,
        seq,
        at,
        conclusion,
        reason,
        summary,
        weights,
    )
    if not inserted:
        return False
    if weights is not None:
        version = await conn.fetchval(
            "UPDATE ab_tests SET weights = $2, weights_version = weights_version + 1 WHERE id = $1 "
            "RETURNING weights_version",
            test_id,
            weights,
        )
        await insert_epoch(conn, test_id=test_id, version=version, effective_from=at, weights=weights)
    await conn.execute(
        """
        UPDATE ab_tests SET running = $2, evaluations = $3, last_evaluated_at = $4,
               last_summary = $5, sums = coalesce($6, sums), sums_through = coalesce($7, sums_through),
               updated_at = now()
        WHERE id = $1
        """,
        test_id,
        running,
        seq,
        at,
        {"conclusion": conclusion, "reason": reason},
        sums,
        sums_through,
    )
    return True


async def get_evaluation(conn: Conn, test_id: UUID, seq: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM ab_test_evaluations WHERE test_id = $1 AND seq = $2", test_id, seq)


async def list_evaluations(conn: Conn, *, test_id: UUID, limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        "SELECT * FROM ab_test_evaluations WHERE test_id = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3",
        test_id,
        limit,
        offset,
    )
    total = await conn.fetchval("SELECT count(*) FROM ab_test_evaluations WHERE test_id = $1", test_id)
    return list(rows), total


async def conclude(
    conn: Conn,
    *,
    test_id: UUID,
    conclusion: str,
    reason: str,
    winner_variant_id: str | None,
    actor: dict[str, Any],
    at: datetime,
) -> asyncpg.Record | None:
    """Conclude a running test (which stops its assignment); return the row as stored, with
    the first conclusion if it was already concluded. None if the test does not exist."""
    row = await conn.fetchrow(
        """
        UPDATE ab_tests SET status = 'concluded', conclusion = $2, conclusion_reason = $3,
               winner_variant_id = $4, concluded_by = $5, concluded_at = $6, updated_at = now()
        WHERE id = $1 AND status = 'running'
        RETURNING *
        """,
        test_id,
        conclusion,
        reason,
        winner_variant_id,
        actor,
        at,
    )
    return row or await get_by_id(conn, test_id)


async def set_promotion(conn: Conn, *, test_id: UUID, promotion: dict[str, Any]) -> None:
    await conn.execute("UPDATE ab_tests SET promotion = $2, updated_at = now() WHERE id = $1", test_id, promotion)
