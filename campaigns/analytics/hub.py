"""Fan-out of real-time changes to the SSE streams of one API process.

One Redis pub/sub connection per process, subscribed to the channels of the campaigns
somebody in this process is watching (not one connection per viewer). A change wakes
every local viewer of that campaign; viewers of one campaign share one read of its
metrics (`snapshot`), so a thousand dashboards cost one Redis read per change. A shared
read is reused only by viewers whose latest change it has seen: none misses an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from campaigns.analytics.realtime import PREFIX, channel

log = logging.getLogger("campaigns.analytics.hub")

_CHANNEL_PREFIX = f"{PREFIX}chan:"
_POLL = 0.2  # how long a new subscription may wait for the reader to pick it up


class RealtimeHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._versions: dict[str, int] = {}  # changes seen per watched campaign
        self._wanted = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._snapshots: dict[str, tuple[int, asyncio.Future]] = {}

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
                    self._versions.pop(campaign_id, None)
                    self._snapshots.pop(campaign_id, None)
            self._wanted.set()

    def version(self, campaign_id: str) -> int:
        """How many changes of the campaign this process has heard of."""
        return self._versions.get(campaign_id, 0)

    async def snapshot(self, campaign_id: str, load: Callable[[], Awaitable[Any]], *, seen: int) -> Any:
        """`load()`, shared between viewers: a read started after change `seen` is reused,
        an older one is not (it may predate the change the viewer was woken for)."""
        held = self._snapshots.get(campaign_id)
        if held is not None and held[0] >= seen and not (held[1].done() and held[1].exception()):
            return await asyncio.shield(held[1])
        future: asyncio.Future = asyncio.ensure_future(load())
        self._snapshots[campaign_id] = (self.version(campaign_id), future)
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
                # Changes may have been missed: wake every viewer to re-read now.
                for campaign_id, viewers in self._listeners.items():
                    self._versions[campaign_id] = self._versions.get(campaign_id, 0) + 1
                    for v in viewers:
                        v.set()
                await asyncio.sleep(1)

    def _dispatch(self, message: dict[str, Any]) -> None:
        name = message.get("channel")
        if isinstance(name, bytes):
            name = name.decode()
        if not name or not name.startswith(_CHANNEL_PREFIX):
            return
        campaign_id = name[len(_CHANNEL_PREFIX) :]
        viewers = self._listeners.get(campaign_id)
        if viewers:
            self._versions[campaign_id] = self._versions.get(campaign_id, 0) + 1
            for viewer in viewers:
                viewer.set()
