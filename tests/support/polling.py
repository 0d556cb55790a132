"""Waiting for something that happens in the background: the suite's one polling loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T] | T], what: str, *, within: float = 20,
                     every: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy (awaiting it if needed) and return that.
    After `within` seconds, fail with a message that says `what` was awaited and the last value."""
    deadline = time.monotonic() + within
    while True:
        last: Any = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s (last value: {last!r})")
        await asyncio.sleep(every)
