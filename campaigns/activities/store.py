"""Activities that write the campaign workflow's decisions to Postgres.

Each is idempotent: a retry after a crash, a timeout or a lost reply writes nothing twice
(status changes are keyed by their transition id, events by their event id). A status
change also marks the client's request it applies as applied, in the same transaction.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from temporalio import activity

from campaigns.campaigns import repository as repo
from campaigns.campaigns.cache import CampaignCache
from campaigns.db import Connection
from campaigns.messages import campaign as m
from campaigns.messages.campaign import PersistTransition, PersistWindow
from campaigns.messages.common import PlatformEvent
from campaigns.scheduling import repository as scheduling_repo


class StoreActivities:
    def __init__(self, pool: asyncpg.Pool, cache: CampaignCache | None = None) -> None:
        self.pool = pool
        self.cache = cache  # told of every status change, so no API process serves the old one

    @activity.defn(name=m.PERSIST_TRANSITION)
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
            await repo.record_platform_event(
                conn,
                event_id=UUID(change.transition_id),
                organization_id=organization_id,
                campaign_id=campaign_id,
                type_=change.event_type,
                data=change.event_data,
                occurred_at=change.at,
            )
            if change.window is not None:
                await self._write_window(conn, change.window)
            if change.request_id is not None:
                # With the transition itself: a request is applied exactly when its change is.
                await repo.mark_request_applied(
                    conn, request_id=UUID(change.request_id), status=change.target.value, at=change.at
                )

    @activity.defn(name=m.RECORD_EVENT)
    async def record_platform_event(self, event: PlatformEvent) -> bool:
        """Record a platform event once. False if its campaign does not exist."""
        campaign_id = UUID(event.campaign_id) if event.campaign_id else None
        async with self.pool.acquire() as conn, conn.transaction():
            if campaign_id is not None and not await repo.exists(conn, campaign_id):
                return False
            await repo.record_platform_event(
                conn,
                event_id=UUID(event.id),
                organization_id=UUID(event.organization_id),
                campaign_id=campaign_id,
                type_=event.type,
                data=event.data,
                occurred_at=event.occurred_at,
            )
        return True

    @activity.defn(name=m.PERSIST_WINDOW)
    async def persist_window(self, change: PersistWindow) -> None:
        """Project the calling window (open, next change) onto the campaign row and record its
        event, in one transaction. Ordered by `at`, so a retried older write never overwrites
        a newer one; the event is recorded once, by id."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._write_window(conn, change)
        finally:
            if self.cache is not None:  # windowOpen is part of the campaign the API serves
                await self.cache.invalidate(UUID(change.campaign_id))

    @staticmethod
    async def _write_window(conn: Connection, change: PersistWindow) -> None:
        campaign_id = UUID(change.campaign_id)
        await scheduling_repo.apply_window(
            conn, campaign_id=campaign_id, open_=change.open, next_change=change.next_change, at=change.at
        )
        if change.event is not None:
            e = change.event
            await repo.record_platform_event(
                conn,
                event_id=UUID(e.id),
                organization_id=UUID(e.organization_id),
                campaign_id=campaign_id,
                type_=e.type,
                data=e.data,
                occurred_at=e.occurred_at,
            )

    def all(self) -> list:
        return [self.persist_transition, self.record_platform_event, self.persist_window]
