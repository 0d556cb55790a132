"""The A/B test API's fixtures."""

from __future__ import annotations

import httpx
import pytest

from tests.support.campaigns import activated


@pytest.fixture
async def campaign(api: httpx.AsyncClient) -> dict:
    """Here, an active campaign of `api`'s organization: a draft cannot be tested."""
    return await activated(api)
