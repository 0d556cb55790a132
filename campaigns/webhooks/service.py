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
from campaigns.domain.webhooks import RetryConfig, envelope, message_id
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


# --- Shaping rows --------------------------------------------------------------------------


def _state(row: asyncpg.Record) -> str:
    if not row["enabled"]:
        return "disabled"
    return "failing" if row["failing_since"] else "active"


def to_webhook(row: asyncpg.Record, secret: str | None = None) -> Webhook:
    expires = row["previous_secret_expires_at"]
    return Webhook(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        campaign_id=str(row["campaign_id"]) if row["campaign_id"] else None,
        url=row["url"],
        description=row["description"],
        event_types=list(row["event_types"]),
        headers=row["headers"],
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


def to_integration(row: asyncpg.Record, secret: str | None = None) -> Integration:
    return Integration(
        id=str(row["id"]),
        campaign_id=str(row["campaign_id"]),
        type=row["kind"],
        name=row["name"],
        url=row["url"],
        event_types=list(row["event_types"]),
        config=row["config"],
        headers=row["headers"],
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
    row = await repo.insert_endpoint(
        pool,
        endpoint_id=uuid.uuid4(),
        organization_id=scope.organization_id,
        campaign_id=scope.campaign_id,
        kind=kind,
        url=body.url,
        event_types=body.event_types,
        secret=secrets.encrypt(settings, secret),
        name=name,
        description=description,
        headers=body.headers,
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
    if body.url is not None:
        await check_destination(settings, body.url)
    async with pool.acquire() as conn, conn.transaction():
        row = await get_endpoint_row(conn, scope, endpoint_id, kinds, for_update=True)
        fields: dict[str, Any] = {}
        for name in ("url", "event_types", "headers", "max_concurrency"):
            if name in given and getattr(body, name) is not None:
                fields[name] = getattr(body, name)
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
