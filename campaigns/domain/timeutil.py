"""Local wall-clock times in a campaign's timezone, turned into instants.

The one rule for times the clock skips or repeats (used by the API, the workflow and
the schedule preview alike):

* a local time inside a spring-forward gap is moved forward by the length of the gap
  (02:30 on a day the clock jumps 02:00→03:00 becomes 03:30 in the new offset);
* a local time that occurs twice at a fall-back means its first occurrence
  (the earlier instant, still in the summer offset).

Both are what `zoneinfo` gives for `fold=0`, which is why the code is this short.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo


@cache
def zone(name: str) -> ZoneInfo:
    # ZoneInfo keeps only a handful of zones strongly; with campaigns in dozens of zones,
    # the rest were read from disk again on every call (the tz data is fixed per release).
    return ZoneInfo(name)


def local_to_utc(local: datetime, tz: str) -> datetime:
    """A naive local date-time in zone `tz` → an aware UTC instant, by the rule above."""
    if local.tzinfo is not None:
        raise ValueError("expected a naive local date-time")
    return _local_to_utc(local, tz)


@lru_cache(maxsize=1 << 16)
def _local_to_utc(local: datetime, tz: str) -> datetime:
    # Pure, and asked again and again for the same window boundaries: worth remembering.
    return local.replace(tzinfo=zone(tz), fold=0).astimezone(UTC)


def utc_to_local(instant: datetime, tz: str) -> datetime:
    """An aware instant → the naive wall-clock time in zone `tz`."""
    return instant.astimezone(zone(tz)).replace(tzinfo=None)


def readings(local: datetime, tz: str) -> tuple[datetime, datetime]:
    """Both instants a local time could mean: the rule's (fold=0) and the other reading
    (fold=1). They differ only when the clock skips or repeats that local time."""
    z = zone(tz)
    return (
        local.replace(tzinfo=z, fold=0).astimezone(UTC),
        local.replace(tzinfo=z, fold=1).astimezone(UTC),
    )


def clock_shift(local: datetime, tz: str) -> str | None:
    """'gap' if zone `tz` skips this local time, 'repeat' if it shows it twice, else None."""
    first, second = readings(local, tz)
    if first == second:
        return None
    return "repeat" if utc_to_local(first, tz) == local else "gap"
