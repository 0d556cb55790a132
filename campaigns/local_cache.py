"""This process's memory tier, kept coherent with every other process's.

An entry is kept in memory only while this process is subscribed to the invalidation
channel, since it could miss invalidations otherwise. A writer (API or worker) calls
`invalidate` once its transaction has committed: the keys are dropped here, published on
a Redis channel that every process listening drops them on, and the call returns once each
listener has confirmed (or a short timeout passed). So once a write has returned, no
process serves the old entry from memory.

Each process has one, built by its composition root and shared by the caches above it
(campaign rows, API keys' principals), which name their keys with their own prefix.

While Redis is unavailable (the process's breaker is open) invalidations can be neither
sent nor heard, so the memory tier is emptied and serves nothing; it comes back once Redis
answers and the subscription is confirmed alive. Invalidations that could not be sent are
kept and sent again then, so an entry another process loaded before the outage is dropped
there too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from cachetools import TTLCache
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from campaigns.metrics import REGISTRY
from campaigns.redis_client import RedisUnavailable, breaker_of
from campaigns.settings import Settings

log = logging.getLogger("campaigns.cache")

CHANNEL = "campaigns:cache:invalidate"

# Named as when the campaign cache was the only one: dashboards know them by these names.
ACK_TIMEOUTS = Counter(
    "campaign_cache_invalidation_ack_timeouts_total",
    "Invalidations not confirmed by every listening process in time",
    registry=REGISTRY,
)
ERRORS = Counter("campaign_cache_errors_total", "Redis errors met by the caches", ["operation"], registry=REGISTRY)
LOCAL_ENTRIES = Gauge("campaign_cache_local_entries", "Entries held in this process's memory", registry=REGISTRY)


class LocalCache:
    """`start()` subscribes (API processes); a process that never starts it (a worker, the
    CLI) keeps nothing in memory and only publishes invalidations."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.enabled = settings.cache_enabled
        self.ack_timeout_s = settings.cache_ack_timeout_s
        self._entries: TTLCache[str, Any] = TTLCache(
            maxsize=settings.cache_local_max_entries, ttl=settings.cache_local_ttl_s
        )
        self._on = False  # only while subscribed (and confirmed so since Redis last failed)
        self._epoch = 0  # bumped by every invalidation this process hears of
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self.breaker = breaker_of(redis)
        self.breaker.when_open(self._outage)
        self.breaker.when_closed(self._recovered)
        self._confirm = False  # the listener must check its subscription still works
        self._pending: set[str] = set()  # invalidations not sent for want of Redis
        self._resend: asyncio.Task[None] | None = None
        self._observers: list[Callable[[list[str] | None], None]] = []

    def observe(self, callback: Callable[[list[str] | None], None]) -> None:
        """Call `callback(keys)` with the keys of every invalidation this process hears of, and
        `callback(None)` when it stops listening (invalidations may be missed until it is back)."""
        self._observers.append(callback)

    def _tell(self, keys: list[str] | None) -> None:
        for callback in self._observers:
            try:
                callback(keys)
            except Exception:  # noqa: BLE001 - an observer must not break invalidation
                log.exception("cache: an invalidation observer failed")

    # --- Reading ---------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """Whether the memory tier is on (it is only while invalidations can be heard)."""
        return self._on

    def get(self, key: str) -> Any | None:
        return self._entries.get(key) if self._on and not self.breaker.is_open else None

    @property
    def epoch(self) -> int:
        """Note it before reading what you will `keep`."""
        return self._epoch

    def keep(self, key: str, value: Any, epoch: int) -> None:
        """Keep `value`, read when `epoch` was current, unless an invalidation came since."""
        if self._on and epoch == self._epoch and not self.breaker.is_open:
            self._entries[key] = value

    # --- Writing ---------------------------------------------------------------------

    async def invalidate(self, keys: list[str]) -> None:
        """Drop these keys here and in every listening process; returns once each has."""
        if not keys:
            return
        self._drop(keys)
        self._tell(keys)
        try:
            nonce = uuid.uuid4().hex
            receivers = await self.redis.publish(CHANNEL, json.dumps({"ids": keys, "ack": nonce}))
            await self._await_acks(nonce, receivers)
        except RedisError as exc:
            # A listener that cannot reach Redis keeps nothing meanwhile; one that could (a
            # brief outage of this process's connection only) hears it when it is sent again.
            ERRORS.labels("invalidate").inc()
            self._pending.update(keys)
            log.error("could not publish the invalidation of %s (%r); will send it again", keys[:10], exc)

    async def _await_acks(self, nonce: str, receivers: int) -> None:
        ack_key = f"campaign:cache:ack:{nonce}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        confirmed = 0
        try:
            while confirmed < receivers:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    ACK_TIMEOUTS.inc()
                    log.warning("only %d of %d processes confirmed a cache invalidation", confirmed, receivers)
                    return
                # Short blocking reads: each must stay well within the socket timeout.
                if await self.redis.blpop([ack_key], timeout=min(max(remaining, 0.01), 0.1)) is not None:
                    confirmed += 1
        finally:
            if confirmed < receivers:
                await self.redis.delete(ack_key)

    def _drop(self, keys: Iterable[str]) -> None:
        self._epoch += 1
        for key in keys:
            self._entries.pop(key, None)

    # --- Redis outages -----------------------------------------------------------------

    def _outage(self) -> None:
        """Invalidations may go unheard from now on: forget everything, serve nothing."""
        if self._on:
            self._tell(None)
        self._on = False
        self._drop(list(self._entries.keys()))

    def _recovered(self) -> None:
        self._confirm = True
        if self._pending and (self._resend is None or self._resend.done()):
            self._resend = asyncio.get_running_loop().create_task(self._send_pending(), name="cache-resend")

    async def _send_pending(self) -> None:
        keys, self._pending = sorted(self._pending), set()
        for start in range(0, len(keys), 1000):
            await self.invalidate(keys[start : start + 1000])

    # --- Listening -------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for invalidations (the memory tier is on once subscribed)."""
        if not self.enabled:
            return
        LOCAL_ENTRIES.set_function(lambda: len(self._entries))
        self._listener = asyncio.create_task(self._listen(), name="cache-invalidation-listener")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)
        except TimeoutError:
            log.warning("cache: not subscribed yet; serving from Redis and Postgres meanwhile")

    async def stop(self) -> None:
        for task in (self._listener, self._resend):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            await self.breaker.wait_closed()
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self._confirm = False
                last_heard = time.monotonic()
                next_ping = last_heard + 5
                while True:
                    if self._confirm and not self.breaker.is_open:
                        # Redis failed and came back: the subscription may have died with it.
                        # Serve from memory again only once it answers.
                        self._confirm = False
                        await pubsub.ping()
                    message = await pubsub.get_message(timeout=0.25)
                    now = time.monotonic()
                    if message is not None:
                        last_heard = now
                        if message["type"] in ("subscribe", "pong") and not self.breaker.is_open:
                            self._on = True
                            self._subscribed.set()
                            backoff = 0.1
                        elif message["type"] == "message":
                            await self._on_invalidation(message["data"])
                    if now >= next_ping:
                        await pubsub.ping()
                        next_ping = now + 5
                    if now - last_heard > 15:
                        raise ConnectionError("no answer on the invalidation channel for 15 s")
            except asyncio.CancelledError:
                raise
            except (RedisError, ConnectionError, OSError) as exc:
                log.warning("cache: invalidation channel lost (%r); memory tier off until back", exc)
                if not isinstance(exc, RedisUnavailable):
                    self.breaker.failed(exc)
            except Exception:
                log.exception("cache: listener failed; memory tier off until it recovers")
            finally:
                if self._on:
                    self._tell(None)
                self._on = False
                self._subscribed.clear()
                self._drop(list(self._entries.keys()))
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001 - the connection is already gone
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _on_invalidation(self, data: str | bytes) -> None:
        try:
            payload = json.loads(data)
            keys, nonce = payload["ids"], payload["ack"]
        except (ValueError, KeyError, TypeError):
            log.warning("cache: ignoring a malformed invalidation %r", data[:200])
            return
        self._drop(keys)
        self._tell(keys)
        ack_key = f"campaign:cache:ack:{nonce}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ack_key, "1")
            pipe.expire(ack_key, 30)
            await pipe.execute()
