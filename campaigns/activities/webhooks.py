"""The delivery activity: one attempt of a delivery for its workflow, which drives the
retries after a failed first attempt (the first is a dispatcher's, made directly).

The attempt itself (signing, sending, recording, 410, disabling) is
`campaigns.webhooks.attempts`, shared with the dispatcher's direct attempts. This activity
sends only while the delivery is pending, in the run the workflow drives, and handed over to
a workflow, so a stale or duplicate workflow run sends nothing.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from temporalio import activity

from campaigns.messages import webhook_delivery as m
from campaigns.messages.webhook_delivery import AttemptOutcome, AttemptRequest
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.webhooks.attempts import Attempts

log = logging.getLogger("campaigns.webhooks")


class WebhookActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, redis: aioredis.Redis) -> None:
        self.pool = pool
        self.attempts = Attempts(pool, settings, redis)

    async def aclose(self) -> None:
        await self.attempts.aclose()

    @activity.defn(name=m.ATTEMPT_DELIVERY)
    async def attempt_delivery(self, request: AttemptRequest) -> AttemptOutcome:
        """Send one attempt of a delivery and record it; say whether and when to retry."""
        row = await repo.delivery_for_attempt(self.pool, UUID(request.delivery_id))
        if row is None:
            return AttemptOutcome(final=True, status="cancelled", summary="endpoint or delivery deleted")
        if row["run"] != request.run or row["status"] != "pending" or row["direct"]:
            # A newer run (redelivery) took over, this run already finished, or a dispatcher
            # holds the delivery for a direct attempt.
            return AttemptOutcome(final=True, status=row["status"], summary="nothing to do")
        return await self.attempts.attempt(row, request)

    def all(self) -> list:
        return [self.attempt_delivery]
