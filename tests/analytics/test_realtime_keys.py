"""The real-time counters' keys: each script call names every key it touches, and those keys
share the campaign's hash slot, as Redis Cluster requires."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from redis.crc import key_slot

from campaigns.analytics.delta import build
from campaigns.analytics.realtime import BUCKET_TTL, Realtime, _split
from campaigns.domain import periods
from campaigns.domain.analytics_events import parse_batch
from tests.support.analytics import call, event


def slots(keys: list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


def test_a_batch_is_applied_one_campaign_and_one_slot_per_call():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    events = call(a, lead=50, cost=1) + call(b) + [event(b, "call.started", callId="live", at=now - timedelta(hours=1))]
    delta = build(uuid.uuid4(), uuid.uuid4(), parse_batch(orjson.dumps({"events": events}), now=now).events)
    parts = _split(delta, int(time.time() - BUCKET_TTL) // periods.BUCKET_SECONDS)
    assert sorted(c for c, _, _ in parts) == sorted([a, b])
    for campaign, keys, _ in parts:
        assert len(slots(keys)) == 1 and all(f"{{{campaign}}}" in k for k in keys)


def test_a_read_names_its_keys_in_one_hash_slot():
    cid = str(uuid.uuid4())
    start, end = periods.today(datetime.now(UTC), "Asia/Kolkata")
    keys, (first, last, _) = Realtime._read_call(cid, start, end, 0.0)
    assert len(keys) == 3 and len(slots(keys)) == 1
    assert last - first + 1 == (end - start) // timedelta(minutes=15)  # the day's slots, as fields of one hash
