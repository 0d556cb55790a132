"""Worker processes for fault tests: `campaigns worker` (workflows, activities, the webhook
dispatcher and the hand-over relay) as a child process of the test, which can kill it.

`python -m tests.support.worker` is that worker, except that when BLOCK_ACTIVITY names an
activity, its first call writes the file BLOCK_MARKER and then never returns: the test waits
for the file and kills the worker at that exact point, after what led there (an update, a
timer) is recorded in the workflow's history.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from temporalio import activity

from campaigns import db
from campaigns.settings import Settings, get_settings
from campaigns.temporal import connect
from campaigns.webhooks.dispatcher import Dispatcher
from campaigns.worker import WORKFLOWS, CampaignsWorker, activity_holders, relay, sandbox_runner
from tests.support.polling import eventually


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_dsn,
        "REDIS_URL": settings.redis_dsn,
        "TEMPORAL_ADDRESS": settings.temporal_target,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "STATUS_CHANGE_WAIT_S": str(settings.status_change_wait_s),
        "HANDOVER_POLL_S": "0.2",
        "LOG_LEVEL": "warning",
        **extra,
    }


class WorkerProcess:
    """A worker child process; `block` names an activity to hang in (see the module's doc)."""

    def __init__(self, settings: Settings, *, block: str | None = None, marker: Path | None = None) -> None:
        extra = {"BLOCK_ACTIVITY": block, "BLOCK_MARKER": str(marker)} if block and marker else {}
        self.marker = marker
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.worker"], env=environment(settings, **extra))

    async def blocked(self, within: float = 30) -> None:
        """Wait until the blocked activity has been reached."""
        assert self.marker is not None
        marker = self.marker
        await eventually(marker.exists, f"the worker to reach {marker.name}", within=within)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _blocking(fn: Callable[..., Any], marker: Path) -> Callable[..., Any]:
    """The activity `fn`, under its own name and types, hanging on its first call."""
    name = activity._Definition.must_from_callable(fn).name
    reached = False

    @functools.wraps(fn, updated=())  # its name and types, not its activity definition
    async def blocked(*args: Any) -> Any:
        nonlocal reached
        if not reached:
            reached = True
            marker.write_text(name)
            await asyncio.Event().wait()  # until the test kills this process
        return await fn(*args)

    return activity.defn(name=name)(blocked)


async def main() -> None:
    settings = get_settings()
    client = await connect(settings)
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=settings.db_pool_max)
    redis = aioredis.from_url(settings.redis_dsn)
    holders = activity_holders(pool, settings, redis, client, client, settings.temporal_task_queue)
    activities = [fn for holder in holders for fn in holder.all()]
    block, marker = os.environ.get("BLOCK_ACTIVITY"), os.environ.get("BLOCK_MARKER")
    if block and marker:
        activities = [
            _blocking(fn, Path(marker)) if activity._Definition.must_from_callable(fn).name == block else fn
            for fn in activities
        ]
    worker = CampaignsWorker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=list(WORKFLOWS),
        activities=activities,
        holders=holders,
        workflow_runner=sandbox_runner(),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_s),
    )
    loops = [
        asyncio.create_task(Dispatcher(client, pool, settings, redis).run()),
        asyncio.create_task(relay(client, pool, settings, redis).run()),
    ]
    async with worker:
        await asyncio.Event().wait()
    for loop in loops:
        loop.cancel()


if __name__ == "__main__":
    asyncio.run(main())
