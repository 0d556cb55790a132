"""Streamed exports: a campaign's events (or its hourly / daily figures) as CSV, JSON or
NDJSON, in constant memory however large the range.

Rows are read a page at a time, each page one short query (keyset pagination for events,
windows of whole periods for figures), and leave as encoded chunks: nothing holds the
whole result, and no pool connection waits while a slow client reads.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or
carriage return) are prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from campaigns.analytics import repository as repo
from campaigns.domain import metrics
from campaigns.domain.timeutil import zone

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
DATASETS = ("events", "hourly", "daily")
CHUNK_ROWS = 1000
# Figures are read a window of whole periods at a time (at most a few thousand rows).
DAILY_WINDOW = timedelta(days=366)
HOURLY_WINDOW = timedelta(days=14)

EVENT_FIELDS = ("id", "type", "occurredAt", "receivedAt", "variantId", "subjectId", "callId")
DATA_FIELDS = (
    "durationSec",
    "outcome",
    "satisfaction",
    "waitSec",
    "direction",
    "reason",
    "score",
    "revenue",
    "amount",
    "category",
    "ms",
)
_TEXT_FIELDS = {"id", "variantId", "subjectId", "callId", "reason"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


# The figures of a period row: raw sums (money in currency units) and the usual rates.
_SUM_FIELDS = tuple((_camel(m.name.removesuffix("_micros")), m.name) for m in metrics.METRICS if m.kind != "square")
_RATE_FIELDS = ("conversionRate", "connectRate", "averageCallDuration", "costPerLead", "roi")
PERIOD_FIELDS = ("period", "variantId", *(f for f, _ in _SUM_FIELDS), *_RATE_FIELDS)


def _safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _event_row(r: asyncpg.Record) -> dict[str, Any]:
    data = orjson.loads(r["data"])
    return {
        "id": r["event_id"],
        "type": r["type"],
        "occurredAt": r["occurred_at"].isoformat(),
        "receivedAt": r["received_at"].isoformat(),
        "variantId": r["variant_id"],
        "subjectId": r["subject_id"],
        "callId": r["call_id"],
        "data": data,
    }


def _event_csv(row: dict[str, Any]) -> list[Any]:
    data = row["data"]
    cells = [row[f] for f in EVENT_FIELDS] + [data.get(f) for f in DATA_FIELDS]
    names = EVENT_FIELDS + DATA_FIELDS
    return [_safe_cell(v) if n in _TEXT_FIELDS else v for n, v in zip(names, cells, strict=True)]


def _period_row(r: asyncpg.Record, granularity: str, tz: str) -> dict[str, Any]:
    period = r["period"]
    label = period.isoformat() if granularity == "daily" else period.astimezone(zone(tz)).isoformat(timespec="minutes")
    row: dict[str, Any] = {"period": label, "variantId": r["variant_id"] or None}
    for field, name in _SUM_FIELDS:
        value = r[name]
        row[field] = metrics.money(value) if name.endswith("_micros") else value
    f = metrics.derive(dict(r))
    row.update(
        conversionRate=f.conversion_rate,
        connectRate=f.connect_rate,
        averageCallDuration=f.average_call_duration,
        costPerLead=f.cost_per_lead,
        roi=f.roi,
    )
    return row


class _Encoder:
    """Turns rows into the bytes of one format."""

    def __init__(self, fmt: str, header: list[str], meta: dict[str, Any], to_csv: Callable[[dict], list[Any]]):
        self.fmt, self.header, self.meta, self.to_csv = fmt, header, meta, to_csv
        self.first = True

    def start(self) -> bytes:
        if self.fmt == "csv":
            return self._csv([self.header])
        if self.fmt == "json":
            head = orjson.dumps(self.meta)[:-1]  # the metadata object, left open
            return head + b',"rows":['
        return b""

    def rows(self, rows: list[dict[str, Any]]) -> bytes:
        if self.fmt == "csv":
            return self._csv([self.to_csv(r) for r in rows])
        if self.fmt == "ndjson":
            return b"".join(orjson.dumps(r) + b"\n" for r in rows)
        body = b",".join(orjson.dumps(r) for r in rows)
        if not self.first and body:
            body = b"," + body
        self.first = self.first and not body
        return body

    def end(self) -> bytes:
        return b"]}" if self.fmt == "json" else b""

    @staticmethod
    def _csv(rows: list[list[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode()


def filename(campaign_id: UUID, dataset: str, start: datetime, end: datetime, fmt: str) -> str:
    last = end - timedelta(seconds=1)
    return f"campaign-{campaign_id}-{dataset}-{start:%Y%m%d}-{last:%Y%m%d}.{fmt}"


async def _event_pages(
    pool: asyncpg.Pool, campaign_id: UUID, start: datetime, end: datetime
) -> AsyncIterator[list[asyncpg.Record]]:
    after = None
    while True:
        page = await repo.events_page(pool, campaign_id, start, end, after=after, limit=CHUNK_ROWS)
        if page:
            yield page
        if len(page) < CHUNK_ROWS:
            return
        after = (page[-1]["occurred_at"], page[-1]["event_id"])


async def _period_pages(
    pool: asyncpg.Pool, campaign_id: UUID, start: datetime, end: datetime, tz: str, granularity: str
) -> AsyncIterator[list[asyncpg.Record]]:
    span = await repo.rollup_span(pool, campaign_id, start, end)
    if span["first"] is None:
        return
    first, last = span["first"], span["last"]
    periods: Any
    if granularity == "daily":
        local = zone(tz)
        day, last_day = first.astimezone(local).date(), last.astimezone(local).date()
        while day <= last_day:
            upto = min(day + DAILY_WINDOW, last_day + timedelta(days=1))
            # Every slot of a local day lies within a day of its UTC midnight.
            slots = (
                datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=2),
                datetime.combine(upto, datetime.min.time(), UTC) + timedelta(days=2),
            )
            yield await repo.rollup_periods(
                pool, campaign_id, start, end, tz, granularity, periods=(day, upto), slots=slots
            )
            day = upto
    else:
        # A slot's local hour began at most an hour before it.
        hour = first - timedelta(hours=1)
        while hour <= last:
            upto = hour + HOURLY_WINDOW
            periods = (hour, upto)
            yield await repo.rollup_periods(
                pool, campaign_id, start, end, tz, granularity, periods=periods, slots=(hour, upto + timedelta(hours=1))
            )
            hour = upto


async def stream(
    pool: asyncpg.Pool,
    *,
    campaign_id: UUID,
    dataset: str,
    fmt: str,
    start: datetime,
    end: datetime,
    tz: str,
) -> AsyncIterator[bytes]:
    """The export's bytes, chunk by chunk. A connection is held only while a page is read."""
    meta = {
        "campaignId": str(campaign_id),
        "dataset": dataset,
        "start": start.astimezone(UTC).isoformat(),
        "end": end.astimezone(UTC).isoformat(),
        "timezone": tz,
        "generatedAt": datetime.now(UTC).isoformat(),
    }
    if dataset == "events":
        header = list(EVENT_FIELDS + DATA_FIELDS)
        encoder = _Encoder(fmt, header, meta, _event_csv)
        convert: Callable[[asyncpg.Record], dict[str, Any]] = _event_row
        pages = _event_pages(pool, campaign_id, start, end)
    else:
        encoder = _Encoder(fmt, list(PERIOD_FIELDS), meta, lambda r: [r[f] for f in PERIOD_FIELDS])

        def convert(r: asyncpg.Record) -> dict[str, Any]:
            return _period_row(r, dataset, tz)

        pages = _period_pages(pool, campaign_id, start, end, tz, dataset)

    yield encoder.start()
    async for page in pages:
        if page:
            yield encoder.rows([convert(record) for record in page])
    yield encoder.end()
