"""Keeping the event record's partitions: months ahead created, months past the retention dropped.

`analytics_events` has one partition per UTC month. The refresher calls `maintain` at start
and every hour (one process at a time): it makes sure the partitions from the oldest month
an event may still be accepted for (a year back, or the retention if shorter) to two months
ahead exist, and drops the partitions whose whole month is older than the retention
(`ANALYTICS_RETENTION_DAYS`; 0 keeps everything). Dropping a month removes its events, then
their ids; the rollups, the summary and everything derived stay, and a rebuild leaves the
rollups of dropped months as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from campaigns.analytics import repository as repo
from campaigns.domain.analytics_events import MAX_AGE

log = logging.getLogger("campaigns.analytics.retention")

AHEAD = timedelta(days=62)  # partitions made in advance: two months


@dataclass
class Maintained:
    dropped: list[str] = field(default_factory=list)
    ids_forgotten: int = 0
    ran: bool = True  # False: another process was at it


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


async def maintain(pool: asyncpg.Pool, *, retention_days: int, now: datetime | None = None) -> Maintained:
    """One maintenance pass (see the module's docstring)."""
    now = now or datetime.now(UTC)
    horizon = now - timedelta(days=retention_days) if retention_days > 0 else None
    oldest_accepted = max(now - MAX_AGE, horizon) if horizon else now - MAX_AGE
    out = Maintained()
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await repo.try_lock_maintenance(conn):
                return Maintained(ran=False)
            await repo.ensure_event_partitions(conn, oldest_accepted.date(), (now + AHEAD).date())
            if horizon is not None:
                for name, first in await repo.event_partitions(conn):
                    end = datetime.combine(_next_month(first), time(), UTC)
                    if end <= horizon:
                        await repo.drop_event_partition(conn, name, end)
                        out.dropped.append(name)
        if out.dropped:
            log.info("dropped event partitions past the retention of %d days: %s", retention_days, out.dropped)
        # Ids of dropped months, in short transactions of their own (resumed next time if cut short).
        before = await repo.dropped_before(conn)
        if before is not None and before.year > 1:  # -infinity: nothing was ever dropped
            while forgotten := await repo.forget_event_ids(conn, before):
                out.ids_forgotten += forgotten
    return out
