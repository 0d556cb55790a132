"""Time windows in a campaign's timezone: today, this week, this month, trend periods.

Aggregates are kept per 15-minute UTC slot ("bucket"). Every UTC offset in use is a
multiple of 15 minutes, so a local day or hour — in any timezone, across DST changes — is
an exact union of buckets: "today" is exact wherever the campaign is. Windows are
half-open `[start, end)` UTC instants; local times that DST skips or repeats follow the
rule in `timeutil`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from campaigns.domain.timeutil import local_to_utc, utc_to_local

BUCKET_SECONDS = 900


def bucket_of(instant: datetime) -> int:
    """The bucket number (15-minute slots since the epoch) holding `instant`."""
    return int(instant.timestamp()) // BUCKET_SECONDS


def bucket_start(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * BUCKET_SECONDS, UTC)


def local_date(instant: datetime, tz: str) -> date:
    return utc_to_local(instant, tz).date()


def day_start(day: date, tz: str) -> datetime:
    """The instant local `day` begins (its first existing minute, if midnight is skipped)."""
    return local_to_utc(datetime.combine(day, time()), tz)


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    return day_start(day, tz), day_start(day + timedelta(days=1), tz)


def today(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """Today in the campaign's timezone, as a UTC window."""
    return day_window(local_date(now, tz), tz)


def next_midnight(now: datetime, tz: str) -> datetime:
    return today(now, tz)[1]


def week_window(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The local ISO week (Monday to Sunday) holding `now`."""
    d = local_date(now, tz)
    monday = d - timedelta(days=d.weekday())
    return day_start(monday, tz), day_start(monday + timedelta(days=7), tz)


def month_window(now: datetime, tz: str) -> tuple[datetime, datetime]:
    d = local_date(now, tz)
    first = d.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return day_start(first, tz), day_start(following, tz)


def local_days(start: datetime, end: datetime, tz: str) -> Iterator[tuple[date, datetime, datetime]]:
    """The local days overlapping `[start, end)`: (day, its start, its end)."""
    d = local_date(start, tz)
    while True:
        s, e = day_window(d, tz)
        if s >= end:
            return
        yield d, s, e
        d += timedelta(days=1)


def hour_start(instant: datetime, tz: str) -> datetime:
    """The instant the local clock hour holding `instant` began (the same rule as the SQL
    that groups rollups by hour: subtract the local minutes)."""
    local = utc_to_local(instant, tz)
    return instant.replace(second=0, microsecond=0) - timedelta(minutes=local.minute)


def hour_starts(start: datetime, end: datetime, tz: str) -> list[datetime]:
    """The local hours overlapping `[start, end)`, by their starting instants. On a fall-back
    night the repeated wall-clock hour appears twice: they are two different hours."""
    return list(_hour_starts(bucket_of(start), bucket_of(end - timedelta(microseconds=1)), tz))


@lru_cache(maxsize=4096)
def _hour_starts(first: int, last: int, tz: str) -> tuple[datetime, ...]:
    # Memoised: every read of a campaign asks for the same 24 hours until the next slot.
    out: list[datetime] = []
    for bucket in range(first, last + 1):
        h = hour_start(bucket_start(bucket), tz)
        if not out or out[-1] != h:
            out.append(h)
    return tuple(out)
