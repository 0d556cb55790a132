"""Analytics events: what the voice-AI pipeline and the web widget report, and how a batch of
them is validated.

Every event has a client-chosen `id` (its identity: sending it again is a no-op), the
`campaignId`, a `type`, `occurredAt` (ISO-8601 with an offset), optional `variantId`,
`subjectId` and `callId`, and a `data` object whose shape depends on the type:

| type              | data                                                                  |
|-------------------|-----------------------------------------------------------------------|
| call.started      | `waitSec`? (time the caller waited before the AI answered), `direction`? |
| call.completed    | `durationSec`, `outcome`, `satisfaction`? (1–5)                        |
| call.failed       | `reason`                                                              |
| lead.qualified    | `score` (0–100)                                                       |
| conversion        | `revenue`? (campaign currency)                                        |
| cost              | `amount` (campaign currency), `category`                              |
| widget.impression | —                                                                     |
| widget.click      | —                                                                     |
| widget.display    | `ms`                                                                  |

`call.*` events need a `callId`. Money is kept to the micro-unit (6 decimals).

Validation is per event: one bad event is reported with its index and the others go on.
The whole batch is validated in one pass (pydantic-core, straight from the JSON bytes);
only a batch with a bad event is taken apart and validated event by event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired, Union

import pydantic_core
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

MAX_BATCH = 5000
MAX_FUTURE = timedelta(minutes=5)  # clock skew we tolerate on `occurredAt`
MAX_AGE = timedelta(days=366)

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
VariantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Ref = Annotated[str, Field(min_length=1, max_length=128)]
# The campaign's id in canonical form (kept as text: it is a dict key and a Redis key on the hot path).
CampaignRef = Annotated[
    str,
    Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    AfterValidator(str.lower),
]
Money = Annotated[float, Field(ge=0, le=1e9)]
# Parsed after validation with datetime.fromisoformat: its datetimes (with datetime.timezone)
# convert to timestamps several times faster than pydantic's, on a path run for every event.
OccurredAt = Annotated[str, Field(min_length=10, max_length=64, json_schema_extra={"format": "date-time"})]
Seconds = Annotated[float, Field(ge=0, le=86_400)]

OUTCOMES = ("connected", "transferred", "voicemail", "no_answer", "busy", "rejected")
Outcome = Literal["connected", "transferred", "voicemail", "no_answer", "busy", "rejected"]
CostCategory = Literal["telephony", "stt", "tts", "llm", "other"]


@with_config(_STRICT)
class CallStartedData(TypedDict):
    waitSec: NotRequired[Seconds | None]
    direction: NotRequired[Literal["inbound", "outbound"] | None]


@with_config(_STRICT)
class CallCompletedData(TypedDict):
    durationSec: Seconds
    outcome: Outcome
    satisfaction: NotRequired[Annotated[float, Field(ge=1, le=5)] | None]


@with_config(_STRICT)
class CallFailedData(TypedDict):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


@with_config(_STRICT)
class LeadQualifiedData(TypedDict):
    score: Annotated[float, Field(ge=0, le=100)]


@with_config(_STRICT)
class ConversionData(TypedDict):
    revenue: NotRequired[Money | None]


@with_config(_STRICT)
class CostData(TypedDict):
    amount: Money
    category: CostCategory


@with_config(_STRICT)
class NoData(TypedDict):
    pass


@with_config(_STRICT)
class WidgetDisplayData(TypedDict):
    ms: Annotated[int, Field(ge=0, le=86_400_000)]


def _event(type_: str, data: Any, *, data_required: bool, call: bool) -> type:
    """The TypedDict of one event type (the common fields plus its `type` and `data`)."""
    annotations: dict[str, Any] = {
        "id": EventId,
        "campaignId": CampaignRef,
        "type": Literal[type_],
        "occurredAt": OccurredAt,
        "variantId": NotRequired[VariantId | None],
        "subjectId": NotRequired[Ref | None],
        "callId": Ref if call else NotRequired[Ref | None],
        "data": data if data_required else NotRequired[data],
    }
    name = "".join(p.capitalize() for p in type_.replace(".", "_").split("_")) + "Event"
    # mypy reads TypedDict(...) only with literal fields; these are built at run time.
    return with_config(_STRICT)(TypedDict(name, annotations))  # type: ignore[operator]


EVENT_TYPES: dict[str, type] = {
    "call.started": _event("call.started", CallStartedData, data_required=False, call=True),
    "call.completed": _event("call.completed", CallCompletedData, data_required=True, call=True),
    "call.failed": _event("call.failed", CallFailedData, data_required=True, call=True),
    "lead.qualified": _event("lead.qualified", LeadQualifiedData, data_required=True, call=False),
    "conversion": _event("conversion", ConversionData, data_required=False, call=False),
    "cost": _event("cost", CostData, data_required=True, call=False),
    "widget.impression": _event("widget.impression", NoData, data_required=False, call=False),
    "widget.click": _event("widget.click", NoData, data_required=False, call=False),
    "widget.display": _event("widget.display", WidgetDisplayData, data_required=True, call=False),
}
TYPES = tuple(EVENT_TYPES)
CALL_ENDS = frozenset({"call.completed", "call.failed"})
_OPTIONAL_DATA = frozenset({"call.started", "call.completed", "conversion"})

# Built at run time from EVENT_TYPES, so to mypy a value rather than a type.
Event: Any = Annotated[Union[tuple(EVENT_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


@with_config(_STRICT)
class Batch(TypedDict):
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH)]


_BATCH = TypeAdapter(Batch)
_EVENT = TypeAdapter(Event)


_NOT_A_TIME = "must be an ISO-8601 date-time with a UTC offset (e.g. '2026-05-01T12:00:00Z')"
_NO_OFFSET = "needs a UTC offset (e.g. '2026-05-01T12:00:00Z')"


@dataclass
class Rejection:
    index: int
    id: str | None
    field: str
    reason: str


@dataclass
class Parsed:
    # (index in the batch, event, occurredAt as seconds since the epoch)
    events: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class BatchError(ValueError):
    """The request as a whole is unusable (not JSON, no `events` list, too many events)."""

    def __init__(self, details: list[dict[str, str]]):
        super().__init__("; ".join(f"{d['field']}: {d['reason']}" for d in details))
        self.details = details


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out or "(event)"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"unknown event type {error['ctx']['tag']!r}; expected one of: {', '.join(TYPES)}"
    if kind == "union_tag_not_found":
        return f"missing; expected one of: {', '.join(TYPES)}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch" and error["loc"][-1] == "id":
        return "must be 1–128 visible ASCII characters (no spaces)"
    if kind == "string_pattern_mismatch" and error["loc"][-1] == "campaignId":
        return "must be a UUID (e.g. '1b4e28ba-2fa1-41d2-883f-0016d3cca427')"
    return str(error["msg"])


def _rejection(index: int, raw: Any, error: Mapping[str, Any]) -> Rejection:
    loc = tuple(error["loc"])
    if loc and isinstance(loc[0], int):
        loc = loc[1:]
    if loc and loc[0] in EVENT_TYPES:  # the discriminator's tag, not a field
        loc = loc[1:]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = ("type",)
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    return Rejection(index, raw_id if isinstance(raw_id, str) else None, _path(loc), _reason(error))


def _envelope_error(err: ValidationError) -> BatchError | None:
    """Errors about the batch itself rather than one of its events."""
    details = []
    for e in err.errors():
        loc = tuple(e["loc"])
        if len(loc) < 2 or loc[0] != "events" or not isinstance(loc[1], int):
            reason = (
                'must be a JSON object {"events": [...]}' if e["type"] in ("dict_type", "json_invalid") else e["msg"]
            )
            if e["type"] == "too_long":
                reason = f"at most {MAX_BATCH} events per batch"
            elif e["type"] == "too_short":
                reason = "at least one event"
            elif e["type"] == "extra_forbidden":
                reason = "unknown field"
            details.append({"field": _path(loc) if loc else "(body)", "reason": reason})
    return BatchError(details) if details else None


def parse_batch(body: bytes, *, now: datetime, retention: timedelta | None = None) -> Parsed:
    """Validate a batch. Raises BatchError when the request is unusable as a whole. Events
    older than `retention` (when shorter than a year) are refused: the record no longer
    keeps such events, nor their ids."""
    try:
        events: list[dict[str, Any]] = _BATCH.validate_json(body)["events"]
        raws: list[Any] | None = None
        per_event: list[tuple[int, dict[str, Any]]] = list(enumerate(events))
        parsed = Parsed()
    except ValidationError as err:
        envelope = _envelope_error(err)
        if envelope is not None:
            raise envelope from None
        # Some events are bad: validate one by one to keep the good ones. (The same JSON
        # parser as validate_json, which reads NaN and Infinity, so the number rule reports them.)
        raws = pydantic_core.from_json(body, allow_inf_nan=True)["events"]
        parsed = Parsed()
        per_event = []
        for index, raw in enumerate(raws):
            try:
                per_event.append((index, _EVENT.validate_python(raw)))
            except ValidationError as e:
                parsed.rejected.extend(_rejection(index, raw, x) for x in e.errors()[:1])
    max_age = min(MAX_AGE, retention) if retention else MAX_AGE
    too_old = "is more than a year old" if max_age == MAX_AGE else f"is older than the retention ({max_age.days} days)"
    earliest, latest = (now - max_age).timestamp(), (now + MAX_FUTURE).timestamp()
    accept = parsed.events.append
    for index, event in per_event:
        try:
            at = datetime.fromisoformat(event["occurredAt"])
        except ValueError:
            parsed.rejected.append(Rejection(index, event["id"], "occurredAt", _NOT_A_TIME))
            continue
        if at.tzinfo is None:
            parsed.rejected.append(Rejection(index, event["id"], "occurredAt", _NO_OFFSET))
            continue
        event["occurredAt"] = at
        ts = at.timestamp()  # compared as numbers from here on
        if ts > latest:
            parsed.rejected.append(
                Rejection(index, event["id"], "occurredAt", "is in the future (more than 5 minutes ahead)")
            )
            continue
        if ts < earliest:
            parsed.rejected.append(Rejection(index, event["id"], "occurredAt", too_old))
            continue
        type_ = event["type"]
        data = event.get("data")
        if data is None:
            event["data"] = {}
        elif type_ in _OPTIONAL_DATA:
            if None in data.values():
                data = event["data"] = {k: v for k, v in data.items() if v is not None}
            if type_ == "conversion" and "revenue" in data:
                data["revenue"] = round(data["revenue"], 6)
        elif type_ == "cost":
            data["amount"] = round(data["amount"], 6)
        accept((index, event, ts))
    if raws is not None:
        parsed.rejected.sort(key=lambda r: r.index)
    return parsed
