"""Campaign use cases: create, read, list, change, clone, audit.

Configuration belongs to Postgres and is written here; the lifecycle status belongs to
the campaign's workflow and is only ever changed by asking it (workflow_client).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError
from temporalio.client import Client

from campaigns.api.auth.service import Principal
from campaigns.api.campaigns import cache as campaign_cache
from campaigns.api.campaigns import repository as repo
from campaigns.api.campaigns import workflow_client
from campaigns.api.campaigns.schemas import (
    AuditEntry,
    Campaign,
    CampaignCreate,
    CampaignPatch,
    CampaignPerformance,
    CloneRequest,
    ConfigurationPatch,
    CostBreakdown,
    CostTracking,
)
from campaigns.api.deps import require_same_org
from campaigns.api.errors import Conflict, NotFound, PreconditionFailed, Unavailable, invalid
from campaigns.clients.knowledge_bases import KnowledgeBases, KnowledgeBaseUnavailable
from campaigns.domain import lifecycle
from campaigns.domain.config import CONFIG_FIELDS, CampaignConfiguration, CampaignStatus
from campaigns.domain.kpis import default_kpis
from campaigns.domain.messages import Actor, StatusRequest
from campaigns.settings import Settings

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


Row = asyncpg.Record | Mapping[str, Any]


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
    )


async def get_row(pool: asyncpg.Pool | asyncpg.Connection, principal: Principal, campaign_id: UUID) -> Row:
    """The campaign's row, through the pool's cache where it has one (treat it as read-only)."""
    cached = campaign_cache.for_pool(pool)
    if cached is None:
        row = await repo.get(pool, organization_id=principal.organization_id, campaign_id=campaign_id)
    else:
        row = await cached.get(campaign_id, lambda: repo.get_any(pool, campaign_id))
        if row is not None and row["organization_id"] != principal.organization_id:
            row = None
    if row is None:
        # Another organization's campaign is indistinguishable from a missing one.
        raise NotFound("campaign not found", code="campaign_not_found")
    return row


async def invalidate(pool: asyncpg.Pool, campaign_id: UUID) -> None:
    """After a write has committed: no process may serve the old campaign any more."""
    cached = campaign_cache.for_pool(pool)
    if cached is not None:
        await cached.invalidate(campaign_id)


async def get(*, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID) -> Campaign:
    """Get one campaign of the caller's organization."""
    return to_campaign(await get_row(pool, principal, campaign_id))


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
        same_goal = old is not None and (old.type, old.timeframe) == (goal.type, goal.timeframe)
        goals.append(
            goal.model_copy(
                update={
                    "id": goal.id or uuid.uuid4().hex[:12],
                    "current": old.current if same_goal else 0,
                    "achieved": (old.current >= goal.target) if same_goal else False,
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
    temporal: Client,
    settings: Settings,
    principal: Principal,
    body: CampaignCreate,
    idempotency_key: str | None,
) -> tuple[Campaign, bool]:
    """Create a draft campaign and start its workflow. Returns (campaign, replayed): a retry
    with the same Idempotency-Key returns the first campaign instead of a second one."""
    require_same_org(principal, body.organization_id)
    config = CampaignConfiguration.model_validate(body.model_dump(include=CONFIG_FIELDS))
    if "kpis" not in body.model_fields_set:
        config.kpis = default_kpis(body.type)
    config = _with_ids(config)
    await check_knowledge_bases(settings, principal, config.knowledge_base_ids)
    campaign_id = uuid.uuid4()
    fingerprint = _request_hash(body.model_dump(mode="json", exclude={"organization_id"}))

    started = None
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                if idempotency_key:
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
                        return to_campaign(await get_row(conn, principal, held["campaign_id"])), True
                row = await repo.insert(
                    conn,
                    campaign_id=campaign_id,
                    organization_id=principal.organization_id,
                    user_id=str(principal.key_id),
                    name=body.name,
                    description=body.description,
                    type_=body.type.value,
                    channel=body.channel.value,
                    timezone=config.timezone,
                    config=_config_json(config),
                )
                await repo.add_audit(
                    conn,
                    organization_id=principal.organization_id,
                    campaign_id=campaign_id,
                    actor=principal.actor(),
                    action="created",
                    changes={"name": body.name, "type": body.type.value, "channel": body.channel.value},
                )
                await repo.record_event(
                    conn,
                    event_id=uuid.uuid4(),
                    organization_id=principal.organization_id,
                    campaign_id=campaign_id,
                    type_="campaign.created",
                    data={
                        "campaignId": str(campaign_id),
                        "name": body.name,
                        "type": body.type.value,
                        "channel": body.channel.value,
                    },
                    occurred_at=row["created_at"],
                )
                # Started inside the transaction: if Temporal refuses, nothing is committed.
                started = await workflow_client.start(temporal, settings, row)
        except BaseException:
            if started is not None:
                # The commit failed after the start: no campaign, so no workflow either.
                await workflow_client.discard(started)
            raise
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


def _if_match(row: asyncpg.Record, if_match: str | None) -> None:
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
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    patch: dict[str, Any],
    if_match: str | None = None,
    idempotency_key: str | None = None,
    configuration_only: bool = False,
) -> Campaign:
    """Apply a merge patch; a `status` in it goes to the workflow after the rest is saved."""
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
        row = await repo.get_for_update(conn, organization_id=principal.organization_id, campaign_id=campaign_id)
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
        if changes:
            await repo.update_fields(conn, campaign_id=campaign_id, fields=fields)
            await repo.add_audit(
                conn,
                organization_id=principal.organization_id,
                campaign_id=campaign_id,
                actor=principal.actor(),
                action="configuration_changed" if configuration_only else "updated",
                changes=changes,
            )
    if changes:
        await invalidate(pool, campaign_id)
        row = await get_row(pool, principal, campaign_id)
        if {k.split(".")[0] for k in changes} & _WORKFLOW_FIELDS:
            await workflow_client.configuration_changed(temporal, settings, row)
    if status is not None and status != CampaignStatus(row["status"]):
        await change_status(
            pool=pool,
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
    return await get(pool=pool, principal=principal, campaign_id=campaign_id)


def _changes(row: asyncpg.Record, patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    target: CampaignStatus,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> Campaign:
    """Ask the campaign's workflow to move to `target`; return the campaign as persisted."""
    row = await get_row(pool, principal, campaign_id)
    if target == CampaignStatus.ACTIVE and row["status"] == CampaignStatus.DRAFT:
        _require_ready(row)
    await workflow_client.change_status(
        temporal,
        settings,
        row,
        StatusRequest(target=target, actor=Actor(**principal.actor()), reason=reason),
        update_id=f"status-{idempotency_key}" if idempotency_key else None,
    )
    return await get(pool=pool, principal=principal, campaign_id=campaign_id)


def _require_ready(row: asyncpg.Record) -> None:
    """A campaign needs a conversation flow before it can take calls."""
    missing = []
    if not row["config"].get("flowId"):
        missing.append({"field": "flowId", "reason": "a campaign needs a conversation flow to be activated"})
    if missing:
        raise Conflict(
            "campaign is not ready to activate: " + "; ".join(f"{m['field']}: {m['reason']}" for m in missing),
            code="campaign_not_ready",
            details=missing,
        )


async def clone(
    *,
    pool: asyncpg.Pool,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    campaign_id: UUID,
    body: CloneRequest,
    idempotency_key: str | None,
) -> tuple[Campaign, bool]:
    """Copy a campaign's whole configuration into a new draft (goal progress starts at zero)."""
    source = await get_row(pool, principal, campaign_id)
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
        temporal=temporal,
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
    *, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, page: int, limit: int
) -> tuple[list[AuditEntry], int]:
    """The campaign's audit log, oldest first."""
    await get_row(pool, principal, campaign_id)
    rows, total = await repo.list_audit(
        pool, organization_id=principal.organization_id, campaign_id=campaign_id, limit=limit, offset=(page - 1) * limit
    )
    return [AuditEntry.model_validate(dict(r)) for r in rows], total
