"""Validating a batch of events: every type, every rule, one bad event never sinks the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from campaigns.domain.analytics_events import MAX_BATCH, BatchError, parse_batch

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
CID = str(uuid.uuid4())


def ev(type_: str, data=None, **fields):
    out = {"id": fields.pop("id", uuid.uuid4().hex), "campaignId": CID, "type": type_,
           "occurredAt": fields.pop("occurredAt", "2026-05-01T11:59:00Z"), **fields}
    if data is not None:
        out["data"] = data
    return out


def parse(*events):
    return parse_batch(orjson.dumps({"events": list(events)}), now=NOW)


VALID = [
    ev("call.started", callId="c"),
    ev("call.started", {"waitSec": 3.5, "direction": "inbound"}, callId="c"),
    ev("call.completed", {"durationSec": 61, "outcome": "transferred", "satisfaction": 5}, callId="c"),
    ev("call.failed", {"reason": "carrier rejected"}, callId="c"),
    ev("lead.qualified", {"score": 0}, subjectId="p1"),
    ev("conversion"),
    ev("conversion", {"revenue": 19.99}),
    ev("cost", {"amount": 0, "category": "stt"}),
    ev("widget.impression"),
    ev("widget.click", {}, variantId="B"),
    ev("widget.display", {"ms": 2500}),
]


def test_campaign_ids_are_canonical():
    (_, event, _), = parse(ev("widget.click") | {"campaignId": CID.upper()}).events
    assert event["campaignId"] == CID


def test_every_type_is_accepted():
    parsed = parse(*VALID)
    assert parsed.rejected == [] and [i for i, _, _ in parsed.events] == list(range(len(VALID)))
    _, event, ts = parsed.events[2]
    assert event["campaignId"] == CID and event["occurredAt"] == datetime(2026, 5, 1, 11, 59, tzinfo=UTC)
    assert ts == event["occurredAt"].timestamp()


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        (ev("call.completed", {"durationSec": 5, "outcome": "connected"}), "callId", "required"),
        (ev("call.completed", {"durationSec": -1, "outcome": "connected"}, callId="c"), "data.durationSec", "greater"),
        (ev("call.completed", {"durationSec": 5, "outcome": "maybe"}, callId="c"), "data.outcome", "connected"),
        (ev("call.completed", {"durationSec": 5, "outcome": "busy", "satisfaction": 6}, callId="c"),
         "data.satisfaction", "5"),
        (ev("call.failed", {}, callId="c"), "data.reason", "required"),
        (ev("lead.qualified"), "data", "required"),
        (ev("cost", {"amount": 1e10, "category": "llm"}), "data.amount", "1000000000"),
        (ev("cost", {"amount": 1, "category": "llm", "extra": 1}), "data.extra", "unknown field"),
        (ev("widget.display", {"ms": 1.5}), "data.ms", "integer"),
        (ev("widget.click", {"x": 1}), "data.x", "unknown field"),
        (ev("widget.click", occurredAt="2026-05-01T11:00:00"), "occurredAt", "offset"),
        (ev("widget.click", occurredAt="yesterday"), "occurredAt", "at least 10"),
        (ev("widget.click", occurredAt="2026-13-01T00:00:00Z"), "occurredAt", "ISO-8601"),
        (ev("widget.click", occurredAt="2026-05-01"), "occurredAt", "offset"),
        (ev("widget.click", occurredAt="2026-05-01T12:06:00Z"), "occurredAt", "future"),
        (ev("widget.click", occurredAt="2025-04-01T00:00:00Z"), "occurredAt", "year"),
        (ev("widget.click", id=""), "id", "1 character"),
        (ev("widget.click", id="has space"), "id", "visible ASCII"),
        (ev("widget.click", id="x" * 129), "id", "128"),
        (ev("widget.click", variantId="a b"), "variantId", "pattern"),
        ({**ev("widget.click"), "campaignId": "c-1"}, "campaignId", "UUID"),
        ({**ev("widget.click"), "campaignId": CID.replace("-", "")}, "campaignId", "UUID"),
        ({"id": "a", "campaignId": CID, "occurredAt": "2026-05-01T11:00:00Z"}, "type", "missing"),
    ],
)
def test_a_bad_event_names_its_field(event, field, words):
    parsed = parse(VALID[0], event)
    assert [i for i, _, _ in parsed.events] == [0]
    (rejection,) = parsed.rejected
    assert rejection.index == 1 and rejection.field == field
    assert words.lower() in rejection.reason.lower(), rejection.reason


def test_non_finite_numbers_are_refused():
    body = orjson.dumps({"events": [ev("cost", {"amount": 1, "category": "llm"})]}).replace(b"1,", b"NaN,")
    (rejection,) = parse_batch(body, now=NOW).rejected
    assert rejection.field == "data.amount"


def test_money_is_kept_to_the_micro_unit_and_nulls_are_dropped():
    parsed = parse(ev("cost", {"amount": 0.1234565, "category": "llm"}),
                   ev("call.completed", {"durationSec": 1, "outcome": "busy", "satisfaction": None}, callId="c"))
    assert parsed.events[0][1]["data"]["amount"] == round(0.1234565, 6)
    assert parsed.events[1][1]["data"] == {"durationSec": 1.0, "outcome": "busy"}


def test_the_slow_path_keeps_what_the_fast_path_would():
    good = parse(*VALID).events
    mixed = parse(*VALID, ev("lead.qualified", {"score": 101})).events
    assert good == mixed


@pytest.mark.parametrize(
    ("body", "field"),
    [(b"", "(body)"), (b"{}", "events"), (b'{"events": 1}', "events"), (b'{"events": [], "x": 1}', "events")],
)
def test_unusable_batches(body, field):
    with pytest.raises(BatchError) as err:
        parse_batch(body, now=NOW)
    assert field in {d["field"] for d in err.value.details}


def test_the_batch_size_is_limited():
    with pytest.raises(BatchError):
        parse(*([VALID[-1]] * (MAX_BATCH + 1)))
    assert len(parse(*([VALID[-1]] * MAX_BATCH)).events) == MAX_BATCH


def test_recent_past_is_fine():
    assert parse(ev("widget.click", occurredAt=(NOW - timedelta(days=300)).isoformat())).rejected == []
