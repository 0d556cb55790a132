"""Real-time counters in Redis: derived from Postgres, applied once per batch, rebuildable.

Layout (all keys under `qc:rt:`):

- `qc:rt:{campaign}:{bucket}` — hash of the metric sums of one 15-minute UTC slot, kept
  50 hours. "Today" is summed at read time from the campaign's local midnight, so a
  timezone change never leaves stale counters behind.
- `qc:rt:{campaign}:calls` / `:ended` — sorted sets of call ids by start / end time; a call
  is active while started, not ended, and younger than the campaign's maximum call
  duration (a lost `call.completed` cannot keep a call "active" for ever).
- `qc:rt:{campaign}:updated` — when the counters last changed (ms since the epoch).
- `qc:rt:applied:{batch}` — the batch was applied: applying it again is a no-op, so the
  ingest path and the refresher can both try, and a crash between them loses nothing.
- `qc:rt:generation` — set by a rebuild; if Redis comes back empty, its absence triggers one.

Changes are published on `qc:rt:chan:{campaign}` for the SSE streams. Both scripts run
atomically inside Redis (one round trip per batch, one per read). They address keys they
build themselves, which a single Redis (or a replicated pair) allows; Redis Cluster would
need hash tags per campaign.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis

from campaigns.analytics.delta import Delta
from campaigns.domain import metrics, periods

PREFIX = "qc:rt:"
GENERATION = PREFIX + "generation"
BUCKET_TTL = int(timedelta(hours=50).total_seconds())  # the longest local day, plus margin
CALL_MEMORY = int(timedelta(hours=3).total_seconds())  # longer than any call may last
APPLIED_TTL = int(timedelta(days=3).total_seconds())  # outlives the slots it covers (BUCKET_TTL)

# What "today" needs (the real-time metrics and the campaign's today figures): nothing more
# is kept in Redis, since every field is one more command per slot and batch.
FIELDS = (
    "calls_completed",
    "calls_connected",
    "calls_failed",
    "leads",
    "conversions",
    "revenue_micros",
    "cost_micros",
    "wait_count",
    "wait_sum",
    "duration_sum",
)
_INTEGRAL = {m.name for m in metrics.METRICS if m.integral}
_REALTIME = set(FIELDS)
# Which fields the script adds with HINCRBY (integers) rather than HINCRBYFLOAT.
_LUA_INTEGRAL = "{" + ", ".join(f"{name} = {'true' if name in _INTEGRAL else 'false'}" for name in FIELDS) + "}"


def channel(campaign_id: str) -> str:
    return f"{PREFIX}chan:{campaign_id}"


def applied_key(batch_id: str) -> str:
    return f"{PREFIX}applied:{batch_id}"


_APPLY = (
    "local INTEGRAL = "
    + _LUA_INTEGRAL
    + """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local p = cjson.decode(ARGV[1])
local ttl = ARGV[2]
local now = tonumber(ARGV[4])
local oldest = tonumber(ARGV[6])
local pre = 'qc:rt:'
-- k: [[campaign, slot], ...]; c: {metric: [value per key]} (a key per slot and variant: the
-- variants of one slot add up in the same hash). Slots too old for anyone's today are skipped.
local names = {}
for i, k in ipairs(p.k) do
  if k[2] >= oldest then names[i] = pre .. k[1] .. ':' .. string.format('%d', k[2]) end
end
for field, values in pairs(p.c) do
  local integral = INTEGRAL[field]
  for i, v in ipairs(values) do
    local key = names[i]
    if v ~= 0 and key then
      if integral then
        redis.call('HINCRBY', key, field, string.format('%d', v))
      else
        redis.call('HINCRBYFLOAT', key, field, string.format('%.17g', v))
      end
    end
  end
end
local expired = {}
for _, key in pairs(names) do
  if not expired[key] then redis.call('EXPIRE', key, ttl); expired[key] = true end
end
-- Calls (trimming old ones is the refresher's job, once per campaign and pass: `tidy`).
for _, x in ipairs(p.s) do
  if x[3] >= now - ARGV[5] and not redis.call('ZSCORE', pre .. x[1] .. ':ended', x[2]) then
    redis.call('ZADD', pre .. x[1] .. ':calls', x[3], x[2])
  end
end
for _, x in ipairs(p.e) do
  redis.call('ZREM', pre .. x[1] .. ':calls', x[2])
  if x[3] >= now - ARGV[5] then redis.call('ZADD', pre .. x[1] .. ':ended', x[3], x[2]) end
end
local stamp = tostring(math.floor(now * 1000))
for _, c in ipairs(p.u) do
  redis.call('SET', pre .. c .. ':updated', stamp)
  redis.call('PUBLISH', pre .. 'chan:' .. c, stamp)
end
return 1
"""
)

_TIDY = """
for i = 3, #ARGV do
  for _, suffix in ipairs({':calls', ':ended'}) do
    local key = 'qc:rt:' .. ARGV[i] .. suffix
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
    redis.call('EXPIRE', key, ARGV[2])
  end
end
return 0
"""

_READ = """
local pre = 'qc:rt:' .. ARGV[1]
local b0, b1 = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #ARGV - 4
local sums = {}
for j = 1, n do sums[j] = 0 end
for b = b0, b1 do
  local vals = redis.call('HMGET', pre .. ':' .. b, unpack(ARGV, 5))
  for j = 1, n do
    if vals[j] then sums[j] = sums[j] + tonumber(vals[j]) end
  end
end
local out = {}
for j = 1, n do
  local v = sums[j]
  if v == math.floor(v) and math.abs(v) < 9007199254740992 then
    out[j] = string.format('%d', v)
  else
    out[j] = string.format('%.17g', v)
  end
end
out[n + 1] = tostring(redis.call('ZCOUNT', pre .. ':calls', ARGV[4], '+inf'))
out[n + 2] = redis.call('GET', pre .. ':updated') or ''
return out
"""


class Realtime:
    """The real-time counters of every campaign, in one Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY)
        self._read = redis.register_script(_READ)
        self._tidy = redis.register_script(_TIDY)

    # --- Writing ---------------------------------------------------------------------

    @staticmethod
    def payload(delta: Delta) -> bytes:
        """The Redis side of a delta: its keys and real-time columns as they are."""
        return orjson.dumps(
            {
                "k": [(c, slot) for c, slot, _ in delta.keys],
                "c": {name: values for name, values in delta.columns.items() if name in _REALTIME},
                "s": delta.call_starts,
                "e": delta.call_ends,
                "u": delta.campaigns,
            }
        )

    async def apply(self, delta: Delta) -> bool:
        """Apply a batch once. False if it had been applied already."""
        now = time.time()
        oldest = int(now - BUCKET_TTL) // periods.BUCKET_SECONDS
        done = await self._apply(
            keys=[applied_key(delta.batch_id)],
            args=[self.payload(delta), BUCKET_TTL, APPLIED_TTL, repr(now), CALL_MEMORY, oldest],
        )
        return bool(done)

    async def tidy(self, deltas: list[Delta]) -> None:
        """Forget calls older than any call can last, and let idle campaigns' call sets expire:
        once per campaign for several batches, off the ingest path."""
        campaigns = {x[0] for d in deltas for x in (*d.call_starts, *d.call_ends)}
        if not campaigns:
            return
        await self._tidy(keys=[], args=[repr(time.time() - CALL_MEMORY), BUCKET_TTL, *sorted(campaigns)])

    async def apply_missing(self, deltas: list[Delta]) -> int:
        """Apply those of `deltas` not applied yet (the refresher's catch-up); how many."""
        if not deltas:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in deltas:
                pipe.exists(applied_key(d.batch_id))
            seen = await pipe.execute()
        applied = 0
        for d, exists in zip(deltas, seen, strict=True):
            if not exists and await self.apply(d):
                applied += 1
        return applied

    # --- Reading ---------------------------------------------------------------------

    async def read(
        self, campaign_id: str, *, start: datetime, end: datetime, active_since: float
    ) -> tuple[dict[str, float], int, datetime | None]:
        """Sums over the slots of `[start, end)`, active calls, and when counters last changed."""
        b0 = periods.bucket_of(start)
        b1 = periods.bucket_of(end - timedelta(microseconds=1))
        raw = await self._read(keys=[], args=[campaign_id, b0, b1, repr(active_since), *FIELDS])
        values = [x.decode() if isinstance(x, bytes) else x for x in raw]
        sums = {name: (int(v) if name in _INTEGRAL else float(v)) for name, v in zip(FIELDS, values, strict=False)}
        active = int(values[len(FIELDS)])
        stamp = values[len(FIELDS) + 1]
        updated = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None
        return sums, active, updated

    async def read_many(
        self, requests: list[tuple[str, datetime, datetime, float]]
    ) -> list[tuple[dict[str, float], int, datetime | None]]:
        """`read` for several campaigns in one pipeline (campaign lists)."""
        if not requests:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for campaign_id, start, end, since in requests:
                b0, b1 = periods.bucket_of(start), periods.bucket_of(end - timedelta(microseconds=1))
                await self._read(keys=[], args=[campaign_id, b0, b1, repr(since), *FIELDS], client=pipe)
            results = await pipe.execute()
        out = []
        for raw in results:
            values = [x.decode() if isinstance(x, bytes) else x for x in raw]
            sums = {n: (int(v) if n in _INTEGRAL else float(v)) for n, v in zip(FIELDS, values, strict=False)}
            stamp = values[len(FIELDS) + 1]
            out.append(
                (sums, int(values[len(FIELDS)]), datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None)
            )
        return out

    # --- Rebuilding --------------------------------------------------------------------

    async def clear(self, campaign_ids: list[str] | None) -> None:
        """Drop the counters of these campaigns (all campaigns for None)."""
        patterns = [f"{PREFIX}{c}:*" for c in campaign_ids] if campaign_ids is not None else [f"{PREFIX}*"]
        for pattern in patterns:
            batch: list[Any] = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                name = key.decode() if isinstance(key, bytes) else key
                if name.startswith(f"{PREFIX}applied:") or name == GENERATION:
                    continue
                batch.append(key)
                if len(batch) >= 1000:
                    await self.redis.unlink(*batch)
                    batch = []
            if batch:
                await self.redis.unlink(*batch)

    async def load(
        self,
        buckets: list[tuple[str, int, dict[str, Any]]],
        calls: list[tuple[str, str, float, float | None]],
        campaign_ids: list[str],
    ) -> None:
        """Write rebuilt counters: slot sums, and calls (campaign, id, started, ended)."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for campaign, bucket, values in buckets:
                key = f"{PREFIX}{campaign}:{bucket}"
                mapping = {
                    n: (str(int(values[n])) if n in _INTEGRAL else repr(float(values[n])))
                    for n in FIELDS
                    if values.get(n)
                }
                if mapping:
                    pipe.hset(key, mapping=mapping)
                    pipe.expire(key, BUCKET_TTL)
            for campaign, call_id, started, ended in calls:
                key = f"{PREFIX}{campaign}:ended" if ended is not None else f"{PREFIX}{campaign}:calls"
                if ended is not None or started is not None:
                    pipe.zadd(key, {call_id: ended if ended is not None else started})
                    pipe.expire(key, BUCKET_TTL)
            stamp = str(int(now * 1000))
            for campaign in campaign_ids:
                pipe.set(f"{PREFIX}{campaign}:updated", stamp)
                pipe.publish(channel(campaign), stamp)
            await pipe.execute()

    async def has_generation(self) -> bool:
        return bool(await self.redis.exists(GENERATION))

    async def set_generation(self) -> None:
        await self.redis.set(GENERATION, str(int(time.time() * 1000)))
