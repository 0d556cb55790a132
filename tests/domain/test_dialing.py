"""The dial decision as a pure function: every reason, and failing closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaigns.domain.config import CampaignSchedule, CampaignStatus, CampaignType
from campaigns.domain.dialing import (
    Reason,
    decide,
    normalize_e164,
    same_clock,
    zone_of_name,
    zone_of_number,
)

NY = "America/New_York"
MONDAY_NOON_NY = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
WEEKDAYS_9_TO_5 = CampaignSchedule.model_validate(
    {"windows": {d: ["09:00-17:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}}
)


def check(*, recipient="America/Chicago", status=CampaignStatus.ACTIVE, window_open=True, window_next_change=None,
          schedule=WEEKDAYS_9_TO_5, at=MONDAY_NOON_NY, campaign_type=CampaignType.OUTBOUND):
    return decide(campaign_type=campaign_type, status=status, window_open=window_open,
                  window_next_change=window_next_change, schedule=schedule, timezone=NY,
                  recipient=zone_of_name(recipient), now=at)


def test_allowed_inside_both_windows_until_the_first_to_close():
    d = check()
    assert d.allowed and d.reason == Reason.ALLOWED and d.next_allowed_at is None
    assert d.allowed_until == datetime(2026, 12, 7, 22, 0, tzinfo=UTC)  # 17:00 in New York


def test_outside_the_recipients_hours_says_when_it_opens():
    # 09:30 in New York is 06:30 in Los Angeles: allowed from 08:00 there (16:00 UTC).
    d = check(recipient="America/Los_Angeles", at=datetime(2026, 12, 7, 14, 30, tzinfo=UTC))
    assert not d.allowed and d.reason == Reason.OUTSIDE_RECIPIENT_HOURS
    assert d.next_allowed_at == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    assert "Monday 06:30" in d.message


def test_outside_the_campaign_window_and_on_a_blackout_date():
    d = check(at=datetime(2026, 12, 7, 23, 0, tzinfo=UTC))  # 18:00 in New York
    assert d.reason == Reason.OUTSIDE_CAMPAIGN_WINDOW
    assert d.next_allowed_at == datetime(2026, 12, 8, 14, 0, tzinfo=UTC)  # Tuesday 09:00 (08:00 in Chicago)
    holiday = CampaignSchedule.model_validate({**WEEKDAYS_9_TO_5.model_dump(mode="json", by_alias=True), "blackoutDates": ["2026-12-07"]})
    d = check(schedule=holiday)
    assert d.reason == Reason.BLACKOUT_DATE and d.next_allowed_at == datetime(2026, 12, 8, 14, 0, tzinfo=UTC)


def test_the_workflows_view_must_agree_before_a_dial_is_allowed():
    d = check(window_open=False)
    assert not d.allowed and d.reason == Reason.WINDOW_NOT_OPENED


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"status": CampaignStatus.PAUSED}, Reason.NOT_ACTIVE),
        ({"status": CampaignStatus.DRAFT}, Reason.NOT_ACTIVE),
        ({"status": CampaignStatus.ENDED}, Reason.NOT_ACTIVE),
        ({"campaign_type": CampaignType.INBOUND}, Reason.NOT_OUTBOUND),
        ({"recipient": "Mars/Olympus"}, Reason.UNKNOWN_TIMEZONE),
    ],
)
def test_refusals(kwargs, reason):
    d = check(**kwargs)
    assert not d.allowed and d.reason == reason and d.next_allowed_at is None


def test_a_scheduled_campaign_says_when_its_first_dial_may_happen():
    s = CampaignSchedule.model_validate({**WEEKDAYS_9_TO_5.model_dump(mode="json", by_alias=True), "startAt": "2026-12-09T12:30:00"})
    d = check(status=CampaignStatus.SCHEDULED, schedule=s)
    assert d.reason == Reason.NOT_STARTED and d.next_allowed_at == datetime(2026, 12, 9, 17, 30, tzinfo=UTC)


def test_recurring_run_windows_are_the_workflows_word():
    s = CampaignSchedule.model_validate({**WEEKDAYS_9_TO_5.model_dump(mode="json", by_alias=True),
                                         "recurrence": {"at": ["10:00"], "durationMinutes": 60}})
    # Predicted open at 12:00? No: the 10:00 run closed at 11:00; the next is tomorrow 10:00.
    d = check(schedule=s, window_open=False)
    assert d.reason == Reason.OUTSIDE_CAMPAIGN_WINDOW and d.next_allowed_at == datetime(2026, 12, 8, 15, tzinfo=UTC)
    # A run the predictions do not know (triggered by an operator) is open if the workflow says so.
    until = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)
    d = check(schedule=s, window_open=True, window_next_change=until)
    assert d.allowed and d.allowed_until == until
    # ...but never outside the weekly windows.
    d = check(schedule=s, window_open=True, at=datetime(2026, 12, 7, 23, tzinfo=UTC))
    assert not d.allowed and d.reason == Reason.OUTSIDE_CAMPAIGN_WINDOW


def test_recipient_zone_from_a_phone_number():
    assert normalize_e164("+1 (212) 555-0123") == "+12125550123"
    with pytest.raises(ValueError, match="E.164"):
        normalize_e164("212-555-0123")
    assert zone_of_number("+12125550123").zone == NY
    assert zone_of_number("+9779812345678").zone in ("Asia/Kathmandu", "Asia/Katmandu")  # +5:45
    many = zone_of_number("+61412345678")  # an Australian mobile: any of its zones
    assert many.zone is None and many.reason == Reason.AMBIGUOUS_TIMEZONE and "Australia/Perth" in many.candidates
    unknown = zone_of_number("+15555550100")  # not a valid number
    assert unknown.zone is None and unknown.reason == Reason.UNKNOWN_TIMEZONE
    uk = zone_of_number("+447911123456")  # London, Jersey, Guernsey, Isle of Man: one clock
    assert uk.zone is not None and len(uk.candidates) == 4


def test_zones_count_as_one_only_when_their_clocks_always_agree():
    assert same_clock(("Europe/London", "Europe/Jersey"), 2026)
    assert not same_clock(("Europe/Madrid", "Atlantic/Canary"), 2026)
    assert not same_clock(("America/New_York", "America/Nassau", "America/Havana"), 2026)
