"""One attempt of a delivery: build the signed request, send it under the endpoint's
concurrency limit, record it and decide what comes next. The same code serves both paths:

- the direct path: a dispatcher makes the first attempt straight from the delivery row,
  holding a claim on it (`Claim`), and writes only while that claim is still its own;
- the workflow path: the delivery activity makes every later attempt for the delivery's
  `WebhookDeliveryWorkflow`.

Idempotent in what it stores: an attempt re-made after a crash rewrites its own row (keyed
by delivery, run and attempt). The request itself may reach the receiver twice if a sender
dies after sending and before recording; the `webhook-id` header, the same on every attempt,
lets receivers drop the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from campaigns.campaigns import repository as campaigns_repo
from campaigns.db import Connection
from campaigns.domain import netguard
from campaigns.domain.webhooks import RetryConfig, message_id, next_delay, throttle_delay
from campaigns.messages.webhook_delivery import AttemptOutcome, AttemptRequest
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.webhooks import secrets
from campaigns.webhooks.limiter import EndpointLimiter
from campaigns.webhooks.sender import Response, Sender
from campaigns.webhooks.service import display_url

log = logging.getLogger("campaigns.webhooks")

USER_AGENT = "QuantumCampaigns-Webhooks/1.0"
# How long an attempt waits for a free slot under the endpoint's concurrency limit before
# giving way (the workflow waits a little and asks again; a dispatcher hands the row back).
SLOT_WAIT_S = 2.0


@dataclass(frozen=True)
class Claim:
    """A dispatcher's hold on a direct delivery. `deadline` is the event loop's time by which
    the claim lapses, read on this side (taken before the claiming transaction began, so it
    never falls after the database's)."""

    token: UUID
    deadline: float

    def covers(self, seconds: float) -> bool:
        """Does the claim last `seconds` more?"""
        return asyncio.get_running_loop().time() + seconds <= self.deadline


def claim_lease_s(settings: Settings) -> float:
    """How long a claim lasts: a whole attempt (waiting for a slot, sending) and then some, so
    a live holder has always finished before anyone else may take the row."""
    return SLOT_WAIT_S + settings.webhook_timeout_s + settings.dispatch_claim_grace_s


def build_request(settings: Settings, row: asyncpg.Record) -> tuple[str, dict[str, str], bytes]:
    """The request of an attempt (URL, signed headers, body), whichever path makes it."""
    now = datetime.now(UTC).replace(microsecond=0)
    signing = [secrets.decrypt(settings, row["secret"])]
    if row["previous_secret"] and row["previous_secret_expires_at"] and row["previous_secret_expires_at"] > now:
        signing.append(secrets.decrypt(settings, row["previous_secret"]))
    url, custom = secrets.unseal(settings, row)
    msg_id = message_id(row["id"])
    headers = {
        **custom,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": secrets.signature(signing, msg_id, now, row["body"]),
    }
    return url, headers, row["body"].encode()


class Attempts:
    """Holds what attempts share in one process: the sender's connection pool, the limiter."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, redis: aioredis.Redis) -> None:
        self.pool = pool
        self.settings = settings
        self.allowed = netguard.parse_networks(settings.webhook_allowed_networks)
        self.limiter = EndpointLimiter(redis, lease_s=settings.webhook_timeout_s + 30)
        self._sender: Sender | None = None

    @property
    def sender(self) -> Sender:
        # Made on first use, inside the process's event loop.
        if self._sender is None:
            self._sender = Sender(
                allowed=self.allowed,
                connect_timeout=self.settings.webhook_connect_timeout_s,
                total_timeout=self.settings.webhook_timeout_s,
            )
        return self._sender

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()

    async def attempt(self, row: asyncpg.Record, request: AttemptRequest, claim: Claim | None = None) -> AttemptOutcome:
        """Send one attempt of a pending delivery and record it; say whether and when to retry.
        With a `claim` (the direct path), a delivery still to be retried is handed over to its
        workflow in the same transaction that records the attempt (the caller starts it)."""
        if not row["enabled"] and row["event_type"] != "webhook.test":
            return await self._finish(row, request, claim, "endpoint disabled")
        if self._age(row) > self.settings.webhook_max_delivery_age_s:
            # However it got here (waiting on a busy endpoint, say), it has tried long enough.
            return await self._expire(row, request, claim)

        body = row["body"].encode()
        started_at = datetime.now(UTC)
        if len(body) > self.settings.webhook_max_payload_bytes:
            response = Response(
                None,
                None,
                0.0,
                "payload_too_large",
                f"body of {len(body)} bytes exceeds the {self.settings.webhook_max_payload_bytes}-byte cap",
            )
        else:
            try:
                url, headers, body = build_request(self.settings, row)
            except secrets.UndecryptableSecret as err:
                # Retrying cannot help until an operator restores the key: fail the delivery
                # visibly (recover re-sends it once the key is back).
                return await self._finish(row, request, claim, str(err))
            except Exception as err:  # noqa: BLE001 - a failed attempt like any other, never an endless retry
                return await self._record(
                    row,
                    request,
                    claim,
                    started_at,
                    Response(
                        None, None, 0.0, "unexpected", f"could not build the request: {type(err).__name__}: {err}"[:500]
                    ),
                )
            if claim is not None and not claim.covers(SLOT_WAIT_S + self.settings.webhook_timeout_s):
                # Waited too long for a sender: the attempt could outlast the claim, and a
                # lapsed claim may be taken by another dispatcher. Give it back, due now.
                await repo.release(self.pool, delivery_id=row["id"], claim=claim.token, delay_s=0)
                return AttemptOutcome(final=True, status="pending", summary="claim given back unused")
            async with self.limiter.slot(str(row["endpoint_id"]), row["max_concurrency"], wait_s=SLOT_WAIT_S) as ok:
                if not ok:
                    delay = throttle_delay(request.throttled, random.random())
                    if claim is not None:
                        # Not an attempt: the row goes back to the dispatchers, due later.
                        await repo.release(self.pool, delivery_id=row["id"], claim=claim.token, delay_s=delay)
                    return AttemptOutcome(
                        final=claim is not None,
                        status="pending",
                        counted=False,
                        retry_in=delay,
                        summary="waiting for a free slot under the concurrency limit",
                    )
                started_at = datetime.now(UTC)
                response = await self.sender.post(url, headers, body)
        return await self._record(row, request, claim, started_at, response)

    @staticmethod
    def _age(row: asyncpg.Record) -> float:
        """Seconds since the delivery's current run began."""
        return (row["now"] - row["run_started_at"]).total_seconds()

    @asynccontextmanager
    async def _held(self, row: asyncpg.Record, request: AttemptRequest, claim: Claim | None) -> AsyncIterator:
        """A transaction on the delivery: on the direct path, None if the claim was lost."""
        async with self.pool.acquire() as conn, conn.transaction():
            if claim is not None and not await repo.hold(
                conn, delivery_id=row["id"], run=request.run, claim=claim.token
            ):
                log.warning("delivery %s: claim lapsed before its attempt was recorded", row["id"])
                yield None
            else:
                yield conn

    async def _record(
        self,
        row: asyncpg.Record,
        request: AttemptRequest,
        claim: Claim | None,
        started_at: datetime,
        response: Response,
    ) -> AttemptOutcome:
        if response.ok:
            assert response.status_code is not None  # ok: a 2xx status arrived
            recorded = await repo.record_delivered(
                self.pool,
                delivery_id=row["id"],
                endpoint_id=row["endpoint_id"],
                run=request.run,
                attempt=request.attempt,
                started_at=started_at,
                latency_ms=round(response.latency_ms, 2),
                status_code=response.status_code,
                excerpt=response.excerpt,
                claim=claim.token if claim else None,
            )
            if not recorded and claim is not None:
                log.warning("delivery %s: claim lapsed before its attempt was recorded", row["id"])
                return _lost()
            return AttemptOutcome(final=True, status="succeeded", summary=f"HTTP {response.status_code}")
        retry = RetryConfig.model_validate(row["retry_config"] or {})
        async with self._held(row, request, claim) as conn:
            if conn is None:
                return _lost()
            await repo.record_attempt(
                conn,
                delivery_id=row["id"],
                run=request.run,
                attempt=request.attempt,
                started_at=started_at,
                latency_ms=round(response.latency_ms, 2),
                status_code=response.status_code,
                excerpt=response.excerpt,
                error_class=response.error_class,
                error=response.error,
                retry_after_s=response.retry_after_s,
            )
            if response.status_code == 410:
                await repo.record_failure(conn, row["endpoint_id"])
                await self._disable(conn, row, "gone", "the endpoint answered 410 Gone")
                await self._set(conn, row, request, "failed", response)
                return AttemptOutcome(final=True, status="failed", summary="410 Gone: endpoint disabled")
            if await self._count_failure(conn, row, retry):
                await self._set(conn, row, request, "failed", response)
                return AttemptOutcome(final=True, status="failed", summary="endpoint failing too long: disabled")
            if response.error_class in ("blocked", "payload_too_large") or request.attempt >= retry.max_attempts:
                await self._set(conn, row, request, "failed", response)
                return AttemptOutcome(final=True, status="failed", summary=response.error or "failed")
            delay = next_delay(request.attempt, retry, random.random(), response.retry_after_s)
            if self._age(row) + delay > self.settings.webhook_max_delivery_age_s:
                given_up = replace(response, error=f"{response.error or 'failed'}; {self._too_old()}")
                await self._set(conn, row, request, "failed", given_up)
                return AttemptOutcome(final=True, status="failed", summary=given_up.error or "failed")
            await self._set(
                conn, row, request, "pending", response, next_at=datetime.now(UTC) + timedelta(seconds=delay)
            )
            return AttemptOutcome(
                final=False,
                status="pending",
                retry_in=delay,
                summary=f"{response.error or 'failed'}; retry in {delay:.1f}s",
            )

    async def _count_failure(self, conn: Connection, row: asyncpg.Record, retry: RetryConfig) -> bool:
        """Note a failure against the endpoint's health; disable it if it has been failing
        too long (True then)."""
        failing_since = await repo.record_failure(conn, row["endpoint_id"])
        disable_after = retry.disable_after_seconds or self.settings.webhook_disable_after_s
        if failing_since is not None and (row["now"] - failing_since).total_seconds() >= disable_after:
            await self._disable(conn, row, "failing", f"failing without a success since {failing_since.isoformat()}")
            return True
        return False

    def _too_old(self) -> str:
        return f"given up: older than the maximum age of a delivery ({self.settings.webhook_max_delivery_age_s:g} s)"

    async def _expire(self, row: asyncpg.Record, request: AttemptRequest, claim: Claim | None) -> AttemptOutcome:
        """Give a delivery up without another attempt; it counts as a failure of the endpoint."""
        retry = RetryConfig.model_validate(row["retry_config"] or {})
        async with self._held(row, request, claim) as conn:
            if conn is None:
                return _lost()
            await self._count_failure(conn, row, retry)
            await repo.update_delivery(
                conn,
                delivery_id=row["id"],
                run=request.run,
                status="failed",
                attempts=row["attempts"],
                status_code=None,
                error_class="expired",
                error=self._too_old(),
                next_attempt_at=None,
            )
        return AttemptOutcome(final=True, status="failed", summary=self._too_old())

    async def _set(
        self,
        conn: Connection,
        row: asyncpg.Record,
        request: AttemptRequest,
        status: str,
        response: Response,
        next_at: datetime | None = None,
    ) -> None:
        await repo.update_delivery(
            conn,
            delivery_id=row["id"],
            run=request.run,
            status=status,
            attempts=request.attempt,
            status_code=response.status_code,
            error_class=response.error_class,
            error=response.error,
            next_attempt_at=next_at,
            # A handed-over delivery whose sender dies before starting its workflow: the
            # sweep starts it after this long.
            start_within_s=self.settings.dispatch_sweep_age_s,
        )

    async def _finish(
        self, row: asyncpg.Record, request: AttemptRequest, claim: Claim | None, error: str
    ) -> AttemptOutcome:
        """Fail the delivery without an attempt."""
        async with self._held(row, request, claim) as conn:
            if conn is None:
                return _lost()
            await repo.update_delivery(
                conn,
                delivery_id=row["id"],
                run=request.run,
                status="failed",
                attempts=row["attempts"],
                status_code=None,
                error_class=None,
                error=error,
                next_attempt_at=None,
            )
        return AttemptOutcome(final=True, status="failed", summary=error)

    async def _disable(self, conn: Connection, row: asyncpg.Record, reason: str, detail: str) -> None:
        """Disable the endpoint and tell its owner with a `webhook.endpoint_disabled` event."""
        endpoint = await repo.disable(conn, endpoint_id=row["endpoint_id"], reason=reason)
        if endpoint is None:
            return  # already disabled (and reported) by a concurrent attempt
        log.warning("webhook endpoint %s disabled: %s", endpoint["id"], detail)
        campaign_id = endpoint["campaign_id"]
        await campaigns_repo.record_platform_event(
            conn,
            # One event per disabling: derived from the endpoint and the version it moved to.
            event_id=uuid.uuid5(endpoint["id"], f"disabled:{endpoint['version']}"),
            organization_id=endpoint["organization_id"],
            campaign_id=campaign_id,
            type_="webhook.endpoint_disabled",
            data={
                "webhookId": str(endpoint["id"]),
                "campaignId": str(campaign_id) if campaign_id else None,
                "url": display_url(self.settings, endpoint),
                "reason": reason,
                "detail": detail,
            },
            occurred_at=datetime.now(UTC),
        )


def _lost() -> AttemptOutcome:
    # Another dispatcher holds the delivery now and makes its attempt: nothing more here.
    return AttemptOutcome(final=True, status="pending", summary="claim lapsed: left to its new holder")
