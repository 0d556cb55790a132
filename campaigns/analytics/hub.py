"""Fan-out of real-time changes to the SSE streams of one API process.

One Redis pub/sub connection per process, subscribed to the channels of the campaigns
somebody in this process is watching (not one connection per viewer). A change wakes
every local viewer of that campaign; viewers of one campaign share one read of its
metrics (`snapshot`), so a thousand dashboards cost one Redis read per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from campaigns.analytics.realtime import PREFIX, channel

log = logging.getLogger("campaigns.analytics.hub")

_CHANNEL_PREFIX = f"{PREFIX}chan:"
_POLL = 0.2  # how long a new subscription may wait for the reader to pick it up


class RealtimeHub:
    def __init__(self, redis: aioredis.Redis, *, share_for: float = 0.05) -> None:
        self._redis = redis
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._wanted = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._share_for = share_for
        self._snapshots: dict[str, tuple[float, asyncio.Future]] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-hub")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)

    @contextlib.asynccontextmanager
    async def listen(self, campaign_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the campaign's counters change, while the block runs."""
        changed = asyncio.Event()
        self._listeners.setdefault(campaign_id, set()).add(changed)
        self._wanted.set()
        try:
            yield changed
        finally:
            viewers = self._listeners.get(campaign_id)
            if viewers is not None:
                viewers.discard(changed)
                if not viewers:
                    del self._listeners[campaign_id]
            self._wanted.set()

    async def snapshot(self, campaign_id: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """`load()`, shared by every viewer of the campaign asking within `share_for` seconds."""
        now = time.monotonic()
        held = self._snapshots.get(campaign_id)
        if held is not None and now - held[0] < self._share_for and not (held[1].done() and held[1].exception()):
            return await asyncio.shield(held[1])
        future: asyncio.Future = asyncio.ensure_future(load())
        self._snapshots[campaign_id] = (now, future)
        if len(self._snapshots) > 10_000:
            self._snapshots = {k: v for k, v in self._snapshots.items() if now - v[0] < self._share_for}
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            subscribed: set[str] = set()
            try:
                while True:
                    wanted = set(self._listeners)
                    if wanted - subscribed:
                        await pubsub.subscribe(*(channel(c) for c in wanted - subscribed))
                    if subscribed - wanted:
                        await pubsub.unsubscribe(*(channel(c) for c in subscribed - wanted))
                    subscribed = wanted
                    self._wanted.clear()
                    if not subscribed:
                        await self._wanted.wait()
                        continue
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL)
                    while message is not None:
                        self._dispatch(message)
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (redis.exceptions.ConnectionError, OSError, redis.exceptions.TimeoutError) as exc:
                log.warning("real-time pub/sub connection lost (%r); reconnecting", exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                # Viewers re-read on their own timer meanwhile; wake them so they notice at once.
                for viewers in self._listeners.values():
                    for v in viewers:
                        v.set()
                await asyncio.sleep(1)

    def _dispatch(self, message: dict[str, Any]) -> None:
        name = message.get("channel")
        if isinstance(name, bytes):
            name = name.decode()
        if not name or not name.startswith(_CHANNEL_PREFIX):
            return
        for viewer in self._listeners.get(name[len(_CHANNEL_PREFIX):], ()):
            viewer.set()
