"""The worker's composition: its capacity comes from Settings."""

from __future__ import annotations

import uuid
from datetime import timedelta

from campaigns.settings import Settings
from campaigns.worker import build_worker


async def test_the_worker_takes_its_capacity_from_settings(settings: Settings, temporal_client, pool, redis_client):
    tuned = settings.model_copy(update={
        "worker_max_cached_workflows": 1234, "worker_max_concurrent_workflow_tasks": 7,
        "worker_max_concurrent_activities": 9, "worker_max_concurrent_local_activities": 11,
        "worker_sticky_timeout_s": 4.5,
    })
    worker = build_worker(temporal_client, pool, f"config-{uuid.uuid4().hex[:8]}", settings=tuned, redis=redis_client)
    config = worker.config()
    assert config["max_cached_workflows"] == 1234
    assert config["max_concurrent_workflow_tasks"] == 7
    assert config["max_concurrent_activities"] == 9
    assert config["max_concurrent_local_activities"] == 11
    assert config["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=4.5)
    # A caller's own options still win (the tests' time-skipping workers pass theirs).
    assert build_worker(temporal_client, pool, "other", settings=tuned, redis=redis_client,
                        max_cached_workflows=5).config()["max_cached_workflows"] == 5
