"""Webhook endpoints: a campaign's (`/api/campaigns/{id}/webhooks`), the organization-wide
ones (`/api/webhooks`) and a campaign's integrations (`/api/campaigns/{id}/integrations`).

The three share one set of routes, built by `_endpoint_routes` for a scope and a kind.
"""

# No `from __future__ import annotations`: the routes are built in a function, and FastAPI
# must see their parameter types as objects, not as names to look up in this module.

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response

from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import AppSettings, Cache, Caller, Db, WebhookReader, WebhookWriter
from campaigns.api.webhooks.schemas import (
    AttemptList,
    DeliveryEnvelope,
    DeliveryList,
    EventType,
    IntegrationEnvelope,
    IntegrationList,
    Recover,
    RecoverResult,
    RotateSecret,
    WebhookEnvelope,
    WebhookList,
)
from campaigns.domain.webhooks import EVENTS
from campaigns.errors import invalid
from campaigns.webhooks import service
from campaigns.webhooks.models import IntegrationCreate, IntegrationUpdate, WebhookCreate, WebhookUpdate
from campaigns.webhooks.service import Scope

router = APIRouter(route_class=JsonRoute)

Page = Annotated[int, Query(ge=1, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=100)]
DeliveryId = Annotated[UUID, Path(alias="deliveryId", description="The delivery's id")]
_STATUSES = {"pending", "succeeded", "failed", "cancelled"}


@router.get("/api/webhooks/event-types", tags=["webhooks"])
async def event_types(caller: WebhookReader) -> dict:
    """The event catalogue: every type a webhook can subscribe to (and the test ping)."""
    return {"eventTypes": [EventType(type=t, description=d) for t, d in EVENTS.items()]}


async def _campaign_scope(
    campaign_id: Annotated[UUID, Path(alias="id", description="The campaign's id")],
    caller: Caller,
    db: Db,
    cache: Cache,
) -> Scope:
    return await service.campaign_scope(db, cache, caller, campaign_id)


async def _organization_scope(caller: Caller) -> Scope:
    return service.organization_scope(caller)


def _csv(values: list[str] | None, field: str, allowed: set[str] | None = None) -> list[str] | None:
    if not values:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise invalid(
                [{"field": f"query.{field}", "reason": f"unknown value(s) {bad}; allowed: {sorted(allowed)}"}]
            )
    return items


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid([{"field": f"query.{field}", "reason": "must carry a UTC offset, e.g. 2030-01-01T00:00:00Z"}])
    return value


def _endpoint_routes(
    prefix: str,
    scope_dep: Any,
    kinds: tuple[str, ...],
    *,
    singular: str,
    tag: str,
    create_model: type,
    update_model: type,
    out: Any,
    envelope: type,
    listing: type,
) -> None:
    """Register create/list/get/update/delete, rotate, test, deliveries, redeliver and recover."""
    # The bodies' models depend on the scope, and FastAPI reads them from the annotations at
    # run time; mypy cannot know which, so to it they are Any.
    if TYPE_CHECKING:
        CreateBody: TypeAlias = Any
        UpdateBody: TypeAlias = Any
    else:
        CreateBody, UpdateBody = create_model, update_model
    ScopeDep = Annotated[Scope, Depends(scope_dep)]
    EndpointId = Annotated[UUID, Path(alias=f"{singular}Id", description=f"The {singular}'s id")]
    item = f"{prefix}/{{{singular}Id}}"
    plural = singular + "s"

    def add(path: str, fn: Any, method: str, model: Any = None, status: int = 200) -> None:
        scope_name = "organization" if "{id}" not in prefix else "campaign"
        router.add_api_route(
            path,
            fn,
            methods=[method],
            response_model=model,
            status_code=status,
            tags=[tag],
            name=f"{fn.__name__}_{scope_name}_{singular}",
            summary=(fn.__doc__ or "").rstrip("."),
            description=f"{'Organization-wide' if scope_name == 'organization' else 'A campaign’s'} {plural}.",
        )

    async def create(
        body: CreateBody, caller: WebhookWriter, scope: ScopeDep, db: Db, settings: AppSettings, response: Response
    ) -> dict:
        row, secret = await service.create(pool=db, settings=settings, scope=scope, body=body)
        response.headers["Location"] = f"{prefix}/{row['id']}".replace("{id}", str(scope.campaign_id))
        return {singular: out(settings, row, secret)}

    create.__doc__ = f"Create a {singular}; its signing secret is in this answer only."
    add(prefix, create, "POST", envelope, 201)

    async def list_all(
        caller: WebhookReader, scope: ScopeDep, db: Db, settings: AppSettings, page: Page = 1, limit: Limit = 50
    ) -> dict:
        rows, total = await service.list_(pool=db, scope=scope, kinds=kinds, page=page, limit=limit)
        result = {plural: [out(settings, r) for r in rows], "total": total}
        if listing is WebhookList:
            result |= {"page": page, "limit": limit}
        return result

    list_all.__doc__ = f"List the {plural} (secrets are never listed)."
    add(prefix, list_all, "GET", listing)

    async def get(
        endpoint_id: EndpointId, caller: WebhookReader, scope: ScopeDep, db: Db, settings: AppSettings
    ) -> dict:
        return {singular: out(settings, await service.get_endpoint_row(db, scope, endpoint_id, kinds))}

    get.__doc__ = f"Get a {singular}."
    add(item, get, "GET", envelope)

    async def update(
        endpoint_id: EndpointId, body: UpdateBody, caller: WebhookWriter, scope: ScopeDep, db: Db, settings: AppSettings
    ) -> dict:
        row = await service.update(
            pool=db, settings=settings, scope=scope, endpoint_id=endpoint_id, kinds=kinds, body=body
        )
        return {singular: out(settings, row)}

    update.__doc__ = f"Change a {singular}: the fields given replace the current ones; `enabled: true` re-enables it."
    add(item, update, "PUT", envelope)

    async def delete(
        endpoint_id: EndpointId, caller: WebhookWriter, scope: ScopeDep, db: Db, settings: AppSettings
    ) -> dict:
        return {
            singular: out(settings, await service.delete(pool=db, scope=scope, endpoint_id=endpoint_id, kinds=kinds))
        }

    delete.__doc__ = f"Delete a {singular} and its delivery log."
    add(item, delete, "DELETE", envelope)

    async def rotate_secret(
        endpoint_id: EndpointId,
        caller: WebhookWriter,
        scope: ScopeDep,
        db: Db,
        settings: AppSettings,
        body: RotateSecret | None = None,
    ) -> dict:
        row, secret = await service.rotate_secret(
            pool=db,
            settings=settings,
            scope=scope,
            endpoint_id=endpoint_id,
            kinds=kinds,
            grace_period_s=body.grace_period_seconds if body else None,
        )
        return {singular: out(settings, row, secret)}

    rotate_secret.__doc__ = "Rotate the signing secret; the old one keeps signing too during the grace period."
    add(f"{item}/rotate-secret", rotate_secret, "POST", envelope)

    async def send_test(
        endpoint_id: EndpointId, caller: WebhookWriter, scope: ScopeDep, db: Db, settings: AppSettings
    ) -> dict:
        row = await service.send_test(pool=db, settings=settings, scope=scope, endpoint_id=endpoint_id, kinds=kinds)
        return {"delivery": service.to_delivery(row)}

    send_test.__doc__ = "Send a `webhook.test` ping; follow it in the deliveries."
    add(f"{item}/test", send_test, "POST", DeliveryEnvelope, 202)

    async def deliveries(
        endpoint_id: EndpointId,
        caller: WebhookReader,
        scope: ScopeDep,
        db: Db,
        status: Annotated[list[str] | None, Query(description="pending, succeeded, failed, cancelled")] = None,
        event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
        since: Annotated[datetime | None, Query(description="Created at or after (ISO-8601 with offset)")] = None,
        until: Annotated[datetime | None, Query(description="Created before")] = None,
        page: Page = 1,
        limit: Limit = 50,
    ) -> dict:
        items, total = await service.list_deliveries(
            pool=db,
            scope=scope,
            endpoint_id=endpoint_id,
            kinds=kinds,
            statuses=_csv(status, "status", _STATUSES),
            event_types=_csv(event_type, "eventType"),
            since=_aware(since, "since"),
            until=_aware(until, "until"),
            page=page,
            limit=limit,
        )
        return {"deliveries": items, "total": total, "page": page, "limit": limit}

    deliveries.__doc__ = "List deliveries, newest first; filter by status, event type and time."
    add(f"{item}/deliveries", deliveries, "GET", DeliveryList)

    async def delivery(
        endpoint_id: EndpointId, delivery_id: DeliveryId, caller: WebhookReader, scope: ScopeDep, db: Db
    ) -> dict:
        row, attempts = await service.get_delivery(
            pool=db, scope=scope, endpoint_id=endpoint_id, kinds=kinds, delivery_id=delivery_id
        )
        return {"delivery": service.to_delivery(row, attempts)}

    delivery.__doc__ = "Get a delivery with its payload and every attempt."
    add(f"{item}/deliveries/{{deliveryId}}", delivery, "GET", DeliveryEnvelope)

    async def attempts(
        endpoint_id: EndpointId, delivery_id: DeliveryId, caller: WebhookReader, scope: ScopeDep, db: Db
    ) -> dict:
        _, rows = await service.get_delivery(
            pool=db, scope=scope, endpoint_id=endpoint_id, kinds=kinds, delivery_id=delivery_id
        )
        return {"attempts": [service.to_attempt(a) for a in rows]}

    attempts.__doc__ = "A delivery's attempts: time, status, response excerpt, latency, error class."
    add(f"{item}/deliveries/{{deliveryId}}/attempts", attempts, "GET", AttemptList)

    async def redeliver(
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
        caller: WebhookWriter,
        scope: ScopeDep,
        db: Db,
    ) -> dict:
        row = await service.redeliver(
            pool=db,
            scope=scope,
            endpoint_id=endpoint_id,
            kinds=kinds,
            delivery_id=delivery_id,
        )
        return {"delivery": service.to_delivery(row)}

    redeliver.__doc__ = "Send a finished delivery again (same webhook-id, a new run of attempts)."
    add(f"{item}/deliveries/{{deliveryId}}/redeliver", redeliver, "POST", DeliveryEnvelope, 202)

    async def recover(
        endpoint_id: EndpointId,
        body: Recover,
        caller: WebhookWriter,
        scope: ScopeDep,
        db: Db,
    ) -> dict:
        ids = await service.recover(
            pool=db,
            scope=scope,
            endpoint_id=endpoint_id,
            kinds=kinds,
            since=body.since,
            until=body.until,
        )
        return {"recovered": len(ids), "deliveries": [str(i) for i in ids]}

    recover.__doc__ = "Re-send every failed delivery created since a given time."
    add(f"{item}/recover", recover, "POST", RecoverResult, 202)


_endpoint_routes(
    "/api/campaigns/{id}/webhooks",
    _campaign_scope,
    service.WEBHOOK,
    singular="webhook",
    tag="webhooks",
    create_model=WebhookCreate,
    update_model=WebhookUpdate,
    out=service.to_webhook,
    envelope=WebhookEnvelope,
    listing=WebhookList,
)
_endpoint_routes(
    "/api/webhooks",
    _organization_scope,
    service.WEBHOOK,
    singular="webhook",
    tag="webhooks",
    create_model=WebhookCreate,
    update_model=WebhookUpdate,
    out=service.to_webhook,
    envelope=WebhookEnvelope,
    listing=WebhookList,
)
_endpoint_routes(
    "/api/campaigns/{id}/integrations",
    _campaign_scope,
    service.INTEGRATION,
    singular="integration",
    tag="integrations",
    create_model=IntegrationCreate,
    update_model=IntegrationUpdate,
    out=service.to_integration,
    envelope=IntegrationEnvelope,
    listing=IntegrationList,
)
