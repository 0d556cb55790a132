"""Local windows in any timezone, across DST, as exact unions of 15-minute slots."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from campaigns.domain import periods
from campaigns.domain.timeutil import utc_to_local


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_buckets_are_fifteen_minute_slots():
    t = at("2026-05-01T10:29:59.999+00:00")
    b = periods.bucket_of(t)
    assert periods.bucket_start(b) == at("2026-05-01T10:15:00+00:00")
    assert periods.bucket_of(at("2026-05-01T10:30:00+00:00")) == b + 1


def test_today_on_dst_days_is_23_or_25_hours():
    spring = periods.day_window(date(2026, 3, 8), "America/New_York")
    fall = periods.day_window(date(2026, 11, 1), "America/New_York")
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert fall[1] - fall[0] == timedelta(hours=25)


def test_today_in_quarter_hour_zones():
    start, end = periods.today(at("2026-05-01T20:00:00+00:00"), "Asia/Kathmandu")
    assert start == at("2026-05-01T18:15:00+00:00") and end - start == timedelta(days=1)
    assert periods.bucket_start(periods.bucket_of(start)) == start  # a slot boundary
    chatham = periods.today(at("2026-05-01T20:00:00+00:00"), "Pacific/Chatham")[0]
    assert utc_to_local(chatham, "Pacific/Chatham").hour == 0 and chatham.minute % 15 == 0


def test_a_skipped_midnight_starts_the_day_at_its_first_minute():
    start, _ = periods.day_window(date(2026, 3, 8), "America/Havana")
    assert utc_to_local(start, "America/Havana") == datetime(2026, 3, 8, 1, 0)
    assert periods.next_midnight(at("2026-03-07T12:00:00-05:00"), "America/Havana") == start


def test_hours_on_a_fall_back_night_repeat_the_wall_clock_hour():
    day_start, day_end = periods.day_window(date(2026, 11, 1), "America/New_York")
    hours = periods.hour_starts(day_start, day_end, "America/New_York")
    assert len(hours) == 25
    walls = [utc_to_local(h, "America/New_York").hour for h in hours]
    assert walls[:4] == [0, 1, 1, 2]
    kathmandu = periods.hour_starts(at("2026-05-01T03:00:00+00:00"), at("2026-05-01T05:00:00+00:00"), "Asia/Kathmandu")
    assert [h.minute for h in kathmandu] == [15, 15, 15] and kathmandu[0] == at("2026-05-01T02:15:00+00:00")


def test_weeks_start_on_monday_and_months_roll_over():
    start, end = periods.week_window(at("2026-05-03T23:30:00+00:00"), "Europe/Paris")  # Monday 01:30 in Paris
    assert utc_to_local(start, "Europe/Paris") == datetime(2026, 5, 4) and end - start == timedelta(days=7)
    start, end = periods.month_window(at("2026-12-31T23:30:00+00:00"), "Europe/Paris")  # already January there
    assert utc_to_local(start, "Europe/Paris") == datetime(2027, 1, 1)
    assert utc_to_local(end, "Europe/Paris") == datetime(2027, 2, 1)


def test_local_days_cover_a_window():
    days = list(periods.local_days(at("2026-05-01T20:00:00+00:00"), at("2026-05-03T01:00:00+00:00"), "Asia/Tokyo"))
    assert [d for d, _, _ in days] == [date(2026, 5, 2), date(2026, 5, 3)]
