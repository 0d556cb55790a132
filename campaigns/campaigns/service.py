"""Campaign use cases: create, read, list, change, clone, audit.

Configuration belongs to Postgres and is written here; the lifecycle status belongs to
the campaign's workflow and is only ever changed by asking it (workflow_client).

The hand-over to the workflow is durable. A draft is a row, created in one transaction;
its workflow starts with its first status request. A status request is recorded in
Postgres before the workflow is asked, so it is either refused, applied, or pending (and
then applied or refused later, by the relay's re-sends); a configuration change the
workflow acts on is put in an outbox in its own transaction, so the workflow learns it
even if nothing here gets to tell it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError
from temporalio.client import Client

from campaigns.auth.principals import Principal, require_same_org
from campaigns.campaigns import repository as repo
from campaigns.campaigns import workflow_client
from campaigns.campaigns.cache import CampaignCache
from campaigns.campaigns.models import (
    AuditEntry,
    Campaign,
    CampaignCreate,
    CampaignPatch,
    CampaignPerformance,
    Changed,
    CloneRequest,
    ConfigurationPatch,
    CostBreakdown,
    CostTracking,
    PendingStatusChange,
)
from campaigns.campaigns.repository import Row
from campaigns.clients.knowledge_bases import KnowledgeBases, KnowledgeBaseUnavailable
from campaigns.db import DOWN, Conn
from campaigns.domain import lifecycle
from campaigns.domain.config import CONFIG_FIELDS, CampaignConfiguration, CampaignStatus
from campaigns.domain.kpis import default_kpis
from campaigns.errors import AppError, Conflict, NotFound, PreconditionFailed, Unavailable, invalid
from campaigns.messages.campaign import StatusRequest, StatusResult
from campaigns.messages.common import Actor
from campaigns.settings import Settings

log = logging.getLogger("campaigns.campaigns")

# Postgres is unreachable (or the connection broke): what a write may fail with.
_DB_DOWN = DOWN

# Fields whose change the workflow must hear about (schedule, budget and goals it acts on;
# name, type and channel it shows in the Temporal UI; flow, voice and knowledge bases it
# hands to the voice-AI pipeline).
_WORKFLOW_FIELDS = {
    "name",
    "type",
    "channel",
    "timezone",
    "schedule",
    "budget",
    "goals",
    "flowId",
    "voiceSettings",
    "knowledgeBaseIds",
}
_CONFIG_ALIASES = {CampaignConfiguration.model_fields[f].alias or f: f for f in CONFIG_FIELDS}


# --- Reading ---------------------------------------------------------------------------

SORT_KEYS = tuple(repo.SORTS)  # what a list may be sorted on ('-' prefix: descending)


def to_campaign(row: Row) -> Campaign:
    config = CampaignConfiguration.model_validate(row["config"])
    total_cost = float(row["total_cost"] or 0)
    budget = config.budget
    performance = CampaignPerformance(
        total_calls=row["total_calls"] or 0,
        completed_calls=row["completed_calls"] or 0,
        qualified_leads=row["qualified_leads"] or 0,
        conversions=row["conversions"] or 0,
        conversion_rate=row["conversion_rate"] or 0,
        average_call_duration=row["average_call_duration"] or 0,
        cost_per_lead=float(row["cost_per_lead"] or 0),
        total_cost=total_cost,
        revenue=float(row["revenue"] or 0),
    )
    cost = CostTracking(
        total_cost=total_cost,
        currency=budget.currency if budget else "USD",
        by_category=CostBreakdown.model_validate(row["cost_by_category"] or {}),
        budget_total=budget.total if budget else None,
        budget_daily=budget.daily if budget else None,
        budget_remaining=max(0.0, budget.total - total_cost) if budget and budget.total else None,
        budget_used_ratio=(total_cost / budget.total) if budget and budget.total else None,
        last_updated=row["performance_updated_at"],
    )
    return Campaign(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        user_id=row["user_id"],
        name=row["name"],
        description=row["description"],
        status=row["status"],
        status_reason=row["status_reason"],
        type=row["type"],
        channel=row["channel"],
        **config.model_dump(),
        performance=performance,
        cost_tracking=cost,
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status_changed_at=row["status_changed_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        window_open=row["window_open"],
        next_window_change=row["next_window_change"],
        pending_status_change=(
            PendingStatusChange(
                target=row["pending_target"],
                reason=row["pending_reason"],
                requested_at=row["pending_requested_at"],
                request_id=str(row["pending_request_id"]),
            )
            if row.get("pending_request_id")
            else None
        ),
    )


async def get_row(pool: Conn, cache: CampaignCache | None, principal: Principal, campaign_id: UUID) -> Row:
    """The campaign's row, through the cache when given one (treat it as read-only). A read
    inside a transaction, which must see its own writes, passes no cache."""
    row: Row | None
    if cache is None:
        row = await repo.get(pool, organization_id=principal.organization_id, campaign_id=campaign_id)
    else:
        row = await cache.get(campaign_id, lambda: repo.get_any(pool, campaign_id))
        if row is not None and row["organization_id"] != principal.organization_id:
            row = None
    if row is None:
        # Another organization's campaign is indistinguishable from a missing one.
        raise NotFound("campaign not found", code="campaign_not_found")
    return row


async def get(*, pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID) -> Campaign:
    """Get one campaign of the caller's organization."""
    return to_campaign(await get_row(pool, cache, principal, campaign_id))


async def list_(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    statuses: list[str] | None,
    types: list[str] | None,
    channels: list[str] | None,
    search: str | None,
    sort: str,
    page: int,
    limit: int,
    performance: dict[str, float | None] | None = None,
) -> tuple[list[asyncpg.Record], list[Campaign], int]:
    """List the organization's campaigns, filtered, sorted and paginated (rows and campaigns)."""
    descending = sort.startswith("-")
    rows, total = await repo.list_(
        pool,
        organization_id=principal.organization_id,
        statuses=statuses,
        types=types,
        channels=channels,
        search=search,
        sort=sort.lstrip("-"),
        descending=descending,
        limit=limit,
        offset=(page - 1) * limit,
        performance=performance or {},
    )
    return rows, [to_campaign(r) for r in rows], total


async def count_by_status(*, pool: asyncpg.Pool) -> dict[str, int]:
    """Campaigns by status, over every organization (the metrics endpoint's gauge)."""
    return await repo.count_by_status(pool)


# --- Creating --------------------------------------------------------------------------


def _request_hash(body: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()


def _with_ids(config: CampaignConfiguration, previous: CampaignConfiguration | None = None) -> CampaignConfiguration:
    """Give goals and KPIs ids, and keep the platform's progress on goals it already tracks
    (`current`/`achieved` are not the client's to set)."""
    known = {g.id: g for g in (previous.goals if previous else [])}
    goals = []
    for goal in config.goals:
        old = known.get(goal.id) if goal.id else None
        if old is not None and (old.type, old.timeframe) != (goal.type, goal.timeframe):
            old = None  # the id now names another goal: no progress carries over
        goals.append(
            goal.model_copy(
                update={
                    "id": goal.id or uuid.uuid4().hex[:12],
                    "current": old.current if old is not None else 0,
                    "achieved": (old.current >= goal.target) if old is not None else False,
                }
            )
        )
    kpis = [k if k.id else k.model_copy(update={"id": uuid.uuid4().hex[:12]}) for k in config.kpis]
    return config.model_copy(update={"goals": goals, "kpis": kpis})


def _config_json(config: CampaignConfiguration) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=True)


async def create(
    *,
    pool: asyncpg.Pool,
    settings: Settings,
    principal: Principal,
    body: CampaignCreate,
    idempotency_key: str | None,
) -> tuple[Campaign, bool]:
    """Create a draft campaign, in one transaction (its workflow starts with its first status
    request). Returns (campaign, replayed): a retry with the same Idempotency-Key returns the
    first campaign instead of a second one."""
    require_same_org(principal, body.organization_id)
    config = CampaignConfiguration.model_validate(body.model_dump(include=set(CONFIG_FIELDS)))
    if "kpis" not in body.model_fields_set:
        config.kpis = default_kpis(body.type)
    config = _with_ids(config)
    await check_knowledge_bases(settings, principal, config.knowledge_base_ids)
    campaign_id = uuid.uuid4()
    fingerprint = _request_hash(body.model_dump(mode="json", exclude={"organization_id"}))
    draft: dict[str, Any] = {
        "campaign_id": campaign_id,
        "organization_id": principal.organization_id,
        "user_id": str(principal.key_id),
        "name": body.name,
        "description": body.description,
        "type_": body.type.value,
        "channel": body.channel.value,
        "timezone": config.timezone,
        "config": _config_json(config),
        "actor": principal.actor(),
        "audit_changes": {"name": body.name, "type": body.type.value, "channel": body.channel.value},
        "event_id": uuid.uuid4(),
        "event_data": {
            "campaignId": str(campaign_id),
            "name": body.name,
            "type": body.type.value,
            "channel": body.channel.value,
        },
    }
    if not idempotency_key:
        return to_campaign(await repo.create_draft(pool, **draft)), False
    async with pool.acquire() as conn, conn.transaction():
        held = await repo.claim_idempotency_key(
            conn,
            organization_id=principal.organization_id,
            key=idempotency_key,
            request_hash=fingerprint,
            campaign_id=campaign_id,
        )
        if held is not None:
            if bytes(held["request_hash"]) != fingerprint:
                raise Conflict(
                    "this Idempotency-Key was already used with a different request body",
                    code="idempotency_key_reused",
                )
            return to_campaign(await get_row(conn, None, principal, held["campaign_id"])), True
        row = await repo.create_draft(conn, **draft)
    return to_campaign(row), False


async def check_knowledge_bases(settings: Settings, principal: Principal, ids: list[str]) -> None:
    """Every knowledge base named must exist (when a knowledge-base service is configured)."""
    try:
        missing = await KnowledgeBases(settings).missing(ids, organization_id=str(principal.organization_id))
    except KnowledgeBaseUnavailable as err:
        raise Unavailable(
            f"could not check knowledgeBaseIds: {err}; nothing was saved, retry shortly",
            code="knowledge_base_unavailable",
        ) from None
    if missing:
        raise invalid(
            [
                {"field": f"knowledgeBaseIds[{ids.index(m)}]", "reason": f"knowledge base {m!r} does not exist"}
                for m in missing
            ],
            "invalid configuration",
        )


# --- Changing --------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _diff(old: Any, new: Any, path: str = "") -> dict[str, Any]:
    """Changed leaves as {"voiceSettings.speakingRate": {"from": 1.0, "to": 1.1}}; lists compare whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, Any] = {}
        for key in sorted(set(old) | set(new)):
            out.update(_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return out
    return {} if old == new else {path: {"from": old, "to": new}}


def _if_match(row: Row, if_match: str | None) -> None:
    if if_match is None:
        return
    expected = if_match.strip().removeprefix("W/").strip('"')
    if expected != "*" and expected != str(row["version"]):
        raise PreconditionFailed(
            f"the campaign changed since you read it (version {row['version']}, If-Match {if_match})",
            details={"currentVersion": row["version"]},
        )


def etag(campaign: Campaign) -> str:
    return f'W/"{campaign.version}"'


async def update(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    patch: dict[str, Any],
    if_match: str | None = None,
    idempotency_key: str | None = None,
    configuration_only: bool = False,
) -> Changed:
    """Apply a merge patch; a `status` in it goes to the workflow after the rest is saved.
    A change the workflow acts on is handed to it durably (the outbox) and told at once."""
    model = ConfigurationPatch if configuration_only else CampaignPatch
    try:
        parsed = model.model_validate(patch)
    except ValidationError as err:
        raise invalid(err, "invalid campaign update") from None
    require_same_org(principal, parsed.organization_id)
    status = getattr(parsed, "status", None)
    reason = getattr(parsed, "status_reason", None)
    if parsed.knowledge_base_ids:
        try:
            CampaignConfiguration(knowledge_base_ids=parsed.knowledge_base_ids)
        except ValidationError:
            pass  # reported with the rest of the configuration below
        else:
            await check_knowledge_bases(settings, principal, parsed.knowledge_base_ids)

    async with pool.acquire() as conn, conn.transaction():
        row: Row | None = await repo.get_for_update(
            conn, organization_id=principal.organization_id, campaign_id=campaign_id
        )
        if row is None:
            raise NotFound("campaign not found", code="campaign_not_found")
        _if_match(row, if_match)
        current_status = CampaignStatus(row["status"])
        if status is not None and status != current_status:
            # Refuse an impossible transition before saving anything else in the request.
            try:
                lifecycle.requestable(current_status, status)
            except lifecycle.TransitionError as err:
                raise Conflict(
                    str(err), code=err.code, details={"from": current_status.value, "to": status.value}
                ) from None
        changes, fields = _changes(row, patch)
        if changes and current_status == CampaignStatus.ARCHIVED:
            raise Conflict("an archived campaign cannot be changed", code="campaign_archived")
        # A draft that never had a status request has no workflow to tell: the one its first
        # request starts reads the row as it is then.
        hand_over = (
            bool(changes)
            and bool({k.split(".")[0] for k in changes} & _WORKFLOW_FIELDS)
            and row["workflow_requested_at"] is not None
        )
        if changes:
            version = await repo.update_fields(conn, campaign_id=campaign_id, fields=fields)
            await repo.add_audit(
                conn,
                organization_id=principal.organization_id,
                campaign_id=campaign_id,
                actor=principal.actor(),
                action="configuration_changed" if configuration_only else "updated",
                changes=changes,
            )
            if hand_over:
                # Committed with the change itself: the relay delivers it unless it is told below.
                await repo.enqueue_configuration(
                    conn, campaign_id=campaign_id, version=version, retry_in_s=settings.status_change_wait_s + 1
                )
    if changes:
        if cache is not None:  # no process may serve the old campaign any more
            await cache.invalidate(campaign_id)
        row = await get_row(pool, cache, principal, campaign_id)
        if hand_over:
            await tell_configuration(pool=pool, temporal=temporal, settings=settings, row=row)
    if status is not None and status != CampaignStatus(row["status"]):
        return await change_status(
            pool=pool,
            cache=cache,
            temporal=temporal,
            settings=settings,
            principal=principal,
            campaign_id=campaign_id,
            target=status,
            reason=reason,
            idempotency_key=idempotency_key,
        )
    elif status is not None and not changes:
        raise Conflict(
            f"campaign is already {status.value}", code="no_change", details={"from": status.value, "to": status.value}
        )
    return Changed(await get(pool=pool, cache=cache, principal=principal, campaign_id=campaign_id))


async def tell_configuration(*, pool: asyncpg.Pool, temporal: Client, settings: Settings, row: Row) -> bool:
    """Tell the campaign's workflow its configuration as in `row` and clear its outbox entry
    up to that version. False if the workflow could not be told now: the entry stays, and
    the relay delivers it."""
    try:
        await workflow_client.configuration_changed(temporal, settings, row, wait_s=settings.status_change_wait_s)
    except workflow_client.NoAnswer as err:
        log.info("configuration %s of campaign %s left to the relay: %s", row["version"], row["id"], err)
        return False
    try:
        await repo.configuration_delivered(pool, campaign_id=row["id"], version=row["version"])
    except _DB_DOWN as err:  # told already; the relay's repeat is ignored by the workflow
        log.warning("could not clear the configuration outbox of campaign %s: %r", row["id"], err)
    return True


def _changes(row: Row, patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the patch changes: (audit diff, column values to write). Raises a 400 listing
    every invalid field of the merged configuration."""
    old_config = dict(row["config"])
    config_patch = {k: v for k, v in patch.items() if k in _CONFIG_ALIASES}
    merged = merge_patch(old_config, config_patch)
    try:
        config = CampaignConfiguration.model_validate(merged)
    except ValidationError as err:
        raise invalid(err, "invalid configuration") from None
    config = _with_ids(config, CampaignConfiguration.model_validate(old_config))
    new_config = _config_json(config)
    changes = _diff(old_config, new_config)
    fields: dict[str, Any] = {}
    if changes:
        fields["config"] = new_config
        fields["timezone"] = config.timezone
    for column in ("name", "description", "type", "channel"):
        if column in patch and patch[column] != row[column]:
            if patch[column] is None and column != "description":
                raise invalid([{"field": column, "reason": "cannot be removed"}])
            changes[column] = {"from": row[column], "to": patch[column]}
            fields[column] = patch[column]
    return changes, fields


async def change_status(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    target: CampaignStatus,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> Changed:
    """Ask the campaign's workflow to move to `target`. The request is recorded first, so
    the answer is always final or durable: applied (the campaign as persisted), refused
    (Conflict), or still pending after the wait (`pending`: the relay carries it on). If it
    could not be recorded, Unavailable, and it never applies. A retry with the same
    Idempotency-Key answers what became of the first request."""
    fingerprint = _request_hash({"campaignId": str(campaign_id), "target": target.value, "reason": reason})
    request_id = uuid.uuid4()
    row, held = await _record_request(
        pool,
        settings,
        principal,
        campaign_id,
        request_id=request_id,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        target=target,
        reason=reason,
    )
    replayed = held is not None
    if held is not None:
        if bytes(held["request_hash"]) != fingerprint:
            raise Conflict(
                "this Idempotency-Key was already used for a different status change",
                code="idempotency_key_reused",
                details={"requestId": str(held["id"])},
            )
        if held["state"] == "applied":
            campaign = await get(pool=pool, cache=cache, principal=principal, campaign_id=campaign_id)
            return Changed(campaign, replayed=True)
        if held["state"] == "rejected":
            raise _refusal_of(held["outcome"], replayed=True)
        request_id = held["id"]  # still pending: ask again, as the same update, and wait with it
    request = StatusRequest(
        target=target,
        actor=Actor(**principal.actor()),
        reason=reason,
        request_id=str(request_id),
        config=workflow_client.workflow_config(row),
    )
    deadline = time.monotonic() + settings.status_change_wait_s
    try:
        # Changes still pending from before go first, in the order they were made.
        for earlier in await repo.older_pending(pool, request_id=request_id):
            await send_recorded(
                pool=pool,
                cache=cache,
                temporal=temporal,
                settings=settings,
                recorded=earlier,
                wait_s=max(0.0, deadline - time.monotonic()),
            )
        await workflow_client.change_status(
            temporal, settings, row, request, wait_s=max(0.0, deadline - time.monotonic())
        )
    except workflow_client.NoAnswer as err:
        log.info("status request %s of campaign %s pending: %s", request_id, campaign_id, err)
        if cache is not None:  # every reader sees the pending change from now on
            await cache.invalidate(campaign_id)
        recorded = await repo.get_status_request(pool, request_id)
        if recorded is None:  # refused meanwhile because a service it needs was down: not kept
            raise Unavailable(
                "the campaign's workflow could not check the change (a service it needs is unavailable); "
                "nothing was applied, retry shortly",
                code="unavailable",
            ) from None
        if recorded["state"] == "rejected":
            raise _refusal_of(recorded["outcome"], replayed=replayed) from None
        campaign = await get(pool=pool, cache=cache, principal=principal, campaign_id=campaign_id)
        if recorded["state"] == "applied":  # the workflow answered just after the wait
            return Changed(campaign, replayed=replayed)
        pending = PendingStatusChange(
            target=target, reason=reason, requested_at=recorded["requested_at"], request_id=str(request_id)
        )
        return Changed(campaign.model_copy(update={"pending_status_change": pending}), pending=True, replayed=replayed)
    except AppError as refusal:
        await resolve_refusal(pool=pool, cache=cache, request_id=request_id, campaign_id=campaign_id, refusal=refusal)
        raise
    return Changed(await get(pool=pool, cache=cache, principal=principal, campaign_id=campaign_id), replayed=replayed)


async def send_recorded(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    temporal: Client,
    settings: Settings,
    recorded: asyncpg.Record,
    wait_s: float,
) -> StatusResult | AppError:
    """Send a recorded pending request again (as the same update, so it applies once) and
    record the workflow's answer: its result once applied, or its refusal. NoAnswer if it
    did not answer within `wait_s`."""
    request_id, campaign_id = recorded["id"], recorded["campaign_id"]
    row = await repo.get_any(pool, campaign_id)
    assert row is not None  # a request goes with its campaign
    request = StatusRequest(
        target=recorded["target"],
        actor=Actor.model_validate(recorded["actor"]),
        reason=recorded["reason"],
        request_id=str(request_id),
        config=workflow_client.workflow_config(row),
    )
    try:
        result = await workflow_client.change_status(temporal, settings, row, request, wait_s=wait_s)
    except AppError as refusal:
        await resolve_refusal(pool=pool, cache=cache, request_id=request_id, campaign_id=campaign_id, refusal=refusal)
        return refusal
    # The transition's transaction marked it; this covers an answer the workflow gave from
    # its memory of a request it applied before.
    if await repo.mark_request_applied(pool, request_id=request_id, status=result.status.value, at=result.changed_at):
        if cache is not None:
            await cache.invalidate(campaign_id)
    return result


async def _record_request(
    pool: asyncpg.Pool,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    *,
    request_id: UUID,
    idempotency_key: str | None,
    fingerprint: bytes,
    target: CampaignStatus,
    reason: str | None,
) -> tuple[Row, asyncpg.Record | None]:
    """Record the request (pending), or find the one its Idempotency-Key names, and read the
    campaign as the workflow must start from it. Returns (row, the earlier request or None).
    A request the platform refuses before asking the workflow is recorded as refused (when it
    has a key) and raised. Postgres down: Unavailable, and nothing was recorded."""
    refusal: AppError | None = None
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            row = await get_row(conn, None, principal, campaign_id)
            refusal = _refused_before_asking(row, target)
            held = None
            if refusal is None or idempotency_key:
                held = await repo.insert_status_request(
                    conn,
                    request_id=request_id,
                    organization_id=principal.organization_id,
                    campaign_id=campaign_id,
                    idempotency_key=idempotency_key,
                    request_hash=fingerprint,
                    target=target.value,
                    reason=reason,
                    actor=principal.actor(),
                    # The relay takes over once this process has stopped waiting.
                    retry_in_s=settings.status_change_wait_s + 1,
                )
            if held is None and refusal is not None:
                await repo.mark_request_rejected(conn, request_id=request_id, outcome=_outcome_of(refusal))
            elif held is None:
                await repo.request_workflow(conn, organization_id=principal.organization_id, campaign_id=campaign_id)
                row = await get_row(conn, None, principal, campaign_id)  # as of this transaction, after the lock
        except BaseException:
            await transaction.rollback()
            raise
        try:
            await transaction.commit()
        except _DB_DOWN:
            # The commit may or may not have reached the disk: only the request itself can tell.
            raise Unavailable(
                "Postgres failed while recording the status change, which may or may not have been recorded; "
                "retry with the same Idempotency-Key to learn what became of it",
                code="status_change_unconfirmed",
            ) from None
    if held is None and refusal is not None:
        raise refusal
    return row, held


def _refused_before_asking(row: Row, target: CampaignStatus) -> AppError | None:
    """Refusals that need no workflow: an archived campaign; a draft that cannot take calls."""
    if row["status"] == CampaignStatus.ARCHIVED:
        return Conflict(
            f"invalid status transition: archived -> {target.value} (archived is final)",
            code="invalid_transition",
            details={"from": "archived", "to": target.value},
        )
    if target == CampaignStatus.ACTIVE and row["status"] == CampaignStatus.DRAFT:
        return _not_ready(row)
    return None


def _outcome_of(refusal: AppError) -> dict[str, Any]:
    return {"status": refusal.status, "code": refusal.code, "error": refusal.message, "details": refusal.details}


def _refusal_of(outcome: dict[str, Any], *, replayed: bool = False) -> AppError:
    """The refusal a request recorded (raised again for a retry with its Idempotency-Key)."""
    return AppError(
        outcome["error"],
        code=outcome["code"],
        status=outcome["status"],
        details=outcome.get("details"),
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


async def resolve_refusal(
    *, pool: asyncpg.Pool, cache: CampaignCache | None, request_id: UUID, campaign_id: UUID, refusal: AppError
) -> None:
    """Record the workflow's refusal of a pending request: final, except a refusal to retry
    (a service it needed was down), which is forgotten so the same Idempotency-Key asks again."""
    try:
        if refusal.code in workflow_client.RETRYABLE_REFUSALS:
            await repo.forget_status_request(pool, request_id=request_id)
        else:
            await repo.mark_request_rejected(pool, request_id=request_id, outcome=_outcome_of(refusal))
    except _DB_DOWN as err:
        # The workflow's answer stands; the relay asks again and records it then.
        log.warning("could not record the refusal of status request %s: %r", request_id, err)
    if cache is not None:  # it may have been read as pending meanwhile
        await cache.invalidate(campaign_id)


def _not_ready(row: Row) -> Conflict | None:
    """A campaign needs a conversation flow before it can take calls."""
    missing = []
    if not row["config"].get("flowId"):
        missing.append({"field": "flowId", "reason": "a campaign needs a conversation flow to be activated"})
    if not missing:
        return None
    return Conflict(
        "campaign is not ready to activate: " + "; ".join(f"{m['field']}: {m['reason']}" for m in missing),
        code="campaign_not_ready",
        details=missing,
    )


async def clone(
    *,
    pool: asyncpg.Pool,
    cache: CampaignCache | None,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    body: CloneRequest,
    idempotency_key: str | None,
) -> tuple[Campaign, bool]:
    """Copy a campaign's whole configuration into a new draft (goal progress starts at zero)."""
    source = await get_row(pool, cache, principal, campaign_id)
    config = CampaignConfiguration.model_validate(source["config"])
    config.goals = [g.model_copy(update={"id": None, "current": 0, "achieved": False}) for g in config.goals]
    new = CampaignCreate(
        name=body.name or f"{source['name']} (copy)"[:200],
        description=body.description if body.description is not None else source["description"],
        type=source["type"],
        channel=source["channel"],
        **config.model_dump(),
    )
    campaign, replayed = await create(
        pool=pool,
        settings=settings,
        principal=principal,
        body=new,
        idempotency_key=f"clone:{campaign_id}:{idempotency_key}" if idempotency_key else None,
    )
    if not replayed:
        await repo.add_audit(
            pool,
            organization_id=principal.organization_id,
            campaign_id=UUID(campaign.id),
            actor=principal.actor(),
            action="cloned",
            changes={"sourceCampaignId": str(campaign_id)},
        )
    return campaign, replayed


async def audit(
    *, pool: asyncpg.Pool, cache: CampaignCache | None, principal: Principal, campaign_id: UUID, page: int, limit: int
) -> tuple[list[AuditEntry], int]:
    """The campaign's audit log, oldest first."""
    await get_row(pool, cache, principal, campaign_id)
    rows, total = await repo.list_audit(
        pool, organization_id=principal.organization_id, campaign_id=campaign_id, limit=limit, offset=(page - 1) * limit
    )
    return [AuditEntry.model_validate(dict(r)) for r in rows], total
