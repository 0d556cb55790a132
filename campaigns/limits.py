"""Rate limits shared by every process through Redis, decided without waiting for it.

A `WindowLimiter` counts, per identity (an API key, an organization, a client address…),
what happens in fixed windows (a second, a minute). Each process decides on its own: it
admits while what Redis last told it the window's total was, plus what it counted since,
stays within the limit. In the background, every `sync_s`, it adds what it counted to Redis
(INCRBY, one pipeline for every identity) and learns the total of all processes back. So a
request pays no round trip for its limit, the limit holds across replicas to within what
they admit in one sync interval, and while Redis is unavailable each process goes on with
the same limit on its own counts: limits then hold per process instead of not at all (or
blocking everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("campaigns.limits")


class _Count:
    __slots__ = ("pending", "known")

    def __init__(self) -> None:
        self.pending = 0  # counted here, not yet added to Redis
        self.known = 0  # the window's total in Redis when last heard (this process's part included)


class WindowLimiter:
    """Fixed windows of `window_s` seconds per identity, shared through Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        name: str,
        window_s: float,
        sync_s: float = 0.05,
        max_identities: int = 100_000,
    ) -> None:
        self.redis = redis
        self.name = name
        self.window_s = window_s
        self.sync_s = sync_s
        self.max_identities = max_identities
        self._window = -1
        self._counts: dict[str, _Count] = {}
        self._task: asyncio.Task[None] | None = None

    # --- Deciding ---------------------------------------------------------------------

    def _current(self, now: float) -> dict[str, _Count]:
        window = int(now // self.window_s)
        if window != self._window:
            self._window = window
            self._counts = {}
        return self._counts

    def _retry_after(self, now: float) -> float:
        return (self._window + 1) * self.window_s - now

    def exceeded(self, identity: str, limit: int, *, now: float | None = None) -> float | None:
        """The seconds until the window ends if `identity` is at its limit already, else None."""
        now = time.time() if now is None else now
        count = self._current(now).get(identity)
        if count is not None and count.known + count.pending >= limit:
            return self._retry_after(now)
        return None

    def allow(self, checks: Sequence[tuple[str, int]], cost: int = 1, *, now: float | None = None) -> float | None:
        """Count `cost` against every (identity, limit) if each stays within its limit and
        return None; otherwise count nothing and return the seconds until the window ends."""
        now = time.time() if now is None else now
        counts = self._current(now)
        found = []
        for identity, limit in checks:
            count = counts.get(identity)
            if count is None:
                if len(counts) >= self.max_identities:
                    counts.clear()  # a flood of identities: forget the quiet ones' local part
                count = counts[identity] = _Count()
            if count.known + count.pending + cost > limit:
                return self._retry_after(now)
            found.append(count)
        for count in found:
            count.pending += cost
        return None

    def add(self, identity: str, cost: int = 1, *, now: float | None = None) -> None:
        """Count `cost` against `identity` whatever its limit (failures, say)."""
        counts = self._current(time.time() if now is None else now)
        count = counts.get(identity)
        if count is None:
            if len(counts) >= self.max_identities:
                counts.clear()
            count = counts[identity] = _Count()
        count.pending += cost

    # --- Sharing ----------------------------------------------------------------------

    def _key(self, identity: str, window: int) -> str:
        return f"rl:{self.name}:{{{identity}}}:{window}"

    async def sync(self) -> None:
        """Add this process's new counts to Redis and learn the totals (one round trip)."""
        window, counts = self._window, self._counts
        sending = [(identity, count, count.pending) for identity, count in counts.items() if count.pending]
        if not sending:
            return
        ttl = max(2, math.ceil(self.window_s * 2))
        async with self.redis.pipeline(transaction=False) as pipe:
            for identity, _, pending in sending:
                key = self._key(identity, window)
                pipe.incrby(key, pending)
                pipe.expire(key, ttl)
            results = await pipe.execute()
        for (_, count, pending), total in zip(sending, results[::2], strict=True):
            count.pending -= pending
            count.known = int(total)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"limiter-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                await self.sync()
            except (redis.exceptions.RedisError, OSError):
                pass  # Redis is down: the counts stay here and the limits hold per process
            except Exception:  # noqa: BLE001 - keep limiting locally; try again next interval
                log.exception("rate limiter %s: sync failed", self.name)
