"""Waiting for something that happens in the background: the suite's one polling loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T] | T], what: str, *, until: Callable[[T], object] = bool,
                     within: float = 20, every: float = 0.1) -> T:
    """Poll `probe` (awaiting it if needed) until `until` holds for what it returns, by default
    until that is truthy, and return that value. After `within` seconds, fail with a message
    that says `what` was awaited and the last value seen."""
    deadline = time.monotonic() + within
    while True:
        last: Any = probe()
        if inspect.isawaitable(last):
            last = await last
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s (last value: {last!r})")
        await asyncio.sleep(every)
