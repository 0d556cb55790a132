"""Activities that write the campaign workflow's decisions to Postgres.

Each is idempotent: a retry after a crash, a timeout or a lost reply writes nothing twice
(status changes are keyed by their transition id, events by their event id).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from temporalio import activity

from campaigns.api.campaigns import repository as repo
from campaigns.api.campaigns.cache import CampaignCache
from campaigns.domain.messages import DomainEvent, PersistTransition


class StoreActivities:
    def __init__(self, pool: asyncpg.Pool, cache: CampaignCache | None = None) -> None:
        self.pool = pool
        self.cache = cache  # told of every status change, so no API process serves the old one

    @activity.defn
    async def persist_transition(self, change: PersistTransition) -> None:
        """Project a status change onto the campaign row, audit it and record its event,
        in one transaction."""
        campaign_id = UUID(change.campaign_id)
        organization_id = UUID(change.organization_id)
        try:
            await self._persist(change, campaign_id, organization_id)
        finally:
            # Also after a retry that found the change already written: its first attempt
            # may have committed and then died before invalidating.
            if self.cache is not None:
                await self.cache.invalidate(campaign_id)

    async def _persist(self, change: PersistTransition, campaign_id: UUID, organization_id: UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            first_time = await repo.add_audit(
                conn,
                organization_id=organization_id,
                campaign_id=campaign_id,
                actor=change.actor.model_dump(),
                action="status_changed",
                changes={"status": {"from": change.source.value, "to": change.target.value}},
                reason=change.reason,
                dedupe_key=f"transition:{change.transition_id}",
                at=change.at,
            )
            if not first_time:
                return  # applied by an earlier attempt whose reply was lost
            await repo.apply_transition(
                conn,
                campaign_id=campaign_id,
                status=change.target.value,
                reason=change.reason,
                at=change.at,
                started_at=change.started_at,
                ended_at=change.ended_at,
            )
            await repo.record_event(
                conn,
                event_id=UUID(change.transition_id),
                organization_id=organization_id,
                campaign_id=campaign_id,
                type_=change.event_type,
                data=change.event_data,
                occurred_at=change.at,
            )

    @activity.defn
    async def record_event(self, event: DomainEvent) -> bool:
        """Record a platform event once. False if its campaign does not exist."""
        campaign_id = UUID(event.campaign_id) if event.campaign_id else None
        async with self.pool.acquire() as conn, conn.transaction():
            if campaign_id is not None and not await repo.exists(conn, campaign_id):
                return False
            await repo.record_event(
                conn,
                event_id=UUID(event.id),
                organization_id=UUID(event.organization_id),
                campaign_id=campaign_id,
                type_=event.type,
                data=event.data,
                occurred_at=event.occurred_at,
            )
        return True

    def all(self) -> list:
        return [self.persist_transition, self.record_event]
