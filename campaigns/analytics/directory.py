"""Which organization each campaign belongs to, as the ingest path asks it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

import asyncpg

from campaigns.analytics import repository as repo


class CampaignDirectory:
    """Which organization each campaign belongs to (by the campaign id's canonical text),
    cached in-process: a campaign never changes organization, so the cache can never be
    wrong, only incomplete."""

    def __init__(self, pool: asyncpg.Pool, *, size: int = 200_000) -> None:
        self.pool = pool
        self.size = size
        self._known: OrderedDict[str, UUID] = OrderedDict()

    async def organizations(self, campaign_ids: Iterable[str]) -> dict[str, UUID]:
        out: dict[str, UUID] = {}
        missing = []
        for cid in campaign_ids:
            org = self._known.get(cid)
            if org is None:
                missing.append(cid)
            else:
                out[cid] = org
        if missing:
            found = await repo.campaign_organizations(self.pool, [UUID(c) for c in missing])
            for campaign_id, org in found.items():
                self._known[str(campaign_id)] = org
                out[str(campaign_id)] = org
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        return out
