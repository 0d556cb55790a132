"""The simulator's traffic: plausible, complete and replayable."""

from __future__ import annotations

import uuid
from collections import Counter

from campaigns.simulator.traffic import SimCampaign, Traffic

ORG = uuid.uuid4()
PHONE = SimCampaign(uuid.uuid4(), ORG, "phone", "outbound")
WEB = SimCampaign(uuid.uuid4(), ORG, "multi", "hybrid")


def run_for(seconds: float, *, rate: float = 5.0, seed: int = 1, campaigns=(PHONE, WEB)) -> tuple[Traffic, list[dict]]:
    traffic = Traffic(rate=rate, time_scale=10, seed=seed)
    events: list[dict] = []
    now = 0.0
    while now < seconds:
        traffic.plan(list(campaigns), now, 0.5)
        events += [e for _, e in traffic.due(now)]
        now += 0.5
    events += [e for _, e in traffic.due(float("inf"))]  # let every call finish
    return traffic, events


def test_every_call_starts_and_ends_once():
    traffic, events = run_for(60)
    by_call: dict[str, list[str]] = {}
    for e in events:
        if e["type"].startswith("call."):
            by_call.setdefault(e["callId"], []).append(e["type"])
    assert 200 < len(by_call) < 400  # about 5 calls a second for a minute
    for types in by_call.values():
        assert types[0] == "call.started" and len(types) == 2 and types[1] in ("call.completed", "call.failed")
    assert traffic.totals.in_progress == 0 and traffic.totals.calls == len(by_call)


def test_the_numbers_are_plausible():
    traffic, events = run_for(120)
    counts = Counter(e["type"] for e in events)
    completed = [e["data"] for e in events if e["type"] == "call.completed"]
    talks = [d for d in completed if d["outcome"] in ("connected", "transferred")]
    assert 0.5 < len(talks) / counts["call.started"] < 0.8
    assert 0.2 < counts["lead.qualified"] / len(talks) < 0.45
    assert counts["conversion"] <= counts["lead.qualified"]
    median = sorted(d["durationSec"] for d in talks)[len(talks) // 2]
    assert 90 < median < 250  # about two and a half minutes
    categories = Counter(e["data"]["category"] for e in events if e["type"] == "cost")
    assert set(categories) == {"telephony", "stt", "tts", "llm"}
    assert abs(sum(e["data"]["amount"] for e in events if e["type"] == "cost") - traffic.totals.cost) < 1e-6


def test_widget_events_only_for_web_campaigns():
    _, events = run_for(60)
    widget = [e for e in events if e["type"].startswith("widget.")]
    assert widget and {e["campaignId"] for e in widget} == {str(WEB.id)}
    clicks = Counter(e["type"] for e in widget)
    assert clicks["widget.click"] == clicks["widget.display"] < clicks["widget.impression"]
    # Some visitors who clicked convert, under their visitor id.
    clickers = {e["subjectId"] for e in widget if e["type"] == "widget.click"}
    assert {e["subjectId"] for e in events if e["type"] == "conversion"} & clickers


def test_ids_are_unique_and_events_are_dated():
    _, events = run_for(30)
    assert len({e["id"] for e in events}) == len(events)
    assert all(e["occurredAt"].endswith("+00:00") for e in events)


def test_the_same_seed_replays_the_same_traffic():
    def shape(events):
        return [(e["type"], e["campaignId"], e["data"]) for e in events]

    assert shape(run_for(20, seed=7)[1]) == shape(run_for(20, seed=7)[1])
    assert shape(run_for(20, seed=7)[1]) != shape(run_for(20, seed=8)[1])


def test_no_campaigns_no_traffic():
    traffic, events = run_for(10, campaigns=())
    assert events == [] and traffic.totals.calls == 0


def test_every_event_is_valid_for_the_ingestion():
    from datetime import UTC, datetime

    import orjson

    from campaigns.domain.analytics_events import parse_batch

    _, events = run_for(60)
    parsed = parse_batch(orjson.dumps({"events": events}), now=datetime.now(UTC))
    assert parsed.rejected == [] and len(parsed.events) == len(events)
