"""Fixtures for the webhook tests: a real local receiver, and helpers to wait on deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.receiver import Receiver

# Retries in a second or less, so a test that makes a receiver fail stays short.
FAST_RETRY = {"maxAttempts": 4, "initialIntervalSeconds": 0.2, "backoffCoefficient": 1.5, "maxIntervalSeconds": 1}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def wait_deliveries(api: httpx.AsyncClient, base: str, *, count: int, status: str | None = None,
                          timeout: float = 20) -> list[dict]:
    """Poll a webhook's deliveries until `count` of them (with `status`, if given) exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        params = {"status": status} if status else {}
        r = await api.get(f"{base}/deliveries", params=params)
        assert r.status_code == 200, r.text
        items = r.json()["deliveries"]
        if len(items) >= count:
            return items
        if loop.time() > deadline:
            raise AssertionError(f"only {len(items)} deliveries ({status or 'any'}) after {timeout}s: {items}")
        await asyncio.sleep(0.1)
