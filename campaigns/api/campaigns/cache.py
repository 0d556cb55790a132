"""The two-tier campaign cache: this process's memory, then Redis, then Postgres.

Reads (`service.get_row`) ask the cache of the pool they read with; every write calls
`invalidate` once its transaction has committed, from whichever process made it (API or
worker). Invalidation is strict, not eventual:

- Redis: the entry is deleted and the campaign's generation number bumped in one
  transaction. A reader notes the generation before it reads Postgres and stores what it
  read only if the generation is unchanged (a Lua check-and-set), so a slow reader can
  never put back a row older than a write that finished before it stored.
- Memory: the writer publishes the ids on a Redis channel that every API process listens
  to, and waits until each listener has confirmed it dropped them (or a short timeout).
  A process whose subscription is down does not use its memory tier at all until it is
  subscribed again, since it could miss invalidations meanwhile.

So once a write has returned, no API process serves the old campaign. The TTLs only
bound how long a write made behind the platform's back (by hand in SQL) stays unseen.
Active campaigns are loaded on start. Hit rate and lookup latency are on /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from cachetools import TTLCache
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError

from campaigns.api.metrics import REGISTRY
from campaigns.settings import Settings

log = logging.getLogger("campaigns.cache")

CHANNEL = "campaigns:cache:invalidate"
_GEN_TTL_S = 86_400  # generations outlive any entry; they only need to outlast a read

Row = Mapping[str, Any]

LOOKUPS = Counter(
    "campaign_cache_lookups_total",
    "Campaign reads by where they were answered from (local, redis, postgres; missing: no such campaign)",
    ["source"],
    registry=REGISTRY,
)
LOOKUP_SECONDS = Histogram(
    "campaign_cache_lookup_seconds",
    "Time to answer a campaign read, by where it was answered from",
    ["source"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
INVALIDATIONS = Counter("campaign_cache_invalidations_total", "Campaigns invalidated after a write", registry=REGISTRY)
ACK_TIMEOUTS = Counter(
    "campaign_cache_invalidation_ack_timeouts_total",
    "Invalidations not confirmed by every API process in time",
    registry=REGISTRY,
)
ERRORS = Counter("campaign_cache_errors_total", "Redis errors met by the cache", ["operation"], registry=REGISTRY)
HIT_RATIO = Gauge(
    "campaign_cache_hit_ratio", "Share of campaign reads answered without Postgres since start", registry=REGISTRY
)
LOCAL_ENTRIES = Gauge("campaign_cache_local_entries", "Campaigns held in this process's memory", registry=REGISTRY)


_answers = {"local": 0, "redis": 0, "postgres": 0, "missing": 0}


def _hit_ratio() -> float:
    total = _answers["local"] + _answers["redis"] + _answers["postgres"]
    return (_answers["local"] + _answers["redis"]) / total if total else 0.0


HIT_RATIO.set_function(_hit_ratio)

# Store `value` under KEYS[1] only if the generation KEYS[2] is still ARGV[1].
_SET_IF_GENERATION = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


def _key(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def _gen_key(campaign_id: str) -> str:
    return f"campaign:gen:{campaign_id}"


# --- Rows as JSON, types kept ---------------------------------------------------------


def encode(row: Row) -> str:
    """A campaign row as JSON: [column, type, value] triples, so UUIDs, instants and
    decimals come back as what they were (jsonb columns stay plain JSON)."""
    out = []
    for column, value in row.items():
        if isinstance(value, UUID):
            out.append((column, "u", str(value)))
        elif isinstance(value, datetime):
            out.append((column, "t", value.isoformat()))
        elif isinstance(value, date):
            out.append((column, "d", value.isoformat()))
        elif isinstance(value, Decimal):
            out.append((column, "n", str(value)))
        else:
            out.append((column, "j", value))
    return json.dumps(out, separators=(",", ":"))


_DECODE: dict[str, Callable[[Any], Any]] = {
    "u": UUID,
    "t": datetime.fromisoformat,
    "d": date.fromisoformat,
    "n": Decimal,
    "j": lambda v: v,
}


def decode(text: str) -> dict[str, Any]:
    return {column: _DECODE[kind](value) for column, kind, value in json.loads(text)}


# --- The cache ------------------------------------------------------------------------


class CampaignCache:
    """One per process. API processes `start()` it (subscribe, warm); a worker only calls
    `invalidate`."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.enabled = settings.cache_enabled
        self.ttl_s = settings.cache_ttl_s
        self.ack_timeout_s = settings.cache_ack_timeout_s
        self.warm_limit = settings.cache_warm_limit
        self._local: TTLCache[str, dict[str, Any]] = TTLCache(
            maxsize=settings.cache_local_max_entries, ttl=settings.cache_local_ttl_s
        )
        self._local_on = False  # only while subscribed: see the module docstring
        self._epoch = 0  # bumped by every invalidation this process hears of
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._set_script = redis.register_script(_SET_IF_GENERATION)

    # --- Reading -------------------------------------------------------------------

    async def get(self, campaign_id: UUID, load: Callable[[], Awaitable[Row | None]]) -> Row | None:
        """The campaign's row from the nearest tier; `load` reads Postgres on a miss."""
        started = time.perf_counter()
        if not self.enabled:
            return await load()
        key = str(campaign_id)
        if self._local_on:
            row = self._local.get(key)
            if row is not None:
                return self._answered("local", started, row)
        epoch = self._epoch
        try:
            raw, generation = await self.redis.mget(_key(key), _gen_key(key))
            redis_up = True
        except RedisError:
            ERRORS.labels("get").inc()
            raw, generation, redis_up = None, None, False
        if raw is not None:
            row = decode(raw)
            self.keep(key, row, epoch)
            return self._answered("redis", started, row)

        loaded = await load()
        if loaded is None:
            return self._answered("missing", started, None)
        row = dict(loaded)
        if redis_up:
            try:
                await self._set_script(
                    keys=[_key(key), _gen_key(key)], args=[generation or "0", encode(row), self.ttl_s]
                )
            except RedisError:
                ERRORS.labels("set").inc()
        self.keep(key, row, epoch)
        return self._answered("postgres", started, row)

    def _answered(self, source: str, started: float, row: Row | None) -> Row | None:
        _answers[source] += 1
        LOOKUPS.labels(source).inc()
        LOOKUP_SECONDS.labels(source).observe(time.perf_counter() - started)
        return row

    def keep(self, key: str, row: Any, epoch: int) -> None:
        """Keep `row`, read when `epoch` was current, unless an invalidation came since."""
        if self._local_on and epoch == self._epoch:
            self._local[key] = row

    # --- Other small entries (API keys' principals) ---------------------------------
    # They share the memory tier and its invalidation: dropped in every process before
    # the write that invalidates them returns, and not served while unsubscribed.

    def peek(self, key: str) -> Any | None:
        return self._local.get(key) if self._local_on else None

    @property
    def epoch(self) -> int:
        return self._epoch

    # --- Writing -------------------------------------------------------------------

    async def invalidate(self, *campaign_ids: UUID | str) -> None:
        """Forget these campaigns everywhere; returns once every API process has (or the
        acknowledgement timeout passed). Call it after the write's transaction committed."""
        if not campaign_ids:
            return
        ids = [str(i) for i in campaign_ids]
        INVALIDATIONS.inc(len(ids))
        self._drop(ids)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for i in ids:
                    pipe.incr(_gen_key(i))
                    pipe.expire(_gen_key(i), _GEN_TTL_S)
                    pipe.delete(_key(i))
                await pipe.execute()
            nonce = uuid.uuid4().hex
            receivers = await self.redis.publish(CHANNEL, json.dumps({"ids": ids, "ack": nonce}))
            await self._await_acks(nonce, receivers)
        except RedisError as exc:
            # Readers that cannot reach Redis either do not use the memory tier (their
            # subscription is down) or cannot read the Redis tier; the TTL bounds the rest.
            ERRORS.labels("invalidate").inc()
            log.error("could not invalidate campaigns %s in Redis: %r", ids, exc)

    async def _await_acks(self, nonce: str, receivers: int) -> None:
        ack_key = f"campaign:cache:ack:{nonce}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        confirmed = 0
        try:
            while confirmed < receivers:
                remaining = deadline - loop.time()
                if remaining <= 0 or await self.redis.blpop([ack_key], timeout=max(remaining, 0.01)) is None:
                    ACK_TIMEOUTS.inc()
                    log.warning("only %d of %d API processes confirmed a cache invalidation", confirmed, receivers)
                    return
                confirmed += 1
        finally:
            if confirmed < receivers:
                await self.redis.delete(ack_key)

    def _drop(self, ids: Iterable[str]) -> None:
        self._epoch += 1
        for i in ids:
            self._local.pop(i, None)

    # --- Listening -----------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool | None = None) -> None:
        """Listen for invalidations; then, in the background, load the active campaigns."""
        if not self.enabled:
            return
        LOCAL_ENTRIES.set_function(lambda: len(self._local))
        self._listener = asyncio.create_task(self._listen(), name="campaign-cache-listener")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)
        except TimeoutError:
            log.warning("campaign cache: not subscribed yet; serving from Redis and Postgres meanwhile")
        if pool is not None:
            self._warmer = asyncio.create_task(self._warm_safely(pool), name="campaign-cache-warm")

    async def stop(self) -> None:
        for task in (self._listener, getattr(self, "_warmer", None)):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                last_heard = time.monotonic()
                next_ping = last_heard + 5
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    now = time.monotonic()
                    if message is not None:
                        last_heard = now
                        if message["type"] == "subscribe":
                            self._local_on = True
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
                log.warning("campaign cache: invalidation channel lost (%r); memory tier off until back", exc)
            except Exception:
                log.exception("campaign cache: listener failed; memory tier off until it recovers")
            finally:
                self._local_on = False
                self._subscribed.clear()
                self._drop(list(self._local.keys()))
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001 - the connection is already gone
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _on_invalidation(self, data: str) -> None:
        try:
            payload = json.loads(data)
            ids, nonce = payload["ids"], payload["ack"]
        except (ValueError, KeyError, TypeError):
            log.warning("campaign cache: ignoring a malformed invalidation %r", data[:200])
            return
        self._drop(ids)
        ack_key = f"campaign:cache:ack:{nonce}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ack_key, "1")
            pipe.expire(ack_key, 30)
            await pipe.execute()

    # --- Warming -------------------------------------------------------------------

    async def _warm_safely(self, pool: asyncpg.Pool) -> None:
        try:
            count = await self.warm(pool)
            log.info("campaign cache: loaded %d active campaigns", count)
        except (RedisError, OSError, asyncpg.PostgresError) as exc:
            log.warning("campaign cache: warming failed (%r); entries will fill on first read", exc)

    async def warm(self, pool: asyncpg.Pool) -> int:
        """Load the active campaigns into both tiers, generation-checked like any read."""
        from campaigns.api.campaigns import repository as repo

        ids = await repo.active_ids(pool, limit=self.warm_limit)
        if not ids:
            return 0
        epoch = self._epoch
        generations = await self.redis.mget([_gen_key(str(i)) for i in ids])
        rows = await repo.get_many(pool, ids)
        by_id = {row["id"]: dict(row) for row in rows}
        async with self.redis.pipeline(transaction=False) as pipe:
            for campaign_id, generation in zip(ids, generations, strict=True):
                row = by_id.get(campaign_id)
                if row is None:
                    continue
                key = str(campaign_id)
                await self._set_script(
                    keys=[_key(key), _gen_key(key)], args=[generation or "0", encode(row), self.ttl_s], client=pipe
                )
                self.keep(key, row, epoch)
            await pipe.execute()
        return len(by_id)


# The cache of each pool an API process reads campaigns with. Reads on any other pool or
# on a connection inside a transaction (which must see its own writes) go to Postgres.
_BY_POOL: dict[int, CampaignCache] = {}


def attach(pool: asyncpg.Pool, cache: CampaignCache) -> None:
    _BY_POOL[id(pool)] = cache


def detach(pool: asyncpg.Pool) -> None:
    _BY_POOL.pop(id(pool), None)


def for_pool(pool: asyncpg.Pool | asyncpg.Connection) -> CampaignCache | None:
    return _BY_POOL.get(id(pool))
