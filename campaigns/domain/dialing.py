"""May this campaign dial this person now? The rule the voice pipeline asks before each
outbound dial, failing closed: when anything is unknown, the answer is no, with a reason.

A dial is allowed when all hold:
* the campaign places outbound calls (outbound or hybrid) and is `active`;
* its calling window is open: by its schedule's weekly windows, blackout dates and
  start/end (checked here, whatever the projection says) and as its workflow last
  recorded it (the word on recurring run windows, which only the workflow sees open);
* the recipient's local time is inside the campaign's `recipientHours`
  (default 08:00-21:00), in the recipient's own timezone.

The recipient's timezone is given, or derived from an E.164 number when the number's
prefix maps to exactly one zone. An unknown or ambiguous zone is a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as phone_timezones

from campaigns.domain import validators
from campaigns.domain.config import CampaignSchedule, CampaignStatus, CampaignType
from campaigns.domain.schedule import base_timeline, campaign_timeline, weekly_timeline
from campaigns.domain.timeutil import utc_to_local, zone

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SEPARATORS = re.compile(r"[\s().\-]")


class Reason(StrEnum):
    ALLOWED = "allowed"
    NOT_OUTBOUND = "campaign_not_outbound"
    NOT_STARTED = "campaign_not_started"
    NOT_ACTIVE = "campaign_not_active"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    AMBIGUOUS_TIMEZONE = "ambiguous_timezone"
    BLACKOUT_DATE = "blackout_date"
    OUTSIDE_CAMPAIGN_WINDOW = "outside_campaign_window"
    WINDOW_NOT_OPENED = "window_not_opened"
    OUTSIDE_RECIPIENT_HOURS = "outside_recipient_hours"


@dataclass(frozen=True)
class RecipientZone:
    """Where the recipient is: `zone` when known, else why not (and the candidates)."""

    zone: str | None
    source: str  # 'timezone' or 'phoneNumber'
    reason: Reason | None = None
    message: str | None = None
    candidates: tuple[str, ...] = ()


def normalize_e164(number: str) -> str:
    """'+1 (415) 555-0100' → '+14155550100'; ValueError if it is not an E.164 number."""
    compact = _SEPARATORS.sub("", number)
    if not _E164.fullmatch(compact):
        raise ValueError(f"{number!r} is not an E.164 phone number (e.g. '+14155550100')")
    return compact


def zone_of_name(name: str) -> RecipientZone:
    try:
        return RecipientZone(validators.iana_timezone(name), "timezone")
    except ValueError:
        return RecipientZone(None, "timezone", Reason.UNKNOWN_TIMEZONE, f"{name!r} is not an IANA timezone name")


def zone_of_number(number: str) -> RecipientZone:
    """The zone of an E.164 number (already normalized), when its prefix has exactly one."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        return RecipientZone(
            None,
            "phoneNumber",
            Reason.UNKNOWN_TIMEZONE,
            f"{number} is not a valid number of any numbering plan, so its timezone is unknown",
        )
    zones = tuple(sorted(z for z in phone_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown"))
    known = tuple(z for z in zones if zone_of_name(z).zone)
    if not known:
        return RecipientZone(None, "phoneNumber", Reason.UNKNOWN_TIMEZONE, f"no timezone is known for {number}")
    if len(known) > 1 and not same_clock(known):
        return RecipientZone(
            None,
            "phoneNumber",
            Reason.AMBIGUOUS_TIMEZONE,
            f"{number} may be in any of {len(known)} timezones; send the recipient's timezone",
            candidates=known,
        )
    return RecipientZone(known[0], "phoneNumber", candidates=known if len(known) > 1 else ())


@lru_cache(maxsize=1024)
def same_clock(zones: tuple[str, ...], year: int | None = None) -> bool:
    """Whether the zones show the same local time throughout three years (from the start of
    `year`, default this year): then a number in any of them has one local time."""
    tzs = [zone(z) for z in zones]

    def offsets(at: datetime) -> tuple:
        return tuple(at.astimezone(z).utcoffset() for z in tzs)

    year = year or datetime.now(UTC).year
    t, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 3, 1, 1, tzinfo=UTC)
    before = offsets(t)
    while t < end:
        after = offsets(t + timedelta(days=1))
        if len(set(after)) > 1:
            return False
        if after != before:  # a clock changed that day: compare every quarter hour of it
            if any(len(set(offsets(t + timedelta(minutes=15 * i)))) > 1 for i in range(96)):
                return False
        before, t = after, t + timedelta(days=1)
    return True


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    message: str
    next_allowed_at: datetime | None = None  # when refused: when a dial may next be allowed, if known
    allowed_until: datetime | None = None  # when allowed: when that stops (None: not within the horizon)
    recipient: RecipientZone | None = None


def decide(
    *,
    campaign_type: CampaignType,
    status: CampaignStatus,
    window_open: bool,
    window_next_change: datetime | None = None,
    schedule: CampaignSchedule,
    timezone: str,
    recipient: RecipientZone,
    now: datetime,
) -> Decision:
    """The answer for one dial at `now`. `window_open` / `window_next_change` are what the
    campaign's workflow last recorded: they are the word on run windows (which its
    recurrence's Schedule opens, or an operator triggers); the weekly windows, blackout
    dates and start/end are checked here again, so a late projection never allows a call."""

    def no(reason: Reason, message: str, next_at: datetime | None = None) -> Decision:
        return Decision(False, reason, message, next_at, None, recipient)

    if campaign_type == CampaignType.INBOUND:
        return no(Reason.NOT_OUTBOUND, "an inbound campaign places no outbound calls")
    if recipient.zone is None:
        return no(recipient.reason or Reason.UNKNOWN_TIMEZONE, recipient.message or "unknown timezone")

    base = base_timeline(schedule, timezone)
    person = weekly_timeline(schedule.recipient_hours, recipient.zone)
    expected = campaign_timeline(schedule, timezone) & person  # run windows as predicted

    def next_opening(strictly_after: bool = False) -> datetime | None:
        for w in expected.windows(now):
            if w.opens_at is not None and w.opens_at > now:
                return w.opens_at
            if not strictly_after:
                return now
        return None

    if status == CampaignStatus.SCHEDULED:
        return no(Reason.NOT_STARTED, "the campaign has not started yet", next_opening())
    if status != CampaignStatus.ACTIVE:
        return no(Reason.NOT_ACTIVE, f"the campaign is {status.value}")

    if not base.is_open(now):
        local_day = utc_to_local(now, timezone).date()
        if local_day in schedule.blackout_dates:
            return no(Reason.BLACKOUT_DATE, f"{local_day} is a blackout date in {timezone}", next_opening())
        return no(Reason.OUTSIDE_CAMPAIGN_WINDOW, "the campaign's calling window is closed", next_opening())
    if not person.is_open(now):
        local = utc_to_local(now, recipient.zone)
        return no(
            Reason.OUTSIDE_RECIPIENT_HOURS,
            f"it is {local:%A %H:%M} for the recipient ({recipient.zone}), outside the campaign's recipient hours",
            next_opening(),
        )
    if not window_open:
        if schedule.recurrence is not None:
            return no(
                Reason.OUTSIDE_CAMPAIGN_WINDOW,
                "no run window of the campaign's recurrence is open (or its Temporal Schedule is paused)",
                next_opening(strictly_after=True),
            )
        return no(Reason.WINDOW_NOT_OPENED, "the campaign's workflow has not opened its calling window yet")
    window = (base & person).window_at(now)
    until = window.closes_at if window else None
    if window_next_change is not None and (until is None or window_next_change < until):
        until = window_next_change
    return Decision(True, Reason.ALLOWED, "the dial is allowed", None, until, recipient)


def local_time(now: datetime, tz: str) -> datetime:
    """`now` on the recipient's wall clock, with its offset."""
    return now.astimezone(zone(tz))
