"""Every SQL statement about analytics: the event record, the outbox, the rollups and the
performance summary. Functions take a connection (or pool) and plain values."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from campaigns.db import Conn, Connection, one
from campaigns.domain import metrics
from campaigns.domain.periods import BUCKET_SECONDS

EVENT_COLUMNS = (
    "organization_id",
    "event_id",
    "campaign_id",
    "type",
    "occurred_at",
    "variant_id",
    "subject_id",
    "call_id",
    "data",
)

# --- Ingest ---------------------------------------------------------------------------------


async def campaign_organizations(conn: Conn, campaign_ids: Iterable[UUID]) -> dict[UUID, UUID]:
    rows = await conn.fetch("SELECT id, organization_id FROM campaigns WHERE id = ANY($1::uuid[])", list(campaign_ids))
    return {r["id"]: r["organization_id"] for r in rows}


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS analytics_staging (
    organization_id uuid, event_id text, campaign_id uuid, type text, occurred_at timestamptz,
    variant_id text, subject_id text, call_id text, data jsonb
) ON COMMIT DELETE ROWS
"""

_ID_COLUMNS = ("organization_id", "event_id", "occurred_at")


async def store_events(conn: Connection, records: list[tuple]) -> list[str]:
    """Append events (tuples in EVENT_COLUMNS order, `data` a dict) unless their id is
    already recorded; return the ids actually stored. Must run in a transaction.

    An event's identity is kept in `analytics_event_ids` (the events themselves are
    partitioned by time, which a unique index across partitions cannot be). Most batches
    hold only new events: their ids, then the events, are COPYed straight in. If one id is
    already there (a retry, or a concurrent batch with the same ids, which the unique index
    makes wait for the other's commit), that COPY fails as a whole and the batch goes the
    careful way: COPY into a per-connection temporary table, then one statement that inserts
    the ids not yet known (ON CONFLICT DO NOTHING) and the events of those. Either way rows
    go in id order, so two batches sharing ids wait for each other instead of deadlocking.
    An event in a month without a partition yet has it created."""
    records = sorted(records, key=lambda r: r[1])
    for attempt in range(2):
        try:
            return await _store(conn, records)
        except asyncpg.CheckViolationError as exc:  # "no partition of relation … found for row"
            if attempt or "partition" not in str(exc):
                raise
            times = [r[4] for r in records]
            await ensure_event_partitions(conn, min(times).date(), max(times).date())
    raise AssertionError("unreachable")


async def _store(conn: Connection, records: list[tuple]) -> list[str]:
    try:
        async with conn.transaction():  # a savepoint: a failed COPY leaves the rest intact
            await conn.copy_records_to_table(
                "analytics_event_ids", records=[(r[0], r[1], r[4]) for r in records], columns=_ID_COLUMNS
            )
            await conn.copy_records_to_table("analytics_events", records=records, columns=EVENT_COLUMNS)
        return [r[1] for r in records]
    except asyncpg.UniqueViolationError:
        pass
    async with conn.transaction():
        await conn.execute(_STAGING)
        await conn.copy_records_to_table("analytics_staging", records=records, columns=EVENT_COLUMNS)
        rows = await conn.fetch(
            f"""
            WITH fresh AS (
                INSERT INTO analytics_event_ids ({", ".join(_ID_COLUMNS)})
                SELECT {", ".join(_ID_COLUMNS)} FROM analytics_staging ORDER BY event_id
                ON CONFLICT DO NOTHING
                RETURNING organization_id, event_id
            )
            INSERT INTO analytics_events ({", ".join(EVENT_COLUMNS)})
            SELECT {", ".join("s." + c for c in EVENT_COLUMNS)}
            FROM analytics_staging s JOIN fresh USING (organization_id, event_id)
            ORDER BY s.event_id
            RETURNING event_id
            """
        )
    return [r[0] for r in rows]


async def add_outbox(conn: Connection, *, batch_id: UUID, payload: bytes) -> None:
    await conn.execute("INSERT INTO analytics_outbox (batch_id, payload) VALUES ($1, $2)", batch_id, payload)


# --- The refresher ------------------------------------------------------------------------

# One refresher pass (or rebuild) at a time, across processes.
_DERIVED_LOCK = 7_240_204


async def try_lock_derived(conn: Connection) -> bool:
    """Take the derived views for this transaction, unless another process has them."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _DERIVED_LOCK))


async def lock_derived_for_rebuild(conn: Connection) -> None:
    """Wait for the derived views, and hold new batches back (they wait for the commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _DERIVED_LOCK)
    await conn.execute("LOCK TABLE analytics_outbox IN SHARE MODE")


async def has_events(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM analytics_events)"))


async def summarised_campaigns(conn: Conn) -> list[UUID]:
    return [r[0] for r in await conn.fetch("SELECT campaign_id FROM campaign_performance")]


async def take_outbox(conn: Connection, limit: int, *, with_derived: bool = True) -> list[asyncpg.Record]:
    """The oldest waiting rows; `with_derived` False leaves out those already derived (which
    wait only for Redis)."""
    where = "" if with_derived else "WHERE derived_at IS NULL"
    return await conn.fetch(
        f"SELECT id, payload, created_at, derived_at FROM analytics_outbox {where} "
        "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def delete_outbox(conn: Connection, ids: list[int]) -> None:
    await conn.execute("DELETE FROM analytics_outbox WHERE id = ANY($1::bigint[])", ids)


async def mark_derived(conn: Connection, ids: list[int], at: datetime) -> None:
    """These rows are in the rollups and the summary; they wait only for Redis."""
    if ids:
        await conn.execute("UPDATE analytics_outbox SET derived_at = $2 WHERE id = ANY($1::bigint[])", ids, at)


async def outbox_backlog(conn: Conn, *, with_derived: bool = True) -> tuple[int, datetime | None]:
    where = "" if with_derived else "WHERE derived_at IS NULL"
    row = one(await conn.fetchrow(f"SELECT count(*) AS n, min(created_at) AS oldest FROM analytics_outbox {where}"))
    return row["n"], row["oldest"]


_CATEGORY_JSON = ", ".join(
    f"'{c}', round(coalesce((p.cost_by_category->>'{c}')::numeric, 0) "
    f"+ u.cost_{c}_micros::numeric / {metrics.MICROS}, 6)"
    for c in metrics.COST_CATEGORIES
)


@functools.lru_cache(maxsize=256)
def _apply_deltas_sql(present: tuple[str, ...]) -> str:
    """Several batches' deltas in one statement: Postgres groups the keys (the same slot may
    come from several batches), adds them to the rollups, and adds the per-campaign totals to
    the summary, recomputing its rates from the new totals. Only the metrics some event
    touched are sent; the others are zeros written as constants."""
    args = {name: f"${i + 5}" for i, name in enumerate(present)}
    kinds = {m.name: ("bigint" if m.integral else "float8") for m in metrics.METRICS}
    unnest = ", ".join(f"{args[n]}::text::{kinds[n]}[]" for n in present)
    value = {n: (n if n in args else f"0::{kinds[n]}") for n in metrics.NAMES}
    names = ", ".join(metrics.NAMES)
    selected = ", ".join(f"{value[n]} AS {n}" for n in metrics.NAMES)
    more_arrays = ", " + unnest if present else ""
    more_columns = ", " + ", ".join(present) if present else ""
    sums = ", ".join(f"sum({n})" for n in metrics.NAMES)
    # With no metric present, a no-op assignment keeps the statement valid.
    additions = ", ".join(f"{n} = analytics_rollups.{n} + excluded.{n}" for n in present) or (
        "calls_started = analytics_rollups.calls_started"
    )
    return f"""
WITH d AS (
    SELECT campaign_id, slot, variant_id, last_ts, {selected}
    FROM unnest($1::text::uuid[], $2::text::bigint[], $3::text::text[], $4::text::float8[]{more_arrays})
         AS x(campaign_id, slot, variant_id, last_ts{more_columns})
), rolled AS (
    INSERT INTO analytics_rollups (campaign_id, bucket, variant_id, {names})
    SELECT campaign_id, to_timestamp(slot * {BUCKET_SECONDS}), variant_id, {sums}
    FROM d GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (campaign_id, bucket, variant_id) DO UPDATE SET
        {additions}
)
UPDATE campaign_performance p SET
    total_calls = p.total_calls + u.calls_completed + u.calls_failed,
    completed_calls = p.completed_calls + u.calls_completed,
    connected_calls = p.connected_calls + u.calls_connected,
    failed_calls = p.failed_calls + u.calls_failed,
    qualified_leads = p.qualified_leads + u.leads,
    conversions = p.conversions + u.conversions,
    duration_sum = p.duration_sum + u.duration_sum,
    widget_clicks = p.widget_clicks + u.widget_clicks,
    total_cost = p.total_cost + u.cost_micros::numeric / {metrics.MICROS},
    revenue = p.revenue + u.revenue_micros::numeric / {metrics.MICROS},
    cost_by_category = jsonb_build_object({_CATEGORY_JSON}),
    conversion_rate = coalesce((p.conversions + u.conversions)::float8
                               / nullif(p.completed_calls + u.calls_completed, 0), 0),
    average_call_duration = coalesce((p.duration_sum + u.duration_sum)
                                     / nullif(p.completed_calls + u.calls_completed, 0), 0),
    cost_per_lead = round((p.total_cost + u.cost_micros::numeric / {metrics.MICROS})
                          / nullif(p.qualified_leads + u.leads, 0), 6),
    last_event_at = greatest(p.last_event_at, u.last_event_at),
    updated_at = now()
FROM (
    SELECT campaign_id, to_timestamp(max(last_ts)) AS last_event_at,
           {", ".join(f"sum({n}) AS {n}" for n in metrics.NAMES)}
    FROM d GROUP BY campaign_id ORDER BY campaign_id
) u
WHERE p.campaign_id = u.campaign_id
"""


def _array(values: list[Any]) -> str:
    """A Postgres array literal of numbers or uuids (they need no quoting): JSON's list syntax
    with braces. Much faster than letting asyncpg check and encode element by element."""
    return "{" + orjson.dumps(values)[1:-1].decode().replace('"', "") + "}"


async def apply_deltas(conn: Connection, deltas: list[Any]) -> None:
    """Add batches' deltas (analytics.delta.Delta) to the rollups and the summary."""
    keys: list[Any] = [k for d in deltas for k in d.keys]
    if not keys:
        return
    present = tuple(n for n in metrics.NAMES if any(n in d.columns for d in deltas))
    columns: list[str] = []
    for name in present:
        column: list[Any] = []
        for d in deltas:
            values = d.columns.get(name)
            column += values if values is not None else [0] * len(d.keys)
        columns.append(_array(column))
    last = [d.last_event_at[k[0]] for d in deltas for k in d.keys]
    await conn.execute(
        _apply_deltas_sql(present),
        _array([k[0] for k in keys]),
        _array([k[1] for k in keys]),
        "{" + ",".join(f'"{k[2]}"' for k in keys) + "}",  # variant ids: [A-Za-z0-9_.:-]* (never a quote)
        _array(last),
        *columns,
    )


_DERIVE_PERFORMANCE = """
UPDATE campaign_performance SET
    conversion_rate = coalesce(conversions::float8 / nullif(completed_calls, 0), 0),
    average_call_duration = coalesce(duration_sum / nullif(completed_calls, 0), 0),
    cost_per_lead = round(total_cost / nullif(qualified_leads, 0), 6)
WHERE campaign_id = ANY($1::uuid[])
"""


def lead_event_id(organization_id: str, event_id: str) -> UUID:
    """The `lead.created` platform event of a `lead.qualified` analytics event: fixed by the
    analytics event's identity, so it can only ever be recorded once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"quantum-campaigns:lead:{organization_id}:{event_id}")


async def record_leads(conn: Connection, leads: list[dict[str, Any]]) -> int:
    """Record a `lead.created` platform event per qualified lead, with the campaign's next
    sequence numbers (webhook receivers order by them)."""
    if not leads:
        return 0
    ids = [lead_event_id(lead["organizationId"], lead["eventId"]) for lead in leads]
    existing = {r[0] for r in await conn.fetch("SELECT id FROM platform_events WHERE id = ANY($1::uuid[])", ids)}
    fresh = [(i, lead) for i, lead in zip(ids, leads, strict=True) if i not in existing]
    if not fresh:
        return 0
    per_campaign: dict[str, int] = {}
    for _, lead in fresh:
        per_campaign[lead["campaignId"]] = per_campaign.get(lead["campaignId"], 0) + 1
    campaigns = sorted(per_campaign)
    rows = await conn.fetch(
        """
        UPDATE campaigns c SET last_event_seq = c.last_event_seq + u.n
        FROM (SELECT * FROM unnest($1::uuid[], $2::int[]) AS x(id, n) ORDER BY id) u
        WHERE c.id = u.id
        RETURNING c.id, c.last_event_seq
        """,
        [UUID(c) for c in campaigns],
        [per_campaign[c] for c in campaigns],
    )
    next_seq = {str(r["id"]): r["last_event_seq"] - per_campaign[str(r["id"])] + 1 for r in rows}
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for event_id, lead in sorted(fresh, key=lambda x: x[1]["occurredAt"]):
        campaign = lead["campaignId"]
        if campaign not in next_seq:
            continue  # the campaign is gone
        data = {k: v for k, v in lead.items() if k != "organizationId"}
        data["leadId"] = str(event_id)
        for column, value in zip(
            columns,
            (
                event_id,
                lead["organizationId"],
                campaign,
                next_seq[campaign],
                orjson.dumps(data).decode(),
                datetime.fromisoformat(lead["occurredAt"]),
            ),
            strict=True,
        ):
            column.append(value)
        next_seq[campaign] += 1
    await conn.execute(
        """
        INSERT INTO platform_events (id, organization_id, campaign_id, seq, type, data, occurred_at)
        SELECT id, org, campaign, seq, 'lead.created', data::jsonb, at
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::timestamptz[])
             AS x(id, org, campaign, seq, data, at)
        ON CONFLICT (id) DO NOTHING
        """,
        *columns,
    )
    return len(columns[0])


async def watched_campaigns(conn: Connection, campaign_ids: list[UUID] | None) -> list[asyncpg.Record]:
    """Campaigns with goals or a budget (of `campaign_ids`, or all that are not archived),
    locked: the goal progress written back must not overwrite a concurrent configuration
    change."""
    where = "c.id = ANY($1::uuid[])" if campaign_ids is not None else "c.status <> 'archived'"
    args = [sorted(campaign_ids)] if campaign_ids is not None else []
    return await conn.fetch(
        f"""
        SELECT c.id, c.organization_id, c.status, c.status_reason, c.timezone, c.config, c.created_at,
               c.started_at, p.total_cost, p.qualified_leads, p.conversions, p.revenue, p.total_calls,
               p.connected_calls, p.widget_clicks
        FROM campaigns c JOIN campaign_performance p ON p.campaign_id = c.id
        WHERE {where}
          AND (jsonb_array_length(coalesce(c.config->'goals', '[]')) > 0
               OR coalesce(c.config->'budget', 'null') <> 'null')
        ORDER BY c.id
        FOR UPDATE OF c
        """,
        *args,
    )


async def window_sums(
    conn: Conn, windows: list[tuple[UUID, datetime, datetime]], names: tuple[str, ...]
) -> list[dict[str, float]]:
    """Sums of `names` over each (campaign, start, end) window, in order."""
    if not windows:
        return []
    rows = await conn.fetch(
        f"""
        SELECT q.k, {", ".join(f"{metrics.sql_sum(n)} AS {n}" for n in names)}
        FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[]) AS q(campaign_id, s, e, k)
        LEFT JOIN analytics_rollups r ON r.campaign_id = q.campaign_id AND r.bucket >= q.s AND r.bucket < q.e
        GROUP BY q.k
        """,
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
        list(range(len(windows))),
    )
    by_key = {r["k"]: {n: r[n] for n in names} for r in rows}
    return [by_key[k] for k in range(len(windows))]


async def set_goals(conn: Connection, campaign_id: UUID, goals: list[dict[str, Any]]) -> None:
    """Write goal progress (current, achieved) back into the configuration, without a new
    version: progress is the platform's, not a configuration change."""
    await conn.execute(
        "UPDATE campaigns SET config = jsonb_set(config, '{goals}', $2::jsonb) WHERE id = $1", campaign_id, goals
    )


# --- Reading ------------------------------------------------------------------------------


async def sums(conn: Conn, campaign_id: UUID, start: datetime, end: datetime) -> dict[str, Any]:
    row = one(
        await conn.fetchrow(
            f"SELECT {metrics.sql_sum_list()} FROM analytics_rollups r "
            "WHERE r.campaign_id = $1 AND r.bucket >= $2 AND r.bucket < $3",
            campaign_id,
            start,
            end,
        )
    )
    return dict(row)


def _period_key(granularity: str) -> str:
    """The SQL for a bucket's period: its local date (daily) or the instant its local clock
    hour began (hourly) — the same rule as domain.periods.hour_start."""
    if granularity == "daily":
        return "(r.bucket AT TIME ZONE $4)::date"
    return "r.bucket - make_interval(mins => extract(minute FROM r.bucket AT TIME ZONE $4)::int)"


async def series(
    conn: Conn, campaign_id: UUID, start: datetime, end: datetime, tz: str, granularity: str
) -> dict[Any, dict[str, Any]]:
    """Sums per local day or hour over `[start, end)`, keyed by date or hour-start instant."""
    rows = await conn.fetch(
        f"""
        SELECT {_period_key(granularity)} AS period, {metrics.sql_sum_list()}
        FROM analytics_rollups r
        WHERE r.campaign_id = $1 AND r.bucket >= $2 AND r.bucket < $3
        GROUP BY 1
        """,
        campaign_id,
        start,
        end,
        tz,
    )
    return {r["period"]: dict(r) for r in rows}


async def series_many(
    conn: Conn,
    campaign_ids: list[UUID],
    start: datetime,
    end: datetime,
    tz_by_campaign: dict[UUID, str],
    granularity: str,
) -> dict[tuple[UUID, Any], dict[str, Any]]:
    """`series` of a few headline sums (calls, leads, conversions, cost_micros) for one or
    several campaigns at once."""
    if not campaign_ids:
        return {}
    key = _period_key(granularity).replace("$4", "t.tz")
    rows = await conn.fetch(
        f"""
        SELECT r.campaign_id, {key} AS period,
               sum(r.calls_completed + r.calls_failed)::bigint AS calls, sum(r.leads)::bigint AS leads,
               sum(r.conversions)::bigint AS conversions, sum(r.cost_micros)::bigint AS cost_micros
        FROM unnest($1::uuid[], $4::text[]) AS t(campaign_id, tz)
        JOIN analytics_rollups r ON r.campaign_id = t.campaign_id
        WHERE r.bucket >= $2 AND r.bucket < $3
        GROUP BY 1, 2
        """,
        campaign_ids,
        start,
        end,
        [tz_by_campaign[c] for c in campaign_ids],
    )
    return {(r["campaign_id"], r["period"]): dict(r) for r in rows}


async def organization_summaries(conn: Conn, organization_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT p.* FROM campaign_performance p JOIN campaigns c ON c.id = p.campaign_id
        WHERE p.organization_id = $1 AND c.status <> 'archived'
        """,
        organization_id,
    )


async def first_event_bucket(conn: Conn, campaign_id: UUID) -> datetime | None:
    return await conn.fetchval("SELECT min(bucket) FROM analytics_rollups WHERE campaign_id = $1", campaign_id)


async def events_page(
    conn: Conn,
    campaign_id: UUID,
    start: datetime,
    end: datetime,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` of the campaign's events in `[start, end)` by time, after the
    (occurred_at, event_id) of the last one read: one short query per page, so an export
    never holds a connection while its client reads."""
    after_at, after_id = after if after is not None else (start, "")
    return await conn.fetch(
        """
        SELECT event_id, type, occurred_at, received_at, variant_id, subject_id, call_id, data::text AS data
        FROM analytics_events
        WHERE campaign_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND (occurred_at, event_id) > ($4, $5)
        ORDER BY occurred_at, event_id LIMIT $6
        """,
        campaign_id,
        start,
        end,
        after_at,
        after_id,
        limit,
    )


async def rollup_span(conn: Conn, campaign_id: UUID, start: datetime, end: datetime) -> asyncpg.Record:
    """The first and last slot with figures in `[start, end)` (both NULL when none)."""
    return one(
        await conn.fetchrow(
            """
        SELECT min(bucket) AS first, max(bucket) AS last FROM analytics_rollups
        WHERE campaign_id = $1 AND bucket >= $2 AND bucket < $3
        """,
            campaign_id,
            start,
            end,
        )
    )


async def rollup_periods(
    conn: Conn,
    campaign_id: UUID,
    start: datetime,
    end: datetime,
    tz: str,
    granularity: str,
    *,
    periods: tuple[Any, Any],
    slots: tuple[datetime, datetime],
) -> list[asyncpg.Record]:
    """Sums per local hour or day (and variant) of the slots in `[start, end)`, for the
    periods in `[periods[0], periods[1])` (dates when daily, instants when hourly), oldest
    first. `slots` bounds the slots read: it must hold every slot of those periods. One
    short query per window, so an export pages through a long range without holding a
    connection, and no period is ever split between two windows."""
    key = _period_key(granularity)
    return await conn.fetch(
        f"""
        SELECT {key} AS period, r.variant_id, {metrics.sql_sum_list()}
        FROM analytics_rollups r
        WHERE r.campaign_id = $1 AND r.bucket >= $2 AND r.bucket < $3 AND r.bucket >= $5 AND r.bucket < $6
          AND {key} >= $7 AND {key} < $8
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        campaign_id,
        start,
        end,
        tz,
        slots[0],
        slots[1],
        periods[0],
        periods[1],
    )


# --- Retention ------------------------------------------------------------------------------

# One maintenance pass at a time, across processes.
_MAINTENANCE_LOCK = 7_240_311


async def try_lock_maintenance(conn: Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _MAINTENANCE_LOCK))


async def ensure_event_partitions(conn: Conn, first: date, last: date) -> None:
    """The monthly partitions of analytics_events covering `first` to `last` (created if missing)."""
    await conn.execute(
        "SELECT analytics_events_partition(m::date) "
        "FROM generate_series(date_trunc('month', $1::date), $2::date, interval '1 month') AS m",
        first,
        last,
    )


async def event_partitions(conn: Conn) -> list[tuple[str, date]]:
    """The partitions of analytics_events and the first day of their month, oldest first."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'analytics_events'::regclass"
    )
    out = []
    for (name,) in rows:
        year, month = name.removeprefix("analytics_events_").split("_")
        out.append((name, date(int(year), int(month), 1)))
    return sorted(out, key=lambda p: p[1])


async def drop_event_partition(conn: Connection, name: str, until: datetime) -> None:
    """Drop a partition whose events all lie before `until`, and remember that none do now."""
    assert name.startswith("analytics_events_") and name.removeprefix("analytics_events_").replace("_", "").isdigit()
    await conn.execute(f'DROP TABLE "{name}"')
    await conn.execute("UPDATE analytics_retention SET dropped_before = greatest(dropped_before, $1)", until)


async def dropped_before(conn: Conn) -> datetime:
    """Events before this instant have been dropped (-infinity: none)."""
    return await conn.fetchval("SELECT dropped_before FROM analytics_retention")


async def forget_event_ids(conn: Conn, before: datetime, *, chunk: int = 50_000) -> int:
    """Delete up to `chunk` ids of events before `before` (their partitions are gone)."""
    status = await conn.execute(
        "DELETE FROM analytics_event_ids WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM analytics_event_ids WHERE occurred_at < $1 LIMIT $2))",
        before,
        chunk,
    )
    return int(status.split()[-1])


# --- Rebuilding -----------------------------------------------------------------------------


def _scope(campaign_ids: list[UUID] | None, column: str = "campaign_id", arg: int = 1) -> str:
    return f"{column} = ANY(${arg}::uuid[])" if campaign_ids is not None else "TRUE"


async def rebuild_rollups(conn: Connection, campaign_ids: list[UUID] | None) -> int:
    """Recompute the rollups from the record (the same rules as the ingest path). Slots whose
    events were dropped by the retention keep their rollups."""
    args = [campaign_ids] if campaign_ids is not None else []
    await conn.execute(
        f"DELETE FROM analytics_rollups WHERE {_scope(campaign_ids)} "
        "AND bucket >= (SELECT dropped_before FROM analytics_retention)",
        *args,
    )
    status = await conn.execute(
        f"""
        INSERT INTO analytics_rollups (campaign_id, bucket, variant_id, {", ".join(metrics.NAMES)})
        SELECT campaign_id, to_timestamp(floor(extract(epoch FROM occurred_at) / {BUCKET_SECONDS}) * {BUCKET_SECONDS}),
               coalesce(variant_id, ''),
               {metrics.sql_select_list()}
        FROM analytics_events WHERE {_scope(campaign_ids)}
        GROUP BY 1, 2, 3
        """,
        *args,
    )
    return int(status.split()[-1])


async def rebuild_performance(conn: Connection, campaign_ids: list[UUID] | None) -> None:
    """Recompute the summary from the rollups (campaigns without events go back to zero)."""
    args = [campaign_ids] if campaign_ids is not None else []
    categories = ", ".join(
        f"'{c}', round(coalesce(s.cost_{c}_micros, 0)::numeric / {metrics.MICROS}, 6)" for c in metrics.COST_CATEGORIES
    )
    await conn.execute(
        f"""
        UPDATE campaign_performance p SET
            total_calls = coalesce(s.calls_completed + s.calls_failed, 0),
            completed_calls = coalesce(s.calls_completed, 0),
            connected_calls = coalesce(s.calls_connected, 0),
            failed_calls = coalesce(s.calls_failed, 0),
            qualified_leads = coalesce(s.leads, 0),
            conversions = coalesce(s.conversions, 0),
            duration_sum = coalesce(s.duration_sum, 0),
            widget_clicks = coalesce(s.widget_clicks, 0),
            total_cost = coalesce(s.cost_micros, 0)::numeric / {metrics.MICROS},
            revenue = coalesce(s.revenue_micros, 0)::numeric / {metrics.MICROS},
            cost_by_category = jsonb_build_object({categories}),
            last_event_at = coalesce(e.last_event_at, p2.last_event_at),
            updated_at = now()
        FROM campaign_performance p2
        LEFT JOIN (
            SELECT campaign_id, {", ".join(f"sum({n}) AS {n}" for n in metrics.NAMES)}
            FROM analytics_rollups WHERE {_scope(campaign_ids)} GROUP BY campaign_id
        ) s ON s.campaign_id = p2.campaign_id
        LEFT JOIN (
            SELECT campaign_id, max(occurred_at) AS last_event_at
            FROM analytics_events WHERE {_scope(campaign_ids)} GROUP BY campaign_id
        ) e ON e.campaign_id = p2.campaign_id
        WHERE p.campaign_id = p2.campaign_id AND {_scope(campaign_ids, "p.campaign_id")}
        """,
        *args,
    )
    ids = (
        campaign_ids
        if campaign_ids is not None
        else [r[0] for r in await conn.fetch("SELECT campaign_id FROM campaign_performance")]
    )
    await conn.execute(_DERIVE_PERFORMANCE, ids)


async def recent_buckets(conn: Connection, campaign_ids: list[UUID] | None, since: datetime) -> list[asyncpg.Record]:
    args: list[Any] = [since] + ([campaign_ids] if campaign_ids is not None else [])
    return await conn.fetch(
        f"""
        SELECT r.campaign_id, r.bucket, {metrics.sql_sum_list()}
        FROM analytics_rollups r WHERE bucket >= $1 AND {_scope(campaign_ids, arg=2)}
        GROUP BY 1, 2
        """,
        *args,
    )


async def recent_calls(conn: Connection, campaign_ids: list[UUID] | None, since: datetime) -> list[asyncpg.Record]:
    """Each call seen since `since`: when it started and when it ended (None if not yet)."""
    args: list[Any] = [since] + ([campaign_ids] if campaign_ids is not None else [])
    return await conn.fetch(
        f"""
        SELECT campaign_id, call_id,
               min(occurred_at) FILTER (WHERE type = 'call.started') AS started,
               max(occurred_at) FILTER (WHERE type IN ('call.completed', 'call.failed')) AS ended
        FROM analytics_events
        WHERE occurred_at >= $1 AND call_id IS NOT NULL AND type LIKE 'call.%' AND {_scope(campaign_ids, arg=2)}
        GROUP BY 1, 2
        """,
        *args,
    )
