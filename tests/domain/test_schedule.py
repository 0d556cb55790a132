"""Calling windows and the DST rule, as pure functions: worked examples, then properties
over many zones and the clock changes of many years (30- and 45-minute offsets, a
30-minute DST shift, zones that changed their rules, a day that never happened)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from campaigns.domain.config import WEEKDAYS, CampaignSchedule, Recurrence, Weekday, parse_range
from campaigns.domain.schedule import (
    Window,
    campaign_timeline,
    match_fire,
    occurrences,
    shifted_occurrences,
    weekly_timeline,
)
from campaigns.domain.timeutil import clock_shift, local_to_utc, readings, utc_to_local

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_windows(schedule: CampaignSchedule, tz: str, since: datetime, count: int = 20) -> list[tuple[str, str]]:
    return [
        (utc_to_local(w.opens_at, tz).isoformat(timespec="minutes"), utc_to_local(w.closes_at, tz).isoformat(timespec="minutes"))
        for w in campaign_timeline(schedule, tz).upcoming(since, count)
    ]


def sched(**kw) -> CampaignSchedule:
    return CampaignSchedule.model_validate(kw)


# --- The DST rule ---------------------------------------------------------------------------


def test_a_skipped_time_moves_forward_by_the_gap_and_a_repeated_one_is_the_first():
    assert local_to_utc(datetime(2026, 3, 8, 2, 30), NY) == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert clock_shift(datetime(2026, 3, 8, 2, 30), NY) == "gap"
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NY) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not EST
    assert clock_shift(datetime(2026, 11, 1, 1, 30), NY) == "repeat"
    assert clock_shift(datetime(2026, 11, 1, 2, 30), NY) is None
    # Lord Howe moves its clocks by 30 minutes.
    assert local_to_utc(datetime(2026, 10, 4, 2, 15), "Australia/Lord_Howe") == utc(2026, 10, 3, 15, 45)


# --- Windows, worked examples -------------------------------------------------------------


def test_weekly_windows_with_a_range_crossing_midnight():
    s = sched(windows={"monday": ["09:00-12:00", "13:00-17:00"], "friday": ["22:00-02:00"]})
    assert local_windows(s, "Europe/Paris", utc(2026, 12, 1), 4) == [
        ("2026-12-04T22:00", "2026-12-05T02:00"),
        ("2026-12-07T09:00", "2026-12-07T12:00"),
        ("2026-12-07T13:00", "2026-12-07T17:00"),
        ("2026-12-11T22:00", "2026-12-12T02:00"),
    ]
    t = campaign_timeline(s, "Europe/Paris")
    assert t.is_open(local_to_utc(datetime(2026, 12, 5, 1, 0), "Europe/Paris"))  # Saturday 01:00
    assert not t.is_open(local_to_utc(datetime(2026, 12, 5, 2, 0), "Europe/Paris"))


def test_windows_that_touch_across_midnight_are_one_window():
    s = sched(windows={"monday": ["20:00-24:00"], "tuesday": ["00:00-06:00"]})
    assert local_windows(s, "UTC", utc(2026, 12, 2), 1) == [("2026-12-07T20:00", "2026-12-08T06:00")]
    assert local_windows(s, "UTC", utc(2026, 12, 1), 1) == [("2026-11-30T20:00", "2026-12-01T06:00")]


def test_a_blackout_date_is_a_whole_local_day():
    s = sched(windows={"friday": ["22:00-02:00"]}, blackoutDates=["2026-12-05"])  # the Saturday
    assert local_windows(s, "UTC", utc(2026, 12, 4), 2) == [
        ("2026-12-04T22:00", "2026-12-05T00:00"),
        ("2026-12-11T22:00", "2026-12-12T02:00"),
    ]
    s = sched(windows={"friday": ["22:00-02:00"]}, blackoutDates=["2026-12-04"])  # the Friday
    assert local_windows(s, "UTC", utc(2026, 12, 4), 1) == [("2026-12-05T00:00", "2026-12-05T02:00")]


def test_no_windows_means_every_hour_between_start_and_end_except_blackouts():
    s = sched(startAt="2026-12-20T09:00:00", endAt="2027-01-02T18:00:00", blackoutDates=["2026-12-25", "2027-01-01"])
    assert local_windows(s, "Europe/Paris", utc(2026, 12, 1)) == [
        ("2026-12-20T09:00", "2026-12-25T00:00"),
        ("2026-12-26T00:00", "2027-01-01T00:00"),
        ("2027-01-02T00:00", "2027-01-02T18:00"),
    ]
    endless = campaign_timeline(sched(), "Asia/Kathmandu")
    assert endless.upcoming(utc(2026, 1, 1), 3) == [Window(None, None)]
    assert endless.next_change(utc(2026, 1, 1)) is None


def test_windows_on_the_days_the_clocks_change():
    s = sched(windows={"sunday": ["01:00-03:00"]})
    assert local_windows(s, NY, utc(2026, 3, 7), 1) == [("2026-03-08T01:00", "2026-03-08T03:00")]
    spring = campaign_timeline(s, NY).upcoming(utc(2026, 3, 7), 1)[0]
    assert spring.closes_at - spring.opens_at == timedelta(hours=1)  # 02:00-03:00 never happened
    autumn = campaign_timeline(s, NY).upcoming(utc(2026, 10, 31), 1)[0]
    assert autumn.closes_at - autumn.opens_at == timedelta(hours=3)  # 01:00-02:00 happened twice
    # A window inside the gap moves with it; one whose end the gap overtakes is empty that day.
    inside = campaign_timeline(sched(windows={"sunday": ["02:15-02:45"]}), NY).upcoming(utc(2026, 3, 7), 1)[0]
    assert (inside.opens_at, inside.closes_at) == (utc(2026, 3, 8, 7, 15), utc(2026, 3, 8, 7, 45))
    overtaken = campaign_timeline(sched(windows={"sunday": ["02:30-03:15"]}), NY).upcoming(utc(2026, 3, 7), 1)[0]
    assert overtaken.opens_at.date() == date(2026, 3, 15)


def test_half_and_three_quarter_hour_offsets():
    s = sched(windows={d.value: ["09:00-17:00"] for d in Weekday})
    for tz, opens in [("Asia/Kathmandu", utc(2026, 12, 1, 3, 15)), ("Asia/Kolkata", utc(2026, 12, 1, 3, 30)),
                      ("Australia/Eucla", utc(2026, 12, 1, 0, 15)), ("Pacific/Chatham", utc(2026, 11, 30, 19, 15))]:
        w = campaign_timeline(s, tz).upcoming(utc(2026, 11, 30, 12), 1)[0]
        assert w.opens_at == opens, tz
        assert w.closes_at - w.opens_at == timedelta(hours=8)


def test_a_zone_that_changed_its_rules():
    # Iran kept daylight saving time until 2022: 09:00 in June was UTC+4:30, now +3:30.
    s = sched(windows={"wednesday": ["09:00-10:00"]})
    before = campaign_timeline(s, "Asia/Tehran").upcoming(utc(2021, 6, 1), 1)[0]
    after = campaign_timeline(s, "Asia/Tehran").upcoming(utc(2023, 6, 1), 1)[0]
    assert before.opens_at.time() == time(4, 30) and after.opens_at.time() == time(5, 30)
    # Samoa skipped Friday 30 December 2011: that day's window moved, like any skipped time.
    apia = campaign_timeline(sched(windows={"friday": ["09:00-10:00"]}), "Pacific/Apia")
    w = apia.upcoming(utc(2011, 12, 29), 1)[0]
    assert utc_to_local(w.opens_at, "Pacific/Apia") == datetime(2011, 12, 31, 9, 0)


def test_recipient_hours_and_intersection():
    person = weekly_timeline({d: ["08:00-21:00"] for d in Weekday}, "America/Los_Angeles")
    campaign = campaign_timeline(sched(windows={"monday": ["09:00-18:00"]}), NY)
    both = campaign & person
    w = both.upcoming(utc(2026, 12, 1), 1)[0]
    # Monday 09:00-18:00 in New York is 06:00-15:00 in Los Angeles: from 08:00 there.
    assert (w.opens_at, w.closes_at) == (utc(2026, 12, 7, 16), utc(2026, 12, 7, 23))


# --- Recurrence -----------------------------------------------------------------------------


def test_recurrence_weekdays_and_first_monday():
    weekdays = Recurrence(at=["09:00"], duration_minutes=120, days_of_week=WEEKDAYS[:5])
    days = [o.local for o in occurrences(weekdays, NY, utc(2026, 12, 4, 20), utc(2026, 12, 9, 20))]
    assert days == [datetime(2026, 12, d, 9) for d in (7, 8, 9)]
    first_monday = Recurrence(at=["10:00"], duration_minutes=60, days_of_week=[Weekday.MONDAY], weeks_of_month=[1])
    got = [o.local.date() for o in occurrences(first_monday, NY, utc(2026, 12, 1), utc(2027, 4, 1))]
    assert got == [date(2026, 12, 7), date(2027, 1, 4), date(2027, 2, 1), date(2027, 3, 1)]


def test_recurrence_limits_calling_to_its_run_windows():
    s = sched(windows={d.value: ["08:00-18:00"] for d in Weekday},
              recurrence={"at": ["07:00", "17:00"], "durationMinutes": 120})
    assert local_windows(s, "UTC", utc(2026, 12, 1), 2) == [
        ("2026-12-01T08:00", "2026-12-01T09:00"),
        ("2026-12-01T17:00", "2026-12-01T18:00"),
    ]
    # The workflow's view: only the run windows actually opened.
    opened = [Window(utc(2026, 12, 1, 17), utc(2026, 12, 1, 19))]
    t = campaign_timeline(s, "UTC", runs=opened)
    assert t.upcoming(utc(2026, 12, 1), 5) == [Window(utc(2026, 12, 1, 17), utc(2026, 12, 1, 18))]


def test_a_fire_names_its_occurrence_under_either_offset():
    r = Recurrence(at=["01:30", "09:00"], duration_minutes=60)
    first, second = readings(datetime(2026, 11, 1, 1, 30), NY)
    assert match_fire(r, NY, first).key == match_fire(r, NY, second).key == "2026-11-01T01:30"
    assert match_fire(r, NY, second).starts_at == first  # opened at the rule's instant
    assert match_fire(r, NY, utc(2026, 11, 1, 14, 0, 0) + timedelta(milliseconds=400)).key == "2026-11-01T09:00"
    assert match_fire(r, NY, utc(2026, 11, 1, 14, 7)) is None  # a fire by hand


# --- Properties -----------------------------------------------------------------------------

ZONES = [
    NY, "Europe/London", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu",
    "Australia/Eucla", "Pacific/Chatham", "America/St_Johns", "Australia/Adelaide", "Asia/Tehran",
    "Pacific/Apia", "Europe/Moscow", "America/Santiago", "Africa/Casablanca", "Asia/Pyongyang",
    "America/Sao_Paulo", "Pacific/Kiritimati", "America/Havana", "Asia/Beirut", "America/Godthab",
]
ALL_ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})
zones = st.one_of(st.sampled_from(ZONES), st.sampled_from(ALL_ZONES))
years = st.integers(2005, 2035)


@cache
def transitions(tz: str, year: int) -> tuple[datetime, ...]:
    """Instants (to the minute) at which the zone's UTC offset changes during the year."""
    z = ZoneInfo(tz)
    out = []
    day = utc(year, 1, 1)
    before = day.astimezone(z).utcoffset()
    while day.year == year:
        nxt = day + timedelta(days=1)
        after = nxt.astimezone(z).utcoffset()
        if after != before:
            lo, hi = day, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(z).utcoffset() == before:
                    lo = mid
                else:
                    hi = mid
            out.append(hi.replace(second=0, microsecond=0))
        before, day = after, nxt
    return tuple(out)


@st.composite
def near_a_clock_change(draw) -> tuple[str, datetime]:
    """A zone and an instant within a day and a half of one of its clock changes (or any
    instant of the year when it has none)."""
    tz, year = draw(zones), draw(years)
    changes = transitions(tz, year)
    if changes:
        at = draw(st.sampled_from(changes)) + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
    else:
        at = utc(year, 1, 1) + timedelta(minutes=draw(st.integers(0, 364 * 1440)))
    return tz, at


def hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


@st.composite
def day_ranges(draw) -> list[str]:
    """Up to three non-overlapping ranges of a day; the last may cross midnight."""
    k = draw(st.integers(0, 3))
    points = sorted(draw(st.sets(st.integers(0, 95), min_size=2 * k, max_size=2 * k)))
    points = [p * 15 for p in points]
    if k and draw(st.booleans()):
        points = points[1:] + [points[0]]  # rotate: the last range crosses midnight
    ranges = []
    for s, e in zip(points[::2], points[1::2], strict=True):
        ranges.append(f"{hhmm(s)}-{'24:00' if e == 0 and s > e and draw(st.booleans()) else hhmm(e)}")
    return ranges


@st.composite
def schedules(draw, around: datetime) -> CampaignSchedule:
    windows = {d.value: r for d in Weekday if (r := draw(day_ranges()))} if draw(st.booleans()) else {}
    days = draw(st.lists(st.integers(-10, 10), max_size=3))
    blackouts = [str(around.date() + timedelta(days=d)) for d in days]
    start = end = None
    if draw(st.booleans()):
        start = (around.replace(tzinfo=None) + timedelta(minutes=draw(st.integers(-5000, 5000)))).isoformat()
    if draw(st.booleans()):
        base = datetime.fromisoformat(start) if start else around.replace(tzinfo=None)
        end = (base + timedelta(minutes=draw(st.integers(1, 20000)))).isoformat()
    return sched(windows=windows, blackoutDates=blackouts, startAt=start, endAt=end)


def in_local_windows(s: CampaignSchedule, wall: datetime) -> bool:
    """The definition, checked on a wall-clock time directly."""
    if wall.date() in s.blackout_dates:
        return False
    if (s.start_at and wall < s.start_at) or (s.end_at and wall >= s.end_at):
        return False
    if not any(s.windows.values()):
        return True
    minute = wall.hour * 60 + wall.minute
    today, yesterday = WEEKDAYS[wall.weekday()], WEEKDAYS[(wall.weekday() - 1) % 7]
    for text in s.windows.get(today, []):
        a, b = parse_range(text)
        if a <= minute < (b if b > a else 1440):
            return True
    return any(b <= a and minute < b for a, b in map(parse_range, s.windows.get(yesterday, [])))


FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(near_a_clock_change())
def test_the_rule_picks_the_earliest_reading_or_moves_forward_by_the_gap(case):
    tz, at = case
    local = utc_to_local(at, tz).replace(second=0, microsecond=0) + timedelta(minutes=17)
    resolved = local_to_utc(local, tz)
    z = ZoneInfo(tz)
    offsets = {(resolved + timedelta(hours=h)).astimezone(z).utcoffset() for h in range(-48, 49)}
    exact = sorted(t for t in (local.replace(tzinfo=UTC) - off for off in offsets) if utc_to_local(t, tz) == local)
    if exact:
        assert resolved == exact[0]
        assert clock_shift(local, tz) == ("repeat" if len(exact) > 1 else None)
    else:
        assert clock_shift(local, tz) == "gap"
        gap = (resolved + timedelta(hours=1)).astimezone(z).utcoffset() - (resolved - timedelta(days=2)).astimezone(z).utcoffset()
        moved = utc_to_local(resolved, tz)
        assert moved - local == gap and gap > timedelta(0)


@FAST
@given(st.data(), near_a_clock_change())
def test_windows_are_ordered_disjoint_and_inside_start_and_end(data, case):
    tz, at = case
    s = data.draw(schedules(around=utc_to_local(at, tz)))
    windows = campaign_timeline(s, tz).upcoming(at - timedelta(days=3), 30)
    for w in windows:
        assert w.opens_at is None or w.closes_at is None or w.opens_at < w.closes_at
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.closes_at is not None and b.opens_at is not None and a.closes_at < b.opens_at
    start = local_to_utc(s.start_at, tz) if s.start_at else None
    end = local_to_utc(s.end_at, tz) if s.end_at else None
    for w in windows:
        assert start is None or (w.opens_at is not None and w.opens_at >= start)
        assert end is None or (w.closes_at is not None and w.closes_at <= end)


@FAST
@given(st.data(), near_a_clock_change(), st.integers(-3 * 1440, 3 * 1440))
def test_away_from_clock_changes_open_means_the_wall_clock_is_inside_a_window(data, case, shift):
    tz, around = case
    s = data.draw(schedules(around=utc_to_local(around, tz)))
    at = around + timedelta(minutes=shift, seconds=30)
    z = ZoneInfo(tz)
    assume(len({(at + timedelta(hours=h)).astimezone(z).utcoffset() for h in range(-60, 61)}) == 1)
    assert campaign_timeline(s, tz).is_open(at) == in_local_windows(s, utc_to_local(at, tz))


@FAST
@given(st.data(), near_a_clock_change())
def test_next_change_is_where_the_state_flips_and_nothing_flips_before(data, case):
    tz, at = case
    s = data.draw(schedules(around=utc_to_local(at, tz)))
    t = campaign_timeline(s, tz)
    now_open = t.is_open(at)
    change = t.next_change(at)
    if change is None:
        assert all(t.is_open(at + timedelta(days=d)) == now_open for d in (1, 30, 400))
        return
    assert change > at
    assert t.is_open(change) != now_open
    for fraction in (0.01, 0.25, 0.5, 0.75, 0.99):
        assert t.is_open(at + (change - at) * fraction) == now_open


@FAST
@given(st.data(), near_a_clock_change(), zones)
def test_an_intersection_is_open_when_both_are(data, case, other_zone):
    tz, at = case
    s = data.draw(schedules(around=utc_to_local(at, tz)))
    person = weekly_timeline({d: r for d in Weekday if (r := data.draw(day_ranges()))} or {d: ["08:00-21:00"] for d in Weekday},
                             other_zone)
    campaign = campaign_timeline(s, tz)
    both = campaign & person
    for h in (-20, 1, 9, 30):
        x = at + timedelta(hours=h, minutes=13)
        assert both.is_open(x) == (campaign.is_open(x) and person.is_open(x))


recurrences = st.fixed_dictionaries(dict(
    at=st.lists(st.integers(0, 95).map(lambda q: hhmm(q * 15)), min_size=1, max_size=4, unique=True),
    duration_minutes=st.integers(1, 600),
    days_of_week=st.lists(st.sampled_from(list(Weekday)), unique=True, max_size=3),
    weeks_of_month=st.lists(st.integers(1, 5), unique=True, max_size=2),
    months=st.lists(st.integers(1, 12), unique=True, max_size=4).filter(lambda m: not m or len(m) >= 2),
)).map(lambda fields: Recurrence(**fields))


@FAST
@given(recurrences, near_a_clock_change())
# Found by the search: the skipped 01:00 moves onto 02:00 BST, the instant of the 02:00 run.
@example(Recurrence(at=["01:00", "02:00"], duration_minutes=60), ("Europe/London", utc(2005, 3, 27, 1, 0)))
def test_every_occurrence_is_found_by_its_fire_under_either_offset(recurrence, case):
    tz, at = case
    found = list(occurrences(recurrence, tz, at - timedelta(days=2), at + timedelta(days=40)))
    keys = {o.key for o in occurrences(recurrence, tz, at - timedelta(days=4), at + timedelta(days=42))}
    assert len({o.starts_at for o in found}) == len(found), "one run per instant"
    for o in found[:30]:
        assert o.starts_at == local_to_utc(o.local, tz)
        assert o.ends_at - o.starts_at == timedelta(minutes=recurrence.duration_minutes)
        for reading in readings(o.local, tz):
            matched = match_fire(recurrence, tz, reading)
            assert matched is not None
            if o.clock_shift == "gap" and matched.key != o.key:
                # A time in the gap is on the Schedule's skip list (the workflow opens it): what
                # fires at either reading of it is another occurrence at its own time, such as
                # 03:00 (the same instant) or 01:00 (the gap's time read in the winter offset).
                assert matched.key in keys and matched.starts_at == reading
                continue
            assert matched.starts_at == o.starts_at and matched.key == o.key


def test_a_skipped_time_moved_onto_another_occurrence_is_that_occurrence():
    # London, 27 March 2005: the clock jumps from 01:00 GMT to 02:00 BST. 01:00 moves forward
    # by the gap to 02:00 BST, the instant of the 02:00 run: one run, named by the time shown.
    r = Recurrence(at=["01:00", "02:00"], duration_minutes=60)
    tz = "Europe/London"
    day = list(occurrences(r, tz, utc(2005, 3, 26, 12), utc(2005, 3, 27, 12)))
    assert [(o.key, o.starts_at, o.clock_shift) for o in day] == [("2005-03-27T02:00", utc(2005, 3, 27, 1), None)]
    assert match_fire(r, tz, utc(2005, 3, 27, 1)).key == "2005-03-27T02:00"
    # The Schedule fires 02:00 BST itself: nothing is left for the workflow to open.
    assert list(shifted_occurrences(r, tz, utc(2005, 3, 26), utc(2005, 3, 28))) == []
    # A skipped time that lands where no run starts keeps its own run (01:30 → 02:30 BST).
    r = Recurrence(at=["01:30", "02:00"], duration_minutes=60)
    shifted = list(shifted_occurrences(r, tz, utc(2005, 3, 26), utc(2005, 3, 28)))
    assert [(o.key, o.starts_at) for o in shifted] == [("2005-03-27T01:30", utc(2005, 3, 27, 1, 30))]


@FAST
@given(recurrences, near_a_clock_change())
def test_shifted_occurrences_are_exactly_those_on_clock_changes(recurrence, case):
    tz, at = case
    since, until = at - timedelta(days=3), at + timedelta(days=3)
    brute = [o for o in occurrences(recurrence, tz, since, until) if o.clock_shift and since < o.starts_at <= until]
    assert list(shifted_occurrences(recurrence, tz, since, until)) == brute


@pytest.mark.parametrize(("tz", "minute"), [("Pacific/Chatham", 45), ("Australia/Lord_Howe", 45), ("America/Santiago", 30)])
def test_ten_years_of_clock_changes_are_all_found(tz, minute):
    r = Recurrence(at=[f"{h:02d}:{minute}" for h in range(24)], duration_minutes=15)
    since, until = utc(2026, 1, 1), utc(2032, 1, 1)
    brute = [o for o in occurrences(r, tz, since, until) if o.clock_shift and since < o.starts_at <= until]
    assert len(brute) >= 6
    assert list(shifted_occurrences(r, tz, since, until)) == brute
