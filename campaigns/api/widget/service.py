"""Widget use cases: read and change a campaign's widget, its embed code and its key.

The widget belongs to its campaign: every call first reads the campaign as the caller's
organization (another organization's is a 404), through the campaign cache.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from campaigns.api.auth.service import Principal
from campaigns.api.campaigns import service as campaigns
from campaigns.api.errors import Conflict, PreconditionFailed, invalid
from campaigns.api.widget import repository as repo
from campaigns.api.widget.schemas import EmbedCode, Widget, WidgetAnalytics
from campaigns.domain import embed
from campaigns.domain.config import CampaignConfiguration, CampaignStatus
from campaigns.domain.widget import WidgetSettings
from campaigns.settings import Settings

KEY_PREFIX = "qcw_pk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def urls(settings: Settings, campaign_id: str, key: str) -> dict[str, str]:
    base = settings.base_url.rstrip("/")
    return {
        "api_url": base,
        "script_url": f"{base}/embed/widget.js",
        "preview_url": f"{base}/embed/preview/{campaign_id}?key={quote(key, safe='')}",
    }


def _view(campaign: Any, row: asyncpg.Record, settings: Settings) -> Widget:
    widget = WidgetSettings.model_validate(row["settings"])
    config = CampaignConfiguration.model_validate(campaign["config"])
    links = urls(settings, str(campaign["id"]), row["publishable_key"])
    return Widget(
        campaign_id=str(campaign["id"]),
        name=campaign["name"],
        status=campaign["status"],
        voice_settings=config.voice_settings,
        enabled=widget.enabled,
        styling=widget.styling,
        behavior=widget.behavior,
        integration=widget.integration,
        publishable_key=row["publishable_key"],
        script_url=links["script_url"],
        preview_url=links["preview_url"],
        version=row["version"],
        updated_at=row["updated_at"],
    )


async def _ensure(pool: asyncpg.Pool, principal: Principal, campaign_id: UUID) -> tuple[Any, asyncpg.Record]:
    campaign = await campaigns.get_row(pool, principal, campaign_id)
    row = await repo.get_or_create(
        pool,
        campaign_id=campaign_id,
        organization_id=principal.organization_id,
        settings=WidgetSettings().model_dump(mode="json", by_alias=True),
        publishable_key=new_key(),
    )
    return campaign, row


async def get(*, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, settings: Settings) -> Widget:
    """The campaign's widget (made with defaults the first time)."""
    campaign, row = await _ensure(pool, principal, campaign_id)
    return _view(campaign, row, settings)


async def update(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    campaign_id: UUID,
    patch: dict[str, Any],
    settings: Settings,
    if_match: str | None = None,
) -> Widget:
    """Apply a merge patch to the widget's settings; 400 lists every invalid field."""
    campaign, _ = await _ensure(pool, principal, campaign_id)
    if campaign["status"] == CampaignStatus.ARCHIVED:
        raise Conflict("an archived campaign's widget cannot be changed", code="campaign_archived")
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.get_for_update(conn, campaign_id)
        assert row is not None
        if if_match is not None:
            expected = if_match.strip().removeprefix("W/").strip('"')
            if expected != "*" and expected != str(row["version"]):
                raise PreconditionFailed(
                    f"the widget changed since you read it (version {row['version']}, If-Match {if_match})",
                    details={"currentVersion": row["version"]},
                )
        merged = campaigns.merge_patch(dict(row["settings"]), patch)
        try:
            new = WidgetSettings.model_validate(merged)
        except ValidationError as err:
            raise invalid(err, "invalid widget configuration") from None
        document = new.model_dump(mode="json", by_alias=True)
        if document != row["settings"]:
            row = await repo.update_settings(conn, campaign_id=campaign_id, settings=document)
    return _view(campaign, row, settings)


async def rotate_key(*, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, settings: Settings) -> Widget:
    """Replace the publishable key; the old one stops working at once (re-paste the embed code)."""
    campaign, _ = await _ensure(pool, principal, campaign_id)
    row = await repo.set_key(pool, campaign_id=campaign_id, publishable_key=new_key())
    return _view(campaign, row, settings)


def public_configuration(widget: WidgetSettings) -> dict[str, Any]:
    """What a page may know of the widget: how it looks and behaves, not who may use it."""
    return {
        "enabled": widget.enabled,
        "styling": widget.styling.model_dump(mode="json", by_alias=True),
        "behavior": widget.behavior.model_dump(mode="json", by_alias=True),
    }


async def embed_code(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    campaign_id: UUID,
    settings: Settings,
    callbacks: dict[str, str],
) -> EmbedCode:
    """The snippet to paste into a page, safe whatever the campaign's name and settings hold."""
    errors = []
    for name, value in callbacks.items():
        try:
            embed.callback_name(value)
        except ValueError as err:
            errors.append({"field": f"query.{name}", "reason": str(err)})
    if errors:
        raise invalid(errors, "invalid callback")
    campaign, row = await _ensure(pool, principal, campaign_id)
    links = urls(settings, str(campaign_id), row["publishable_key"])
    configuration = public_configuration(WidgetSettings.model_validate(row["settings"]))
    html = embed.render(
        campaign_id=str(campaign_id),
        campaign_name=campaign["name"],
        publishable_key=row["publishable_key"],
        script_url=links["script_url"],
        api_url=links["api_url"],
        configuration=configuration,
        callbacks=callbacks,
    )
    return EmbedCode(
        html=html,
        script_url=links["script_url"],
        preview_url=links["preview_url"],
        publishable_key=row["publishable_key"],
        configuration=configuration,
    )


TIMEFRAMES = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}


async def analytics(*, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, timeframe: str) -> WidgetAnalytics:
    """Impressions, clicks, display time and the conversions of visitors who clicked."""
    await campaigns.get_row(pool, principal, campaign_id)
    span = TIMEFRAMES[timeframe]
    row = await repo.analytics(pool, campaign_id, datetime.now(UTC) - span if span else None)
    impressions, clicks, displays = int(row["impressions"]), int(row["clicks"]), int(row["displays"])
    conversions = int(row["conversions"])
    return WidgetAnalytics(
        impressions=impressions,
        clicks=clicks,
        click_through_rate=round(clicks / impressions, 6) if impressions else 0,
        displays=displays,
        average_display_time=round(float(row["display_ms"]) / displays, 1) if displays else 0,
        conversions=conversions,
        conversion_rate=round(conversions / clicks, 6) if clicks else 0,
        unique_visitors=int(row["visitors"]),
    )
