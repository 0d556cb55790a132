"""Calling windows: the instants a campaign may call, computed from its schedule.

One pure module, used by the campaign workflow (for its timers), the schedule preview
and the dial check, so the three always agree.

How a schedule becomes UTC instants:

1. In local wall-clock time: the weekly `windows` (every hour when no day has a range),
   minus each blackout date (the whole local day, 00:00 to 24:00), cut to
   `startAt`/`endAt`, and merged where they touch (Monday 20:00-24:00 followed by Tuesday
   00:00-06:00 is one window, open across midnight).
2. Each boundary becomes an instant by the one DST rule of `timeutil` (a skipped time moves
   forward by the gap; a repeated time is its first occurrence). A window whose boundaries
   come out in the wrong order (it lies inside a spring-forward gap) is empty that day;
   windows that come out overlapping are merged.
3. A `recurrence` then keeps only the parts inside its run windows: in the workflow, the
   run windows its Temporal Schedule actually opened; in previews and dial checks, the
   run windows the recurrence predicts. Its occurrences follow the same DST rule, and
   there is one run per instant: an occurrence the clock skips, moved forward onto the
   instant of another occurrence, is that other occurrence (`_merged_away`).

Everything is lazy and bounded by a horizon, so a question about the next change costs
the work up to that change, not the campaign's whole life.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from campaigns.domain.config import (
    WEEKDAYS,
    CampaignSchedule,
    Recurrence,
    WeeklyRanges,
    parse_range,
)
from campaigns.domain.timeutil import clock_shift, local_to_utc, readings, utc_to_local, zone

HORIZON = timedelta(days=3 * 366)
"""How far ahead a timeline looks for its next change (a yearly recurrence whose next
occurrence falls on a blackout date still has one within it)."""

_MAX_SHIFT = timedelta(days=2)  # more than any clock change ever moved a local time (Samoa 2011: 1 day)
_WEEK = 7 * 1440
_FIRE_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    """A span during which calling is open. `opens_at` None: open since before anything
    the schedule defines; `closes_at` None: it never closes."""

    opens_at: datetime | None
    closes_at: datetime | None

    def contains(self, at: datetime) -> bool:
        return (self.opens_at is None or self.opens_at <= at) and (self.closes_at is None or at < self.closes_at)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a recurrence: its nominal local time and its run window."""

    local: datetime
    starts_at: datetime
    ends_at: datetime
    clock_shift: str | None  # 'gap' / 'repeat' when the clock skips / repeats `local` that day

    @property
    def key(self) -> str:
        return self.local.isoformat(timespec="minutes")

    @property
    def window(self) -> Window:
        return Window(self.starts_at, self.ends_at)


# --- Ordering with open ends ---------------------------------------------------------------
# None means "since forever" as an opening and "forever" as a closing.


def _opens_before(a: datetime | None, b: datetime | None) -> bool:
    return a is None or (b is not None and a < b)


def _later_close(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else max(a, b)


def _earlier_close(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _later_open(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# --- Step 1: local wall-clock windows ------------------------------------------------------

LocalSpan = tuple[datetime | None, datetime | None]


def weekly_spans(ranges: WeeklyRanges) -> list[tuple[int, int]] | None:
    """The weekly ranges as merged (start, end) minutes after Monday 00:00 (a Sunday range
    crossing midnight ends after minute 10080). None when they cover every minute."""
    spans: list[tuple[int, int]] = []
    for day, texts in ranges.items():
        base = WEEKDAYS.index(day) * 1440
        for text in texts:
            s, e = parse_range(text)
            spans.append((base + s, base + (e if e > s else e + 1440)))
    if not spans:
        return None
    spans = _merge_minutes(spans)
    folded = _merge_minutes([p for s, e in spans for p in ([(s, e)] if e <= _WEEK else [(s, _WEEK), (0, e - _WEEK)])])
    return None if folded == [(0, _WEEK)] else spans


def _merge_minutes(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _weekly_local(spans: list[tuple[int, int]] | None, since: datetime, until: datetime) -> Iterator[LocalSpan]:
    """Local windows from the weekly pattern, from the week of eight days before `since`
    (windows chained across days last less than a week, and a clock change moves them by
    less than a day) until a window starts after `until`. A pattern covering every minute is
    one endless window."""
    if spans is None:
        yield (None, None)
        return
    first = since.date() - timedelta(days=8)
    week = datetime.combine(first - timedelta(days=first.weekday()), time())
    carry: list[datetime] | None = None
    while True:  # ends: a pattern that is not the whole week has a gap every week
        for s, e in spans:
            a, b = week + timedelta(minutes=s), week + timedelta(minutes=e)
            if carry is None:
                carry = [a, b]
            elif a <= carry[1]:
                carry[1] = max(carry[1], b)
            else:
                yield (carry[0], carry[1])
                if a > until:
                    return
                carry = [a, b]
        week += timedelta(days=7)


def _without_days(spans: Iterable[LocalSpan], days: Sequence[date]) -> Iterator[LocalSpan]:
    """Remove whole local days (blackout dates) from the spans."""
    cuts: list[list[datetime]] = []
    for d in sorted(set(days)):
        day_start, day_end = datetime.combine(d, time()), datetime.combine(d + timedelta(days=1), time())
        if cuts and cuts[-1][1] == day_start:
            cuts[-1][1] = day_end
        else:
            cuts.append([day_start, day_end])
    i = 0
    for a, b in spans:
        while i < len(cuts) and a is not None and cuts[i][1] <= a:
            i += 1
        j = i
        while a is None or b is None or a < b:
            if j >= len(cuts) or (b is not None and cuts[j][0] >= b):
                yield (a, b)
                break
            cut_a, cut_b = cuts[j]
            if a is None or a < cut_a:
                yield (a, cut_a)
            a = cut_b if a is None else max(a, cut_b)
            j += 1


def _clipped(spans: Iterable[LocalSpan], start: datetime | None, end: datetime | None) -> Iterator[LocalSpan]:
    for a, b in spans:
        if end is not None and a is not None and a >= end:
            return
        a, b = _later_open(a, start), _earlier_close(b, end)
        if a is None or b is None or a < b:
            yield (a, b)


# --- Step 2: instants ----------------------------------------------------------------------


def _resolved(spans: Iterable[LocalSpan], tz: str) -> Iterator[Window]:
    for a, b in spans:
        opens = None if a is None else local_to_utc(a, tz)
        closes = None if b is None else local_to_utc(b, tz)
        if opens is None or closes is None or opens < closes:
            yield Window(opens, closes)


def _in_order(windows: Iterable[Window]) -> Iterator[Window]:
    """Sort a stream that is in order except for windows a clock change moved forward
    (by less than _MAX_SHIFT)."""
    pending: list[tuple[datetime, int, Window]] = []
    n = 0
    for w in windows:
        if w.opens_at is None:
            yield w  # only ever first
            continue
        while pending and pending[0][0] < w.opens_at - _MAX_SHIFT:
            yield heapq.heappop(pending)[2]
        heapq.heappush(pending, (w.opens_at, n, w))
        n += 1
    while pending:
        yield heapq.heappop(pending)[2]


def _merged(windows: Iterable[Window]) -> Iterator[Window]:
    """Merge windows (in order of opening) that overlap or touch."""
    carry: Window | None = None
    for w in windows:
        if carry is not None and (carry.closes_at is None or not _opens_before(carry.closes_at, w.opens_at)):
            carry = Window(carry.opens_at, _later_close(carry.closes_at, w.closes_at))
            continue
        if carry is not None:
            yield carry
        carry = w
    if carry is not None:
        yield carry


def _intersection(xs: Iterator[Window], ys: Iterator[Window]) -> Iterator[Window]:
    x, y = next(xs, None), next(ys, None)
    while x is not None and y is not None:
        lo, hi = _later_open(x.opens_at, y.opens_at), _earlier_close(x.closes_at, y.closes_at)
        if lo is None or hi is None or lo < hi:
            yield Window(lo, hi)
        if x.closes_at is None and y.closes_at is None:
            return
        if y.closes_at is None or (x.closes_at is not None and x.closes_at <= y.closes_at):
            x = next(xs, None)
        else:
            y = next(ys, None)


# --- Recurrence ----------------------------------------------------------------------------


def matches(recurrence: Recurrence, day: date) -> bool:
    """Whether the recurrence occurs on this local date (every given list must match)."""
    r = recurrence
    return (
        (not r.months or day.month in r.months)
        and (not r.days_of_week or WEEKDAYS[day.weekday()] in r.days_of_week)
        and (not r.days_of_month or day.day in r.days_of_month)
        and (not r.weeks_of_month or (day.day - 1) // 7 + 1 in r.weeks_of_month)
    )


def _occurrence(recurrence: Recurrence, tz: str, local: datetime) -> Occurrence:
    starts, other = readings(local, tz)  # the rule's instant first
    shift = None if starts == other else clock_shift(local, tz)
    return Occurrence(local, starts, starts + timedelta(minutes=recurrence.duration_minutes), shift)


def _merged_away(recurrence: Recurrence, tz: str, occ: Occurrence) -> bool:
    """One run per instant: a time the clock skips, moved forward by the gap onto the very
    instant of another occurrence (01:00 and 02:00 on a night the clock jumps 01:00→02:00),
    is that occurrence, known by the time the clock shows."""
    if occ.clock_shift != "gap":
        return False
    shown = utc_to_local(occ.starts_at, tz)
    return (
        matches(recurrence, shown.date())
        and shown.hour * 60 + shown.minute in recurrence.minutes()
        and local_to_utc(shown, tz) == occ.starts_at
    )


def _on_day(recurrence: Recurrence, tz: str, day: date) -> Iterator[Occurrence]:
    """The day's occurrences by local time, one per instant."""
    if not matches(recurrence, day):
        return
    midnight = datetime.combine(day, time())
    for m in recurrence.minutes():
        occ = _occurrence(recurrence, tz, midnight + timedelta(minutes=m))
        if not _merged_away(recurrence, tz, occ):
            yield occ


def occurrences(recurrence: Recurrence, tz: str, since: datetime, until: datetime) -> Iterator[Occurrence]:
    """Occurrences whose run window ends after `since` and that start by `until`, by local time."""
    # Occurrences of the last days may still be running at `since`.
    day = utc_to_local(since, tz).date() - timedelta(days=recurrence.duration_minutes // 1440 + 2)
    last = utc_to_local(until, tz).date() + timedelta(days=1)
    while day <= last:
        for occ in _on_day(recurrence, tz, day):
            if occ.ends_at > since and occ.starts_at <= until:
                yield occ
        day += timedelta(days=1)


def match_fire(recurrence: Recurrence, tz: str, fired_at: datetime) -> Occurrence | None:
    """The occurrence a Schedule action fired at `fired_at` stands for: one whose local time
    reads `fired_at` under either offset of its day. None: a fire at no occurrence's time
    (an action triggered by hand)."""
    day = utc_to_local(fired_at, tz).date()
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        for occ in _on_day(recurrence, tz, d):
            if any(abs(r - fired_at) <= _FIRE_TOLERANCE for r in readings(occ.local, tz)):
                return occ
    return None


# --- Timelines -----------------------------------------------------------------------------

Source = Callable[[datetime, datetime], Iterator[Window]]


class Timeline:
    """Open windows in order, from a source that yields them lazily for (since, until)."""

    def __init__(self, source: Source, horizon: timedelta = HORIZON) -> None:
        self._source = source
        self.horizon = horizon

    def windows(self, since: datetime, until: datetime | None = None) -> Iterator[Window]:
        """Windows still open at or after `since` (the one containing it first), opening by `until`."""
        until = until or since + self.horizon
        for w in self._source(since, until):
            if w.closes_at is not None and w.closes_at <= since:
                continue
            if w.opens_at is not None and w.opens_at > until:
                return
            yield w

    def window_at(self, at: datetime) -> Window | None:
        w = next(self.windows(at, at), None)
        return w if w is not None and w.contains(at) else None

    def is_open(self, at: datetime) -> bool:
        return self.window_at(at) is not None

    def next_change(self, at: datetime) -> datetime | None:
        """The first instant after `at` when open becomes closed or closed becomes open
        (None: no change within the horizon)."""
        for w in self.windows(at):
            if w.contains(at):
                return w.closes_at
            return w.opens_at
        return None

    def next_opening(self, at: datetime) -> datetime | None:
        """`at` if open then, else the next opening (None: none within the horizon)."""
        for w in self.windows(at):
            return at if w.contains(at) else w.opens_at
        return None

    def upcoming(self, since: datetime, count: int) -> list[Window]:
        out: list[Window] = []
        for w in self.windows(since):
            out.append(w)
            if len(out) >= count:
                break
        return out

    def __and__(self, other: Timeline) -> Timeline:
        return Timeline(
            lambda since, until: _intersection(self._source(since, until), other._source(since, until)),
            max(self.horizon, other.horizon),
        )


def weekly_timeline(ranges: WeeklyRanges, tz: str) -> Timeline:
    """Weekly local hours (e.g. a recipient's calling hours) as instants."""
    spans = weekly_spans(ranges)

    def source(since: datetime, until: datetime) -> Iterator[Window]:
        local = _weekly_local(spans, utc_to_local(since, tz), utc_to_local(until, tz) + timedelta(days=1))
        return _merged(_in_order(_resolved(local, tz)))

    return Timeline(source)


def base_timeline(schedule: CampaignSchedule, tz: str) -> Timeline:
    """Weekly windows minus blackout dates, between start and end: steps 1 and 2 above."""
    spans = weekly_spans(schedule.windows)
    blackouts = sorted(set(schedule.blackout_dates))

    def source(since: datetime, until: datetime) -> Iterator[Window]:
        local_since = utc_to_local(since, tz)
        days = blackouts
        if spans is None:
            # Open at every hour but blackout days: the blackouts before the last one up to
            # `since` change nothing after it (and there may be a thousand of them).
            days = blackouts[max(bisect.bisect_right(blackouts, local_since.date()) - 1, 0) :]
        local = _weekly_local(spans, local_since, utc_to_local(until, tz) + timedelta(days=1))
        local = _clipped(_without_days(local, days), schedule.start_at, schedule.end_at)
        return _merged(_in_order(_resolved(local, tz)))

    return Timeline(source)


def run_timeline(runs: Iterable[Window]) -> Timeline:
    ordered = sorted(runs, key=lambda w: (w.opens_at is not None, w.opens_at))
    return Timeline(lambda since, until: _merged(iter(ordered)))


def predicted_runs(recurrence: Recurrence, tz: str) -> Timeline:
    return Timeline(
        lambda since, until: _merged(_in_order(o.window for o in occurrences(recurrence, tz, since, until)))
    )


def campaign_timeline(schedule: CampaignSchedule, tz: str, *, runs: Iterable[Window] | None = None) -> Timeline:
    """When the campaign may call. With a recurrence, only inside run windows: `runs` are
    the ones actually opened (the workflow's view); None predicts them (preview, dial check)."""
    base = base_timeline(schedule, tz)
    if schedule.recurrence is None:
        return base
    return base & (predicted_runs(schedule.recurrence, tz) if runs is None else run_timeline(runs))


def shifted_occurrences(recurrence: Recurrence, tz: str, since: datetime, until: datetime) -> Iterator[Occurrence]:
    """Occurrences whose local time the clock skips or repeats that day, starting in
    (since, until]. Temporal's calendar handles those differently from our rule (it skips a
    skipped time, and fires a repeated one once or twice depending on the zone), so the
    Schedule leaves them out and the campaign workflow opens them itself, at the rule's
    instant. Only the days on which the clock changes are looked at."""
    z = zone(tz)
    day = utc_to_local(since, tz).date() - timedelta(days=1)
    last = utc_to_local(until, tz).date() + timedelta(days=1)
    while day <= last:
        midnight = datetime.combine(day, time(), tzinfo=z)
        if midnight.utcoffset() != (midnight + timedelta(days=1)).utcoffset():
            for occ in _on_day(recurrence, tz, day):
                if occ.clock_shift is not None and since < occ.starts_at <= until:
                    yield occ
        day += timedelta(days=1)
