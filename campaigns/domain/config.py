"""The campaign's configuration, section 1.1 of the specification, validated.

Every rule lives here, next to its field, and raises a message that says what was
expected; the API turns those into `{field, reason}` lists. These models are pure
(no I/O), so workflows use them too.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from campaigns.domain import validators, voices
from campaigns.domain.base import ApiModel
from campaigns.domain.validators import Int64, NonNegativeReal, Rate, Real

Timezone = Annotated[str, AfterValidator(validators.iana_timezone)]
Language = Annotated[str, AfterValidator(validators.bcp47_language)]
Country = Annotated[str, AfterValidator(validators.country_code)]
Currency = Annotated[str, AfterValidator(validators.currency_code)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    ARCHIVED = "archived"


# A campaign in one of these takes no more calls and starts or runs no A/B tests. (StrEnum:
# the plain strings read from Postgres are members of it too.)
FINISHED_STATUSES = frozenset({CampaignStatus.ENDED, CampaignStatus.ARCHIVED})


class CampaignType(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    HYBRID = "hybrid"


class CampaignChannel(StrEnum):
    WEB = "web"
    PHONE = "phone"
    SMS = "sms"
    MULTI = "multi"


# --- Voice ---------------------------------------------------------------------------

MAX_CALL_DURATION_S = 7200  # two hours: longer than any real call, short enough to catch unit mistakes


class HandoffTrigger(ApiModel):
    """When the AI hands the caller to someone (or something) else."""

    type: Literal["keyword", "sentiment", "intent", "duration", "explicit_request"]
    value: str | Real | None = None
    action: Literal["transfer_to_agent", "schedule_callback", "send_sms", "end_call"] = "transfer_to_agent"
    target: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _value_fits_type(self) -> HandoffTrigger:
        v = self.value
        if self.type in ("keyword", "intent"):
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"a {self.type} trigger needs a non-empty text value")
        elif self.type == "sentiment":
            if isinstance(v, str) or v is None or not -1.0 <= v <= 1.0:
                raise ValueError("a sentiment trigger needs a number between -1 and 1")
        elif self.type == "duration":
            if isinstance(v, str) or v is None or not 0 < v <= MAX_CALL_DURATION_S:
                raise ValueError(f"a duration trigger needs seconds between 1 and {MAX_CALL_DURATION_S}")
        if self.action in ("transfer_to_agent", "send_sms") and not self.target:
            raise ValueError(f"action {self.action!r} needs a target (phone number or queue)")
        return self


class VoiceSettings(ApiModel):
    tts_voice: Annotated[str, AfterValidator(voices.known_voice)] = "aura-2"
    speaking_rate: float = Field(default=1.0, ge=0.8, le=1.2)
    speaking_style: Literal["professional", "friendly", "enthusiastic", "calm"] = "professional"
    language: Language = "en-US"
    max_call_duration: int = Field(default=600, ge=1, le=MAX_CALL_DURATION_S, description="seconds")
    handoff_triggers: list[HandoffTrigger] = Field(default_factory=list, max_length=50)
    qualification_threshold: float = Field(default=70, ge=0, le=100)
    custom_greeting: str | None = Field(default=None, max_length=2000)
    fallback_greetings: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=20
    )

    @model_validator(mode="after")
    def _voice_speaks_language(self) -> VoiceSettings:
        voice = voices.get(self.tts_voice)
        primary = self.language.split("-")[0].lower()
        if voice and primary not in voice.languages:
            raise ValueError(
                f"voice {self.tts_voice!r} does not speak {self.language!r} (it speaks: {', '.join(voice.languages)})"
            )
        return self


# --- Audience ------------------------------------------------------------------------


class AgeRange(ApiModel):
    min: int = Field(default=18, ge=0, le=130)
    max: int = Field(default=130, ge=0, le=130)

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class DemographicFilters(ApiModel):
    age_range: AgeRange | None = None
    genders: list[Literal["female", "male", "non_binary", "unspecified"]] = Field(default_factory=list)
    income_levels: list[Literal["low", "lower_middle", "middle", "upper_middle", "high"]] = Field(default_factory=list)
    languages: list[Language] = Field(default_factory=list, max_length=50)
    education_levels: list[Literal["secondary", "vocational", "bachelor", "master", "doctorate"]] = Field(
        default_factory=list
    )


class GeoRadius(ApiModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=20_000)


_SUBDIVISION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")


class GeographicFilters(ApiModel):
    countries: list[Country] = Field(default_factory=list, max_length=250)
    regions: list[str] = Field(default_factory=list, max_length=500, description="ISO 3166-2, e.g. US-CA")
    cities: list[ShortText] = Field(default_factory=list, max_length=1000)
    postal_codes: list[Annotated[str, Field(min_length=2, max_length=12)]] = Field(
        default_factory=list, max_length=10_000
    )
    timezones: list[Timezone] = Field(default_factory=list, max_length=100)
    radius: GeoRadius | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        for region in value:
            if not _SUBDIVISION.fullmatch(region.upper()):
                raise ValueError(f"{region!r} is not an ISO 3166-2 subdivision code (e.g. 'US-CA')")
        return [r.upper() for r in value]


class BehavioralFilters(ApiModel):
    interests: list[ShortText] = Field(default_factory=list, max_length=200)
    engagement_levels: list[Literal["low", "medium", "high"]] = Field(default_factory=list)
    min_engagement_score: float | None = Field(default=None, ge=0, le=100)
    last_interaction_within_days: int | None = Field(default=None, gt=0, le=3650)
    previous_customer: bool | None = None
    min_previous_calls: int | None = Field(default=None, ge=0, le=1_000_000)
    max_previous_calls: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _ordered(self) -> BehavioralFilters:
        lo, hi = self.min_previous_calls, self.max_previous_calls
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("minPreviousCalls must not exceed maxPreviousCalls")
        return self


class ExclusionRule(ApiModel):
    """Leave out anyone whose `field` matches: e.g. `{field: "doNotCall", operator: "eq", value: true}`."""

    field: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]
    operator: Literal["eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "exists"]
    value: Any = None
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _value_fits_operator(self) -> ExclusionRule:
        op, v = self.operator, self.value
        if op in ("in", "not_in") and not (isinstance(v, list) and v):
            raise ValueError(f"operator {op!r} needs a non-empty list value")
        if op in ("gt", "gte", "lt", "lte") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"operator {op!r} needs a number value")
        if op == "contains" and not isinstance(v, str):
            raise ValueError("operator 'contains' needs a text value")
        if op == "exists" and not isinstance(v, bool):
            raise ValueError("operator 'exists' needs true or false")
        if op in ("eq", "ne") and v is None:
            raise ValueError(f"operator {op!r} needs a value")
        return self


CustomValue = str | Int64 | Real | bool | list[str | Int64 | Real | bool] | None


class TargetAudience(ApiModel):
    demographics: DemographicFilters | None = None
    geographic: GeographicFilters | None = None
    behavioral: BehavioralFilters | None = None
    custom_attributes: dict[Annotated[str, Field(min_length=1, max_length=100)], CustomValue] = Field(
        default_factory=dict, max_length=100
    )
    exclusion_rules: list[ExclusionRule] = Field(default_factory=list, max_length=200)


# --- Schedule ------------------------------------------------------------------------


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


_RANGE = re.compile(r"^(\d{2}):(\d{2})\s*[-–]\s*(\d{2}):(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
WEEKDAYS = tuple(Weekday)  # Monday first, as date.weekday() counts


def parse_range(text: str) -> tuple[int, int]:
    """'09:00-17:30' → (540, 1050) minutes after local midnight. The end may be before the
    start (the range crosses midnight); '24:00' is allowed as an end."""
    m = _RANGE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a range like '09:00-17:00'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"{text!r}: start must be a time between 00:00 and 23:59")
    if not ((h2 <= 23 and m2 <= 59) or (h2 == 24 and m2 == 0)):
        raise ValueError(f"{text!r}: end must be a time between 00:00 and 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % 1440 and (start, end) != (0, 1440):  # '00:00-24:00' is the whole day
        raise ValueError(f"{text!r} is empty (start equals end)")
    return start, end


def parse_time(text: str) -> int:
    """'09:30' → 570 minutes after local midnight."""
    m = _TIME.match(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{text!r} is not a time of day like '09:00' (00:00 to 23:59)")
    return int(m.group(1)) * 60 + int(m.group(2))


def _local(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is not None:
        raise ValueError(
            f"{field} is a local date-time in the campaign's timezone; give it without an offset "
            "(e.g. '2026-12-01T09:00:00')"
        )
    return value


WeeklyRanges = dict[Weekday, list[str]]


def _weekly(value: WeeklyRanges) -> WeeklyRanges:
    for day, ranges in value.items():
        if len(ranges) > 24:
            raise ValueError(f"{day}: at most 24 ranges a day")
        spans = sorted(parse_range(r) for r in ranges)
        for (s1, e1), (s2, _) in zip(spans, spans[1:], strict=False):
            end1 = e1 if e1 > s1 else 1440
            if s2 < end1:
                raise ValueError(f"{day}: ranges overlap")
    return value


def default_recipient_hours() -> WeeklyRanges:
    return {day: ["08:00-21:00"] for day in Weekday}


class Recurrence(ApiModel):
    """Recurring run windows: each occurrence opens a window of `durationMinutes` at one of
    the `at` times, on the days that match every list given (an empty list matches all).

    'Weekdays at 09:00 for 2 hours' is `{daysOfWeek: [monday…friday], at: ["09:00"],
    durationMinutes: 120}`; 'the first Monday of the month' adds `weeksOfMonth: [1]`
    (week n is days 7n-6 to 7n of the month; week 5 is days 29 to 31).
    """

    at: list[str] = Field(min_length=1, max_length=24, description="Local times of day, 'HH:MM'")
    duration_minutes: int = Field(ge=1, le=7 * 1440, description="Length of each run window")
    days_of_week: list[Weekday] = Field(default_factory=list)
    weeks_of_month: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=list)
    days_of_month: list[Annotated[int, Field(ge=1, le=31)]] = Field(default_factory=list)
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(default_factory=list)

    @field_validator("at")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        minutes = [parse_time(t) for t in value]
        if len(set(minutes)) != len(minutes):
            raise ValueError("times must not repeat")
        return [f"{m // 60:02d}:{m % 60:02d}" for m in sorted(minutes)]

    @field_validator("days_of_week", "weeks_of_month", "days_of_month", "months")
    @classmethod
    def _no_repeats(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must not repeat")
        return sorted(value, key=lambda v: WEEKDAYS.index(v) if isinstance(v, Weekday) else v)

    @model_validator(mode="after")
    def _can_occur(self) -> Recurrence:
        if self.weeks_of_month and self.days_of_month:
            raise ValueError("give weeksOfMonth or daysOfMonth, not both")
        days = set(self.days_of_month) or {
            d for w in (self.weeks_of_month or [1, 2, 3, 4, 5]) for d in range(7 * w - 6, min(7 * w, 31) + 1)
        }
        longest = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
        if not any(d <= longest[m] for m in (self.months or range(1, 13)) for d in days):
            raise ValueError("this recurrence never occurs (no month has those days)")
        return self

    def minutes(self) -> list[int]:
        return [parse_time(t) for t in self.at]


class CampaignSchedule(ApiModel):
    """When the campaign runs, in the campaign's own timezone.

    `windows` maps weekdays to calling windows ('HH:MM-HH:MM'); a campaign with no
    windows may call at any hour between its start and end. `blackoutDates` are whole
    local days without calls. A `recurrence` limits calling further to its run windows.
    `recipientHours` are the hours a person may be called in *their* local time.
    """

    start_at: datetime | None = None
    end_at: datetime | None = None
    windows: WeeklyRanges = Field(default_factory=dict)
    blackout_dates: list[date] = Field(default_factory=list, max_length=1000)
    recurrence: Recurrence | None = None
    recipient_hours: WeeklyRanges = Field(
        default_factory=default_recipient_hours,
        description="Per weekday, the recipient-local hours outbound calls may reach a person "
        "(default 08:00-21:00 every day; a day left out allows no calls)",
    )

    @field_validator("start_at")
    @classmethod
    def _start_local(cls, v: datetime | None) -> datetime | None:
        return _local(v, "startAt")

    @field_validator("end_at")
    @classmethod
    def _end_local(cls, v: datetime | None) -> datetime | None:
        return _local(v, "endAt")

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: WeeklyRanges) -> WeeklyRanges:
        return _weekly(value)

    @field_validator("recipient_hours")
    @classmethod
    def _recipient_hours(cls, value: WeeklyRanges) -> WeeklyRanges:
        if not any(value.values()):
            raise ValueError("must allow some hours; to allow any hour give '00:00-24:00' for each day")
        return _weekly(value)

    @model_validator(mode="after")
    def _ordered(self) -> CampaignSchedule:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("endAt must be after startAt")
        return self


# --- Budget, goals, KPIs -------------------------------------------------------------


class CampaignBudget(ApiModel):
    total: float | None = Field(default=None, gt=0, le=1e12)
    daily: float | None = Field(default=None, gt=0, le=1e12)
    currency: Currency = "USD"
    alert_thresholds: list[Annotated[Rate, Field(gt=0)]] = Field(default_factory=lambda: [0.5, 0.8, 1.0], max_length=10)

    @field_validator("alert_thresholds")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for v in value:
            if not 0 < v <= 1:
                raise ValueError("alert thresholds are fractions of the budget, between 0 (excluded) and 1")
        return sorted(set(value))

    @model_validator(mode="after")
    def _consistent(self) -> CampaignBudget:
        if self.total is None and self.daily is None:
            raise ValueError("a budget needs a total, a daily cap, or both")
        if self.total is not None and self.daily is not None and self.daily > self.total:
            raise ValueError("daily must not exceed total")
        return self


class GoalType(StrEnum):
    LEADS = "leads"
    CONVERSIONS = "conversions"
    REVENUE = "revenue"
    CALLS = "calls"
    ENGAGEMENT = "engagement"


class GoalTimeframe(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CAMPAIGN = "campaign"


class CampaignGoal(ApiModel):
    """A goal; `current` and `achieved` are kept by the platform and ignored on input."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    type: GoalType
    target: float = Field(gt=0, le=1e12)
    timeframe: GoalTimeframe = GoalTimeframe.CAMPAIGN
    current: NonNegativeReal = 0
    achieved: bool = False


class KpiMetric(StrEnum):
    TOTAL_CALLS = "totalCalls"
    ANSWER_RATE = "answerRate"
    CONNECT_RATE = "connectRate"
    QUALIFICATION_RATE = "qualificationRate"
    CONVERSION_RATE = "conversionRate"
    AVERAGE_CALL_DURATION = "averageCallDuration"
    AVERAGE_WAIT_TIME = "averageWaitTime"
    COST_PER_LEAD = "costPerLead"
    COST_PER_CALL = "costPerCall"
    CALLS_PER_HOUR = "callsPerHour"
    CUSTOMER_SATISFACTION = "customerSatisfaction"
    REVENUE = "revenue"
    ROI = "roi"
    WIDGET_CLICK_THROUGH_RATE = "widgetClickThroughRate"


class KPI(ApiModel):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    name: ShortText
    metric: KpiMetric
    target: Real | None = None
    unit: Literal["count", "ratio", "seconds", "currency", "score", "per_hour"] = "count"
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"


# --- The whole configuration ---------------------------------------------------------


class CampaignConfiguration(ApiModel):
    """Everything `PUT /configuration` may set. Stored as one JSON document."""

    flow_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    voice_settings: VoiceSettings = Field(default_factory=VoiceSettings)
    knowledge_base_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50
    )
    target_audience: TargetAudience = Field(default_factory=TargetAudience)
    schedule: CampaignSchedule = Field(default_factory=CampaignSchedule)
    timezone: Timezone = "UTC"
    budget: CampaignBudget | None = None
    goals: list[CampaignGoal] = Field(default_factory=list, max_length=50)
    kpis: list[KPI] = Field(default_factory=list, max_length=50)

    @field_validator("knowledge_base_ids")
    @classmethod
    def _unique_kbs(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("knowledge base ids must not repeat")
        return value

    @field_validator("goals")
    @classmethod
    def _unique_goal_ids(cls, value: list[CampaignGoal]) -> list[CampaignGoal]:
        ids = [g.id for g in value if g.id]
        if len(set(ids)) != len(ids):
            raise ValueError("goal ids must not repeat")
        return value

    @field_validator("kpis")
    @classmethod
    def _unique_kpi_ids(cls, value: list[KPI]) -> list[KPI]:
        ids = [k.id for k in value if k.id]
        if len(set(ids)) != len(ids):
            raise ValueError("KPI ids must not repeat")
        return value


CONFIG_FIELDS = frozenset(CampaignConfiguration.model_fields)
