"""Variants for the simulator's callers and visitors, from the same assignment service as
`POST /api/campaigns/{id}/ab-test/{testId}/assign` (the simulator stands in for the
pipeline of every organization, so it asks as each campaign's organization)."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import asyncpg

from campaigns.api.abtests import service as abtests
from campaigns.api.auth.service import SystemPrincipal
from campaigns.api.errors import AppError
from campaigns.simulator.traffic import Arrival, Variant

log = logging.getLogger("campaigns.simulator")

_SIMULATOR_KEY = UUID(int=0)


async def variants(pool: asyncpg.Pool, arrivals: list[Arrival]) -> list[Variant | None]:
    """Each arrival's variant (None outside a test, or once its test has concluded)."""
    return list(await asyncio.gather(*(_one(pool, a) for a in arrivals)))


async def _one(pool: asyncpg.Pool, arrival: Arrival) -> Variant | None:
    campaign = arrival.campaign
    if campaign.ab_test_id is None:
        return None
    principal = SystemPrincipal(
        organization_id=campaign.organization_id,
        organization_name="",
        key_id=_SIMULATOR_KEY,
        key_name="simulator",
        actor_id="simulator",
        actor_name="simulator",
    )
    try:
        a = await abtests.assign(
            pool=pool,
            principal=principal,
            campaign_id=campaign.id,
            test_id=campaign.ab_test_id,
            subject_id=arrival.subject_id,
        )
    except AppError as err:  # concluded since the campaigns were listed: no variant
        log.debug("no assignment for %s: %s", arrival.subject_id, err.message)
        return None
    return Variant(a.variant_id, a.is_control)
