"""Webhook and integration use cases: subscriptions, secrets, test pings, reading
deliveries and replaying them.

An endpoint lives in a scope: one campaign's, or the organization-wide one (campaign None).
Integrations are endpoints of another kind in a campaign's scope; everything below
serves both, told apart by `kinds`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from campaigns.auth.principals import Principal
from campaigns.campaigns.cache import CampaignCache
from campaigns.campaigns.service import get_row as get_campaign_row
from campaigns.db import Connection, one
from campaigns.domain import integrations, netguard
from campaigns.domain.webhooks import MASK, RetryConfig, envelope, mask, mask_url, message_id
from campaigns.errors import Conflict, NotFound, invalid
from campaigns.settings import Settings
from campaigns.webhooks import repository as repo
from campaigns.webhooks import secrets
from campaigns.webhooks.models import (
    Attempt,
    Delivery,
    Integration,
    IntegrationCreate,
    IntegrationUpdate,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)

WEBHOOK = ("webhook",)
INTEGRATION = ("http_push", "slack")
RECOVER_LIMIT = 10_000


@dataclass(frozen=True)
class Scope:
    """Where endpoints live: a campaign of the organization, or the organization as a whole."""

    organization_id: UUID
    campaign_id: UUID | None


async def campaign_scope(
    pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID
) -> Scope:
    await get_campaign_row(pool, cache, principal, campaign_id)  # 404 for another organization's
    return Scope(principal.organization_id, campaign_id)


def organization_scope(principal: Principal) -> Scope:
    return Scope(principal.organization_id, None)


# --- The SSRF guard at creation ----------------------------------------------------------


async def check_destination(settings: Settings, url: str, field: str = "url") -> None:
    """Refuse a URL whose host is, or resolves to, an address webhooks may not reach.
    A name that does not resolve yet is accepted: the same check runs at every connection."""
    allowed = netguard.parse_networks(settings.webhook_allowed_networks)
    try:
        host = netguard.client_host(url)  # as the sender's HTTP client will read it
        literal = netguard.host_address(host)
    except ValueError as err:
        raise invalid([{"field": field, "reason": str(err)}]) from None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout=3
            )
        except (OSError, TimeoutError, UnicodeError):
            return
        addresses = [a for a in (netguard.literal_ip(str(i[4][0])) for i in infos) if a is not None]
    for address in addresses:
        if netguard.blocked_reason(address, allowed):
            # Which address a name led to is not the tenant's to learn.
            raise invalid([{"field": field, "reason": f"{netguard.REFUSED} (webhooks reach public addresses only)"}])


# --- Credentials at rest -------------------------------------------------------------------


async def seal_stored_credentials(*, pool: asyncpg.Pool, settings: Settings, batch: int = 500) -> int:
    """Encrypt in place the URLs and header values of endpoints saved before they were
    encrypted; return how many. Idempotent, and safe to run in several processes at once."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await repo.unsealed_endpoints(conn, batch)
            for row in rows:
                url, headers = secrets.seal(settings, row["url"], dict(row["headers"] or {}))
                await repo.store_sealed(conn, endpoint_id=row["id"], url=url, headers=headers)
        total += len(rows)
        if len(rows) < batch:
            return total


# --- Shaping rows --------------------------------------------------------------------------


def _state(row: asyncpg.Record) -> str:
    if not row["enabled"]:
        return "disabled"
    return "failing" if row["failing_since"] else "active"


def display_url(settings: Settings, row: Mapping[str, Any] | asyncpg.Record) -> str:
    """How an endpoint's URL is shown: a webhook's as it is, an integration's (a Slack URL is
    its own credential) masked."""
    try:
        url, _ = secrets.unseal(settings, row)
    except secrets.UndecryptableSecret:
        return MASK  # the key is gone (the deliveries say so); a read must still work
    return url if row["kind"] == "webhook" else mask_url(url)


def _shown_headers(settings: Settings, row: Mapping[str, Any] | asyncpg.Record) -> dict[str, str]:
    try:
        _, headers = secrets.unseal(settings, row)
    except secrets.UndecryptableSecret:
        return {name: MASK for name in row["headers"] or {}}
    return {name: mask(value) for name, value in headers.items()}


def to_webhook(settings: Settings, row: asyncpg.Record, secret: str | None = None) -> Webhook:
    expires = row["previous_secret_expires_at"]
    return Webhook(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        campaign_id=str(row["campaign_id"]) if row["campaign_id"] else None,
        url=display_url(settings, row),
        description=row["description"],
        event_types=list(row["event_types"]),
        headers=_shown_headers(settings, row),
        retry_config=RetryConfig.model_validate(row["retry_config"]),
        max_concurrency=row["max_concurrency"],
        enabled=row["enabled"],
        state=_state(row),
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
        failing_since=row["failing_since"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        secret_rotation={"previous_secret_expires_at": expires} if expires and expires > datetime.now(UTC) else None,
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        secret=secret,
    )


def to_integration(settings: Settings, row: asyncpg.Record, secret: str | None = None) -> Integration:
    return Integration(
        id=str(row["id"]),
        campaign_id=str(row["campaign_id"]),
        type=row["kind"],
        name=row["name"],
        url=display_url(settings, row),
        event_types=list(row["event_types"]),
        config=row["config"],
        headers=_shown_headers(settings, row),
        retry_config=RetryConfig.model_validate(row["retry_config"]),
        max_concurrency=row["max_concurrency"],
        enabled=row["enabled"],
        state=_state(row),
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        secret=secret,
    )


def to_delivery(row: asyncpg.Record, attempts: list[asyncpg.Record] | None = None) -> Delivery:
    return Delivery(
        id=str(row["id"]),
        webhook_id=str(row["endpoint_id"]),
        message_id=message_id(row["id"]),
        event_id=str(row["event_id"]) if row["event_id"] else None,
        event_type=row["event_type"],
        campaign_id=str(row["campaign_id"]) if row["campaign_id"] else None,
        sequence=row["sequence"],
        status=row["status"],
        run=row["run"],
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error_class=row["last_error_class"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        payload=json.loads(row["body"]) if attempts is not None else None,
        attempt_log=[to_attempt(a) for a in attempts] if attempts is not None else None,
    )


def to_attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        run=row["run"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        latency_ms=row["latency_ms"],
        status_code=row["status_code"],
        response_excerpt=row["response_excerpt"],
        error_class=row["error_class"],
        error=row["error"],
        retry_after_seconds=row["retry_after_s"],
    )


# --- Endpoints -----------------------------------------------------------------------------


async def get_endpoint_row(pool, scope: Scope, endpoint_id: UUID, kinds: tuple[str, ...], *, for_update=False):
    row = await repo.get_endpoint(
        pool,
        organization_id=scope.organization_id,
        campaign_id=scope.campaign_id,
        endpoint_id=endpoint_id,
        kinds=kinds,
        for_update=for_update,
    )
    if row is None:
        what = "webhook" if kinds == WEBHOOK else "integration"
        raise NotFound(f"{what} not found", code=f"{what}_not_found")
    return row


def _integration_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        model = integrations.CONFIG_MODELS[kind].model_validate(config)
    except ValidationError as err:
        raise invalid(err, f"invalid {kind} configuration", prefix=("config",)) from None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def create(
    *, pool: asyncpg.Pool, settings: Settings, scope: Scope, body: WebhookCreate | IntegrationCreate
) -> tuple[asyncpg.Record, str]:
    """Create an endpoint (webhook or integration); return its row and its new secret."""
    await check_destination(settings, body.url)
    kind, name, description, config = "webhook", None, None, {}
    if isinstance(body, IntegrationCreate):
        kind, name, config = body.type, body.name, _integration_config(body.type, body.config)
    else:
        description = body.description
    secret = secrets.new_secret()
    url, headers = secrets.seal(settings, body.url, body.headers)
    row = await repo.insert_endpoint(
        pool,
        endpoint_id=uuid.uuid4(),
        organization_id=scope.organization_id,
        campaign_id=scope.campaign_id,
        kind=kind,
        url=url,
        event_types=body.event_types,
        secret=secrets.encrypt(settings, secret),
        name=name,
        description=description,
        headers=headers,
        config=config,
        retry_config=body.retry_config.model_dump(mode="json", by_alias=True),
        max_concurrency=body.max_concurrency,
        enabled=body.enabled,
    )
    return row, secret


async def list_(*, pool: asyncpg.Pool, scope: Scope, kinds: tuple[str, ...], page: int, limit: int):
    return await repo.list_endpoints(
        pool,
        organization_id=scope.organization_id,
        campaign_id=scope.campaign_id,
        kinds=kinds,
        limit=limit,
        offset=(page - 1) * limit,
    )


async def update(
    *,
    pool: asyncpg.Pool,
    settings: Settings,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    body: WebhookUpdate | IntegrationUpdate,
) -> asyncpg.Record:
    """Change the fields given; `enabled: true` re-enables a disabled endpoint."""
    given = body.model_fields_set
    nulled = [n for n in given - {"description"} if getattr(body, n) is None]
    if nulled:
        alias = {n: type(body).model_fields[n].alias or n for n in nulled}
        raise invalid(
            [{"field": alias[n], "reason": "cannot be null (leave it out to keep it)"} for n in sorted(nulled)]
        )
    masked_url = body.url is not None and f"/…/{MASK}" in body.url
    if body.url is not None and not masked_url:
        await check_destination(settings, body.url)  # before the row is locked: it may resolve a name
    async with pool.acquire() as conn, conn.transaction():
        row = await get_endpoint_row(conn, scope, endpoint_id, kinds, for_update=True)
        fields: dict[str, Any] = {}
        for name in ("event_types", "max_concurrency"):
            if name in given and getattr(body, name) is not None:
                fields[name] = getattr(body, name)
        url, headers = secrets.unseal(settings, row)
        if masked_url and body.url != display_url(settings, row):
            raise invalid([{"field": "url", "reason": "is masked but not this endpoint's: send the whole URL"}])
        if body.url is not None and not masked_url:  # the URL as shown (masked) keeps it
            url = body.url
        if body.headers is not None:
            # A value given back as it is shown (masked) keeps the value it stands for.
            headers = {
                name: headers[name] if name in headers and value == mask(headers[name]) else value
                for name, value in body.headers.items()
            }
        if (body.url is not None or body.headers is not None) or not row["credentials_encrypted"]:
            fields["url"], fields["headers"] = secrets.seal(settings, url, headers)
            fields["credentials_encrypted"] = True
        if isinstance(body, WebhookUpdate) and "description" in given:
            fields["description"] = body.description
        if isinstance(body, IntegrationUpdate):
            if body.name is not None:
                fields["name"] = body.name
            if body.config is not None:
                fields["config"] = _integration_config(row["kind"], body.config)
        if body.retry_config is not None:
            fields["retry_config"] = body.retry_config.model_dump(mode="json", by_alias=True)
        if body.enabled is not None and body.enabled != row["enabled"]:
            fields["enabled"] = body.enabled
            # Re-enabling starts a fresh record of health; disabling by hand says so.
            fields["disabled_reason"] = None if body.enabled else "manual"
            fields["disabled_at"] = None if body.enabled else datetime.now(UTC)
            fields["failing_since"] = None
        if not fields:
            return row
        return await repo.update_endpoint(conn, endpoint_id=endpoint_id, fields=fields)


async def delete(*, pool: asyncpg.Pool, scope: Scope, endpoint_id: UUID, kinds: tuple[str, ...]) -> asyncpg.Record:
    """Delete an endpoint and its delivery log; retries in flight stop at their next attempt."""
    async with pool.acquire() as conn, conn.transaction():
        row = await get_endpoint_row(conn, scope, endpoint_id, kinds, for_update=True)
        await repo.delete_endpoint(conn, endpoint_id)
    return row


async def rotate_secret(
    *,
    pool: asyncpg.Pool,
    settings: Settings,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    grace_period_s: float | None,
) -> tuple[asyncpg.Record, str]:
    """A new secret signs from now on; the current one keeps signing too for the grace period."""
    grace = settings.webhook_rotation_grace_s if grace_period_s is None else grace_period_s
    secret = secrets.new_secret()
    async with pool.acquire() as conn, conn.transaction():
        row = await get_endpoint_row(conn, scope, endpoint_id, kinds, for_update=True)
        row = await repo.rotate_secret(
            conn,
            endpoint_id=endpoint_id,
            secret=secrets.encrypt(settings, secret),
            previous=row["secret"] if grace > 0 else None,
            previous_expires_at=datetime.now(UTC) + timedelta(seconds=grace) if grace > 0 else None,
        )
    return row, secret


# --- Deliveries -----------------------------------------------------------------------------


async def record_render_failures(conn: Connection, failures: list[tuple[UUID, str]]) -> None:
    """Deliveries whose body could not be rendered: failed, with the reason, never attempted."""
    for delivery, reason in failures:
        await repo.update_delivery(
            conn,
            delivery_id=delivery,
            run=0,
            status="failed",
            attempts=0,
            status_code=None,
            error_class="render_failed",
            error=reason,
            next_attempt_at=None,
        )


async def send_test(
    *,
    pool: asyncpg.Pool,
    settings: Settings,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
) -> asyncpg.Record:
    """Send a `webhook.test` ping to this endpoint alone (even while it is disabled)."""
    endpoint = await get_endpoint_row(pool, scope, endpoint_id, kinds)
    delivery = uuid.uuid4()
    event = envelope(
        event_id=str(delivery),
        type_="webhook.test",
        occurred_at=datetime.now(UTC),
        data={"webhookId": str(endpoint_id), "message": "This is a test delivery from Quantum Campaigns."},
        sequence=None,
        campaign_id=str(scope.campaign_id) if scope.campaign_id else None,
    )
    # Off the event loop, and bounded: a template is the tenant's to write.
    body, failure = await asyncio.to_thread(
        integrations.render_body,
        endpoint["kind"],
        endpoint["config"],
        event,
        max_bytes=settings.webhook_max_payload_bytes,
    )
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.insert_delivery(
            conn,
            delivery_id=delivery,
            endpoint_id=endpoint_id,
            organization_id=scope.organization_id,
            event_type="webhook.test",
            campaign_id=scope.campaign_id,
            body=body,
        )
        if failure is not None:
            await record_render_failures(conn, [(delivery, failure)])
            return one(await repo.get_delivery(conn, endpoint_id=endpoint_id, delivery_id=delivery))
        # A dispatcher sends it, like any delivery, as soon as this commits.
        await repo.notify_dispatchers(conn)
    return row


async def list_deliveries(
    *,
    pool: asyncpg.Pool,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    statuses: list[str] | None,
    event_types: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    page: int,
    limit: int,
) -> tuple[list[Delivery], int]:
    await get_endpoint_row(pool, scope, endpoint_id, kinds)
    rows, total = await repo.list_deliveries(
        pool,
        endpoint_id=endpoint_id,
        statuses=statuses,
        event_types=event_types,
        since=since,
        until=until,
        limit=limit,
        offset=(page - 1) * limit,
    )
    return [to_delivery(r) for r in rows], total


async def get_delivery(
    *, pool: asyncpg.Pool, scope: Scope, endpoint_id: UUID, kinds: tuple[str, ...], delivery_id: UUID
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    await get_endpoint_row(pool, scope, endpoint_id, kinds)
    row = await repo.get_delivery(pool, endpoint_id=endpoint_id, delivery_id=delivery_id)
    if row is None:
        raise NotFound("delivery not found", code="delivery_not_found")
    return row, await repo.list_attempts(pool, delivery_id)


async def redeliver(
    *,
    pool: asyncpg.Pool,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    delivery_id: UUID,
) -> asyncpg.Record:
    """Send a finished delivery again, as a new run with the same webhook-id."""
    endpoint = await get_endpoint_row(pool, scope, endpoint_id, kinds)
    _require_enabled(endpoint)
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.reopen(conn, endpoint_id=endpoint_id, delivery_id=delivery_id)
        if row is not None:
            await repo.notify_dispatchers(conn)
    if row is None:
        if await repo.get_delivery(pool, endpoint_id=endpoint_id, delivery_id=delivery_id) is None:
            raise NotFound("delivery not found", code="delivery_not_found")
        raise Conflict(
            "the delivery is still in progress; redeliver it once it has finished", code="delivery_in_progress"
        )
    return row


async def recover(
    *,
    pool: asyncpg.Pool,
    scope: Scope,
    endpoint_id: UUID,
    kinds: tuple[str, ...],
    since: datetime,
    until: datetime | None,
) -> list[UUID]:
    """Re-send every failed delivery created in [since, until)."""
    if until is not None and until <= since:
        raise invalid([{"field": "until", "reason": "must be after since"}])
    endpoint = await get_endpoint_row(pool, scope, endpoint_id, kinds)
    _require_enabled(endpoint)
    async with pool.acquire() as conn, conn.transaction():
        rows = await repo.reopen_failed(conn, endpoint_id=endpoint_id, since=since, until=until, limit=RECOVER_LIMIT)
        if rows:
            await repo.notify_dispatchers(conn)
    return [r["id"] for r in rows]


def _require_enabled(endpoint: asyncpg.Record) -> None:
    if not endpoint["enabled"]:
        raise Conflict("the endpoint is disabled; enable it first (PUT with enabled: true)", code="webhook_disabled")


@dataclass(frozen=True)
class HourHealth:
    hour: datetime
    attempts: int
    succeeded: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True)
class EndpointHealth:
    """An endpoint's attempts over a period: success rate, latency, and the same per hour."""

    attempts: int
    succeeded: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    hours: list[HourHealth]


async def health(*, pool: asyncpg.Pool, endpoints: list[asyncpg.Record], hours: int = 24) -> dict[UUID, EndpointHealth]:
    """Delivery health over the last `hours` of endpoints read in the caller's scope (`list_`)."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    endpoint_ids = [e["id"] for e in endpoints]
    rows = await repo.attempts_by_hour(pool, endpoint_ids=endpoint_ids, since=since)
    by_endpoint: dict[UUID, list[asyncpg.Record]] = {}
    for r in rows:
        by_endpoint.setdefault(r["endpoint_id"], []).append(r)
    out = {}
    for endpoint_id in endpoint_ids:
        hourly = [
            HourHealth(r["hour"], r["attempts"], r["succeeded"], r["latency_p50"], r["latency_p95"])
            for r in by_endpoint.get(endpoint_id, [])
        ]
        attempts = sum(h.attempts for h in hourly)
        succeeded = sum(h.succeeded for h in hourly)
        weighted = [(h.latency_p50_ms, h.attempts) for h in hourly if h.latency_p50_ms is not None]
        out[endpoint_id] = EndpointHealth(
            attempts=attempts,
            succeeded=succeeded,
            success_rate=succeeded / attempts if attempts else None,
            # Per-hour medians weighted by attempts: close enough for a dashboard, one query.
            latency_p50_ms=sum(v * n for v, n in weighted) / sum(n for _, n in weighted) if weighted else None,
            latency_p95_ms=max((h.latency_p95_ms for h in hourly if h.latency_p95_ms is not None), default=None),
            hours=hourly,
        )
    return out
