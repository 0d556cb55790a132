"""The two-tier campaign cache: this process's memory, then Redis, then Postgres.

Reads (`service.get_row`) go through it; every write calls `invalidate` once its
transaction has committed, from whichever process made it (API or worker). Invalidation
is strict, not eventual:

- Redis: the entry is deleted and the campaign's generation number bumped atomically (one
  small script per campaign; both keys carry the campaign's hash tag). A reader notes the
  generation before it reads Postgres and stores what it read only if the generation is
  unchanged (a Lua check-and-set), so a slow reader can never put back a row older than a
  write that finished before it stored.
- Memory: the process's `LocalCache` drops the ids in every process before the write
  returns (see `campaigns.local_cache`).

So once a write has returned, no API process serves the old campaign. The TTLs only
bound how long a write made behind the platform's back (by hand in SQL) stays unseen.
Active campaigns are loaded on start. Hit rate and lookup latency are on /metrics.

While Redis is unavailable, reads skip both tiers and go to Postgres (the memory tier
cannot hear invalidations then), and a write's invalidation is kept and done again once
Redis is back, so no tier serves what changed during the outage.

Beside each row, the memory tier may keep things derived from it (`derived`, `keep_derived`:
a rendered response, its trends), dropped with the row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError

from campaigns.campaigns import repository as repo
from campaigns.campaigns.repository import Row
from campaigns.local_cache import ERRORS, LocalCache
from campaigns.metrics import REGISTRY
from campaigns.redis_client import run_scripts
from campaigns.settings import Settings

log = logging.getLogger("campaigns.cache")

_GEN_TTL_S = 86_400  # generations outlive any entry; they only need to outlast a read

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
HIT_RATIO = Gauge(
    "campaign_cache_hit_ratio", "Share of campaign reads answered without Postgres since start", registry=REGISTRY
)


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


# Hash-tagged by campaign: a campaign's entry and generation share a slot (Redis Cluster).
def _key(campaign_id: str) -> str:
    return f"campaign:{{{campaign_id}}}"


def _gen_key(campaign_id: str) -> str:
    return f"campaign:gen:{{{campaign_id}}}"


# Forget an entry and bump its generation, atomically (one campaign, one slot).
_INVALIDATE = """
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 0
"""


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


def decode(text: str | bytes) -> dict[str, Any]:
    return {column: _DECODE[kind](value) for column, kind, value in json.loads(text)}


# --- The cache ------------------------------------------------------------------------


def _local_key(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def _derived_key(campaign_id: str) -> str:
    return f"campaign-derived:{campaign_id}"


class CampaignCache:
    """One per process, on the process's `LocalCache`. API processes `start()` it (warm);
    a worker only calls `invalidate`."""

    def __init__(self, local: LocalCache, redis: aioredis.Redis, settings: Settings) -> None:
        self.local = local
        self.redis = redis
        self.enabled = settings.cache_enabled
        self.ttl_s = settings.cache_ttl_s
        self.warm_limit = settings.cache_warm_limit
        self._warmer: asyncio.Task[None] | None = None
        self._set_script = redis.register_script(_SET_IF_GENERATION)
        self._invalidate_script = redis.register_script(_INVALIDATE)
        self._pending: set[str] = set()  # invalidations Redis could not take yet
        self._resend: asyncio.Task[None] | None = None
        local.breaker.when_closed(self._recovered)

    # --- Reading -------------------------------------------------------------------

    async def get(self, campaign_id: UUID, load: Callable[[], Awaitable[Row | None]]) -> Row | None:
        """The campaign's row from the nearest tier; `load` reads Postgres on a miss."""
        started = time.perf_counter()
        if not self.enabled:
            return await load()
        key = str(campaign_id)
        row = self.local.get(_local_key(key))
        if row is not None:
            return self._answered("local", started, row)
        epoch = self.local.epoch
        try:
            raw, generation = await self.redis.mget(_key(key), _gen_key(key))
            redis_up = True
        except RedisError:
            ERRORS.labels("get").inc()
            raw, generation, redis_up = None, None, False
        if raw is not None:
            row = decode(raw)
            self.local.keep(_local_key(key), row, epoch)
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
        self.local.keep(_local_key(key), row, epoch)
        return self._answered("postgres", started, row)

    def derived(self, campaign_id: UUID, row: Row, tag: object) -> Any | None:
        """What was kept with `keep_derived` for this very row (the same object the memory
        tier handed out) and `tag`, if still there."""
        held = self.local.get(_derived_key(str(campaign_id)))
        if held is not None and held[0] is row and held[1] == tag:
            return held[2]
        return None

    @property
    def epoch(self) -> int:
        """Note it before computing what you will `keep_derived`."""
        return self.local.epoch

    def keep_derived(self, campaign_id: UUID, row: Row, tag: object, value: Any, epoch: int) -> None:
        self.local.keep(_derived_key(str(campaign_id)), (row, tag, value), epoch)

    def _answered(self, source: str, started: float, row: Row | None) -> Row | None:
        _answers[source] += 1
        LOOKUPS.labels(source).inc()
        LOOKUP_SECONDS.labels(source).observe(time.perf_counter() - started)
        return row

    # --- Writing -------------------------------------------------------------------

    async def invalidate(self, *campaign_ids: UUID | str) -> None:
        """Forget these campaigns everywhere; returns once every API process has (or the
        acknowledgement timeout passed). Call it after the write's transaction committed."""
        if not campaign_ids:
            return
        ids = [str(i) for i in campaign_ids]
        INVALIDATIONS.inc(len(ids))
        try:
            await run_scripts(
                self.redis, [(self._invalidate_script, [_gen_key(i), _key(i)], [_GEN_TTL_S]) for i in ids]
            )
        except RedisError as exc:
            # Readers that cannot reach Redis cannot read its tier either; it is done again
            # once Redis answers (if this process lives that long, else the TTL bounds it).
            ERRORS.labels("invalidate").inc()
            self._pending.update(ids)
            log.error("could not invalidate campaigns %s in Redis (%r); will again", ids[:10], exc)
        await self.local.invalidate([k for i in ids for k in (_local_key(i), _derived_key(i))])

    def _recovered(self) -> None:
        if self._pending and (self._resend is None or self._resend.done()):
            self._resend = asyncio.get_running_loop().create_task(self._invalidate_pending(), name="cache-reinvalidate")

    async def _invalidate_pending(self) -> None:
        ids, self._pending = sorted(self._pending), set()
        for start in range(0, len(ids), 1000):
            await self.invalidate(*ids[start : start + 1000])

    # --- Warming -------------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool) -> None:
        """In the background, load the active campaigns."""
        if self.enabled:
            self._warmer = asyncio.create_task(self._warm_safely(pool), name="campaign-cache-warm")

    async def stop(self) -> None:
        for task in (self._warmer, self._resend):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass

    async def _warm_safely(self, pool: asyncpg.Pool) -> None:
        try:
            count = await self.warm(pool)
            log.info("campaign cache: loaded %d active campaigns", count)
        except (RedisError, OSError, asyncpg.PostgresError) as exc:
            log.warning("campaign cache: warming failed (%r); entries will fill on first read", exc)

    async def warm(self, pool: asyncpg.Pool) -> int:
        """Load the active campaigns into both tiers, generation-checked like any read."""
        ids = await repo.active_ids(pool, limit=self.warm_limit)
        if not ids:
            return 0
        epoch = self.local.epoch
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.get(_gen_key(str(i)))  # one key per command: no two slots in one call
            generations = await pipe.execute()
        rows = await repo.get_many(pool, ids)
        by_id = {row["id"]: dict(row) for row in rows}
        calls = []
        for campaign_id, generation in zip(ids, generations, strict=True):
            row = by_id.get(campaign_id)
            if row is None:
                continue
            key = str(campaign_id)
            calls.append((self._set_script, [_key(key), _gen_key(key)], [generation or "0", encode(row), self.ttl_s]))
            self.local.keep(_local_key(key), row, epoch)
        await run_scripts(self.redis, calls)
        return len(by_id)
