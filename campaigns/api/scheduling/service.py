"""Scheduling use cases: the schedule preview and the dial check. Both compute with the
same pure timeline the campaign workflow uses (`domain.schedule`)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from campaigns.api.auth.service import Principal
from campaigns.api.errors import NotFound, invalid
from campaigns.api.scheduling import repository as repo
from campaigns.api.scheduling.schemas import (
    DialCheck,
    DialCheckRequest,
    Preview,
    PreviewWindow,
    Recipient,
)
from campaigns.domain import dialing
from campaigns.domain.config import (
    CampaignConfiguration,
    CampaignSchedule,
    CampaignStatus,
    CampaignType,
)
from campaigns.domain.schedule import campaign_timeline
from campaigns.domain.timeutil import zone


async def _row(pool: asyncpg.Pool, principal: Principal, campaign_id: UUID) -> asyncpg.Record:
    row = await repo.get(pool, organization_id=principal.organization_id, campaign_id=campaign_id)
    if row is None:
        # Another organization's campaign is indistinguishable from a missing one.
        raise NotFound("campaign not found", code="campaign_not_found")
    return row


def preview_of(schedule: CampaignSchedule, timezone: str, *, count: int, since: datetime) -> Preview:
    """The next `count` calling windows from `since`, in UTC and on the campaign's clock."""
    tz = zone(timezone)
    windows = campaign_timeline(schedule, timezone).upcoming(since, count + 1)

    def local(at: datetime | None) -> datetime | None:
        return at.astimezone(tz) if at is not None else None

    return Preview(
        timezone=timezone,
        from_=since,
        recurring=schedule.recurrence is not None,
        windows=[
            PreviewWindow(
                opens_at=w.opens_at,
                opens_at_local=local(w.opens_at),
                closes_at=w.closes_at,
                closes_at_local=local(w.closes_at),
                open_at_from=w.contains(since),
            )
            for w in windows[:count]
        ],
        more=len(windows) > count,
    )


async def preview(
    *, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, count: int, since: datetime | None
) -> Preview:
    """Preview a campaign's saved schedule."""
    row = await _row(pool, principal, campaign_id)
    config = CampaignConfiguration.model_validate(row["config"])
    return preview_of(config.schedule, config.timezone, count=count, since=_instant(since))


def _instant(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise invalid(
            [{"field": "query.from", "reason": "must be an instant with an offset (e.g. '2026-12-01T08:00:00Z')"}]
        )
    return value.astimezone(UTC)


async def dial_check(
    *, pool: asyncpg.Pool, principal: Principal, campaign_id: UUID, body: DialCheckRequest
) -> DialCheck:
    """May the campaign dial this recipient now? Refuses whenever anything is unknown."""
    row = await _row(pool, principal, campaign_id)
    if body.timezone is not None:
        recipient = dialing.zone_of_name(body.timezone)
    else:
        assert body.phone_number is not None
        try:
            number = dialing.normalize_e164(body.phone_number)
        except ValueError as err:
            raise invalid([{"field": "phoneNumber", "reason": str(err)}]) from None
        recipient = dialing.zone_of_number(number)
    config = CampaignConfiguration.model_validate(row["config"])
    now = datetime.now(UTC)
    decision = dialing.decide(
        campaign_type=CampaignType(row["type"]),
        status=CampaignStatus(row["status"]),
        window_open=row["window_open"],
        window_next_change=row["next_window_change"],
        schedule=config.schedule,
        timezone=config.timezone,
        recipient=recipient,
        now=now,
    )
    return DialCheck(
        allowed=decision.allowed,
        reason=decision.reason,
        message=decision.message,
        next_allowed_at=decision.next_allowed_at,
        allowed_until=decision.allowed_until,
        recipient=Recipient(
            timezone=recipient.zone,
            source=recipient.source,
            local_time=dialing.local_time(now, recipient.zone) if recipient.zone else None,
            candidates=list(recipient.candidates),
        ),
        checked_at=now,
    )
