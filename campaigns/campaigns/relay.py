"""The hand-over relay: finishes what the API started with a campaign's workflow.

The API records every status request, and every configuration change a workflow acts on,
in Postgres in the change's own transaction, then tells the workflow at once. When that
does not get through (Temporal or the workers down or slow, the API process gone), the
relay does: it re-sends a pending status request as the same update (its id, so the
workflow applies it once), and a configuration as a signal-with-start from the row, with
a growing pause between tries, until the workflow has answered or accepted it.

It runs in every worker beside the webhook dispatcher, and any number may run: each takes
its entries with a lease (SKIP LOCKED), so two never work on one entry at once, and an
entry whose relay died is taken again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import asyncpg
from temporalio.client import Client

from campaigns.campaigns import repository as repo
from campaigns.campaigns import service, workflow_client
from campaigns.campaigns.cache import CampaignCache
from campaigns.errors import AppError
from campaigns.settings import Settings

log = logging.getLogger("campaigns.relay")

_PRUNE_EVERY_S = 600.0
_LEASE_MARGIN_S = 10.0  # beyond the longest wait of one try


class Relay:
    def __init__(self, client: Client, pool: asyncpg.Pool, settings: Settings, cache: CampaignCache | None) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self.cache = cache  # told when a request resolves here, so no API process shows it pending

    async def run(self) -> None:
        """Relay until cancelled, surviving Postgres and Temporal outages."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + 60
        backoff = 0.5
        while True:
            try:
                busy = await self.relay_once()
                if loop.time() >= next_prune:
                    await self.prune()
                    next_prune = loop.time() + _PRUNE_EVERY_S
                backoff = 0.5
                if busy < self.settings.handover_batch:
                    await asyncio.sleep(self.settings.handover_poll_s)
            except Exception as err:  # noqa: BLE001 - the relay must outlive any outage
                log.warning("hand-over relay: %r; retrying in %.1fs", err, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    async def relay_once(self) -> int:
        """Take the entries that are due and try each once, concurrently; return how many."""
        lease = self.settings.status_change_wait_s + _LEASE_MARGIN_S
        limit = self.settings.handover_batch
        configurations = await repo.claim_configurations(self.pool, limit=limit, lease_s=lease)
        requests = await repo.claim_status_requests(self.pool, limit=limit, lease_s=lease)
        await asyncio.gather(
            *(self._configuration(e["campaign_id"], e["attempts"]) for e in configurations),
            *(self._status_request(r) for r in requests),
        )
        return len(configurations) + len(requests)

    def _retry_in(self, attempts: int) -> float:
        return min(self.settings.handover_max_backoff_s, 0.5 * 2 ** min(attempts, 16))

    async def _configuration(self, campaign_id: UUID, attempts: int) -> None:
        row = await repo.get_any(self.pool, campaign_id)
        if row is None:
            return  # deleted with its campaign
        told = await service.tell_configuration(pool=self.pool, temporal=self.client, settings=self.settings, row=row)
        if not told:
            await repo.configuration_failed(
                self.pool,
                campaign_id=campaign_id,
                error="Temporal did not accept the signal",
                retry_in_s=self._retry_in(attempts),
            )
        elif attempts > 1:
            log.info("campaign %s: configuration %s delivered after %d tries", campaign_id, row["version"], attempts)

    async def _status_request(self, recorded: asyncpg.Record) -> None:
        request_id, campaign_id = recorded["id"], recorded["campaign_id"]
        try:
            answer = await service.send_recorded(
                pool=self.pool,
                cache=self.cache,
                temporal=self.client,
                settings=self.settings,
                recorded=recorded,
                wait_s=self.settings.status_change_wait_s,
            )
        except workflow_client.NoAnswer as err:
            await repo.status_request_failed(
                self.pool, request_id=request_id, error=str(err), retry_in_s=self._retry_in(recorded["attempts"])
            )
            return
        outcome = f"refused ({answer.code})" if isinstance(answer, AppError) else "applied"
        log.info("status request %s of campaign %s %s (try %d)", request_id, campaign_id, outcome, recorded["attempts"])

    async def prune(self) -> int:
        """Forget resolved status requests past their retention, in small batches."""
        total = 0
        while True:
            n = await repo.prune_status_requests(
                self.pool, older_than_s=self.settings.status_request_retention_s, limit=1000
            )
            total += n
            if n < 1000:
                return total
