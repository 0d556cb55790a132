"""Window limits shared between processes through Redis, decided locally."""

from __future__ import annotations

import uuid

from campaigns.limits import WindowLimiter


async def test_processes_share_a_limit_once_they_have_synced(redis_client):
    name = f"t-{uuid.uuid4().hex[:6]}"
    a = WindowLimiter(redis_client, name=name, window_s=60)
    b = WindowLimiter(redis_client, name=name, window_s=60)
    checks = [("client", 10)]
    assert all(a.allow(checks) is None for _ in range(6))
    await a.sync()
    assert all(b.allow(checks) is None for _ in range(4))
    await b.sync()  # b learns that a counted 6
    assert b.allow(checks) is not None
    # a learns of b's 4 when it next adds its own counts: at most one sync interval late.
    assert a.allow(checks) is None
    await a.sync()
    assert a.allow(checks) is not None
    assert a.allow([("another", 10)]) is None


async def test_a_refused_request_counts_nothing_and_every_check_must_pass(redis_client):
    limiter = WindowLimiter(redis_client, name=f"t-{uuid.uuid4().hex[:6]}", window_s=60)
    assert limiter.allow([("key", 5), ("org", 3)]) is None
    assert limiter.allow([("key", 5), ("org", 3)], cost=2) is None
    assert limiter.allow([("key", 5), ("org", 3)]) is not None  # the organization's 3 are used
    assert limiter.allow([("key", 5)], cost=2) is None  # the key's own count was not raised by the refusal
    assert limiter.exceeded("key", 5) is not None


async def test_without_redis_each_process_keeps_the_limit_on_its_own(redis_client):
    limiter = WindowLimiter(redis_client, name=f"t-{uuid.uuid4().hex[:6]}", window_s=60)
    limiter.redis = redis_client.__class__.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert all(limiter.allow([("client", 3)]) is None for _ in range(3))
    try:
        await limiter.sync()
    except Exception:  # noqa: BLE001 - nothing listens there
        pass
    assert limiter.allow([("client", 3)]) is not None
    await limiter.redis.aclose()
