"""Real-time counters in Redis: derived from Postgres, applied once per batch, rebuildable.

Every key of a campaign carries the campaign's hash tag, `qc:rt:{<campaign>}:…`, so all of
a campaign's keys live in one hash slot and every script call below touches one campaign
only, naming each key it touches: the layout runs on Redis Cluster as on a single Redis.

- `qc:rt:{c}:<bucket>` — hash of the metric sums of one 15-minute UTC slot, kept 50 hours.
  "Today" is summed at read time from the campaign's local midnight, so a timezone change
  never leaves stale counters behind.
- `qc:rt:{c}:calls` / `:ended` — sorted sets of call ids by start / end time; a call is
  active while started, not ended, and younger than the campaign's maximum call duration
  (a lost `call.completed` cannot keep a call "active" for ever).
- `qc:rt:{c}:updated` — when the counters last changed (ms since the epoch).
- `qc:rt:{c}:applied` — sorted set of the batches applied to this campaign in the last
  `MARKER_KEEP` seconds: applying a batch again is a no-op, so the ingest path and the
  refresher can both try, and a crash between them loses nothing. The refresher never
  relies on a marker older than that: a batch it finds still unapplied after so long has
  its campaigns' counters rebuilt from Postgres instead.
- `qc:rt:generation:2` — set by a rebuild; if Redis comes back empty (or holds an older
  layout), its absence triggers one.

Changes are published on `qc:rt:chan:<campaign>` for the SSE streams. Applying a batch is
one script call per campaign it touches, all sent in one pipeline (one round trip); reading
a campaign is one call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, FieldT

from campaigns.analytics.delta import Delta
from campaigns.domain import metrics, periods

PREFIX = "qc:rt:"
GENERATION = PREFIX + "generation:2"  # :2 — the hash-tagged layout
BUCKET_TTL = int(timedelta(hours=50).total_seconds())  # the longest local day, plus margin
CALL_MEMORY = int(timedelta(hours=3).total_seconds())  # longer than any call may last
MARKER_KEEP = int(timedelta(minutes=10).total_seconds())  # how long "batch applied" is remembered
# A batch older than this whose Redis part is not known to be done is not applied by script
# (its marker may be gone): its campaigns' counters are rebuilt from Postgres instead.
MARKER_TRUST = MARKER_KEEP - 60

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


def tag(campaign_id: str) -> str:
    """The prefix of every key of the campaign, with its hash tag."""
    return f"{PREFIX}{{{campaign_id}}}"


def slot_key(campaign_id: str, bucket: int) -> str:
    return f"{tag(campaign_id)}:{bucket}"


def applied_key(campaign_id: str) -> str:
    return f"{tag(campaign_id)}:applied"


# KEYS: applied, updated, calls, ended, then the slot hashes the payload names by index.
# ARGV: payload, batch id, now (s), slot TTL, call memory (s), marker keep (s), channel.
_APPLY = (
    "local INTEGRAL = "
    + _LUA_INTEGRAL
    + """
local now = tonumber(ARGV[3])
if redis.call('ZADD', KEYS[1], 'NX', now, ARGV[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[6]))
redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[6]))
local p = cjson.decode(ARGV[1])
-- x: for each entry, the index in KEYS of its slot hash; c: {metric: [value per entry]}
-- (the variants of one slot add up in the same hash).
for field, values in pairs(p.c) do
  local integral = INTEGRAL[field]
  for j, v in ipairs(values) do
    if v ~= 0 then
      if integral then
        redis.call('HINCRBY', KEYS[p.x[j]], field, string.format('%d', v))
      else
        redis.call('HINCRBYFLOAT', KEYS[p.x[j]], field, string.format('%.17g', v))
      end
    end
  end
end
for i = 5, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
-- Calls (trimming old ones is the refresher's job, once per campaign and pass: `tidy`).
local oldest = now - tonumber(ARGV[5])
for _, x in ipairs(p.s) do
  if x[2] >= oldest and not redis.call('ZSCORE', KEYS[4], x[1]) then
    redis.call('ZADD', KEYS[3], x[2], x[1])
  end
end
for _, x in ipairs(p.e) do
  redis.call('ZREM', KEYS[3], x[1])
  if x[2] >= oldest then redis.call('ZADD', KEYS[4], x[2], x[1]) end
end
local stamp = tostring(math.floor(now * 1000))
redis.call('SET', KEYS[2], stamp)
redis.call('PUBLISH', ARGV[7], stamp)
return 1
"""
)

# KEYS: calls, ended. ARGV: forget calls before this (s), TTL of both sets.
_TIDY = """
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0
"""

# KEYS: calls, updated, then the slot hashes of the period. ARGV: active since (s), fields.
_READ = """
local n = #ARGV - 1
local sums = {}
for j = 1, n do sums[j] = 0 end
for k = 3, #KEYS do
  local vals = redis.call('HMGET', KEYS[k], unpack(ARGV, 2))
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
out[n + 1] = tostring(redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf'))
out[n + 2] = redis.call('GET', KEYS[2]) or ''
return out
"""

Reading = tuple[dict[str, float], int, datetime | None]


def _split(delta: Delta, oldest: int) -> list[tuple[str, list[str], bytes]]:
    """The batch's part of each campaign: (campaign, the keys its script call names, payload).
    Slots too old for anyone's today are left out."""
    parts: dict[str, tuple[dict[int, int], list[int], list[int]]] = {}  # slot → KEYS index; entries; their index
    for i, (campaign, bucket, _) in enumerate(delta.keys):
        part = parts.get(campaign)
        if part is None:
            part = parts[campaign] = ({}, [], [])
        if bucket < oldest:
            continue
        slots = part[0]
        position = slots.get(bucket)
        if position is None:
            position = slots[bucket] = len(slots) + 5  # after the four fixed keys (Lua counts from 1)
        part[1].append(i)
        part[2].append(position)
    starts: dict[str, list[tuple[str, float]]] = {}
    ends: dict[str, list[tuple[str, float]]] = {}
    for campaign, call_id, ts in delta.call_starts:
        starts.setdefault(campaign, []).append((call_id, ts))
        parts.setdefault(campaign, ({}, [], []))
    for campaign, call_id, ts in delta.call_ends:
        ends.setdefault(campaign, []).append((call_id, ts))
        parts.setdefault(campaign, ({}, [], []))
    columns = [(name, values) for name, values in delta.columns.items() if name in _REALTIME]
    out = []
    for campaign, (slots, entries, positions) in parts.items():
        prefix = tag(campaign)
        keys = [f"{prefix}:applied", f"{prefix}:updated", f"{prefix}:calls", f"{prefix}:ended"]
        keys += [f"{prefix}:{bucket}" for bucket in slots]
        payload = orjson.dumps(
            {
                "x": positions,
                "c": {name: [values[i] for i in entries] for name, values in columns},
                "s": starts.get(campaign, []),
                "e": ends.get(campaign, []),
            }
        )
        out.append((campaign, keys, payload))
    return out


class Realtime:
    """The real-time counters of every campaign, in one Redis (or a Redis Cluster)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY)
        self._read = redis.register_script(_READ)
        self._tidy = redis.register_script(_TIDY)
        self._period_keys: dict[tuple[str, int, int], list[str]] = {}  # the keys of a today, reused

    # --- Writing ---------------------------------------------------------------------

    async def apply(self, delta: Delta) -> bool:
        """Apply a batch once. False if it had been applied already (to every campaign)."""
        return bool(await self.apply_many([delta]))

    async def apply_many(self, deltas: list[Delta]) -> int:
        """Apply batches, each once per campaign, in one round trip; how many batches did
        anything (the others had been applied already)."""
        if not deltas:
            return 0
        now = time.time()
        oldest = int(now - BUCKET_TTL) // periods.BUCKET_SECONDS
        owners: list[int] = []
        calls: list[tuple[AsyncScript, list[Any], list[Any]]] = []
        for n, delta in enumerate(deltas):
            for campaign, keys, payload in _split(delta, oldest):
                args = [payload, delta.batch_id, repr(now), BUCKET_TTL, CALL_MEMORY, MARKER_KEEP, channel(campaign)]
                calls.append((self._apply, keys, args))
                owners.append(n)
        results = await self._run(calls)
        return len({n for n, done in zip(owners, results, strict=True) if done})

    async def _run(self, calls: list[tuple[AsyncScript, list[Any], list[Any]]]) -> list[Any]:
        """Script calls in one pipeline by their hash: one round trip (the client's own
        pipelining of scripts first asks Redis whether it knows them, a second one). Calls
        Redis did not know the script of (a restarted Redis) are loaded and sent again."""
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    script, keys, args = calls[i]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and attempt == 0:
                    missing.append(i)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    results[i] = answer
            if not missing:
                break
            for script in {calls[i][0] for i in missing}:
                await self.redis.script_load(script.script)
            todo = missing
        return results

    async def tidy(self, deltas: list[Delta]) -> None:
        """Forget calls older than any call can last, and let idle campaigns' call sets expire:
        once per campaign for several batches, off the ingest path."""
        campaigns = sorted({x[0] for d in deltas for x in (*d.call_starts, *d.call_ends)})
        if not campaigns:
            return
        cutoff = repr(time.time() - CALL_MEMORY)
        await self._run([(self._tidy, [f"{tag(c)}:calls", f"{tag(c)}:ended"], [cutoff, BUCKET_TTL]) for c in campaigns])

    # --- Reading ---------------------------------------------------------------------

    def _read_keys(self, campaign_id: str, start: datetime, end: datetime) -> list[str]:
        b0 = periods.bucket_of(start)
        b1 = periods.bucket_of(end - timedelta(microseconds=1))
        cached = self._period_keys.get((campaign_id, b0, b1))
        if cached is None:
            if len(self._period_keys) > 50_000:
                self._period_keys.clear()
            prefix = tag(campaign_id)
            cached = [f"{prefix}:calls", f"{prefix}:updated", *(f"{prefix}:{b}" for b in range(b0, b1 + 1))]
            self._period_keys[(campaign_id, b0, b1)] = cached
        return cached

    @staticmethod
    def _decode(raw: list[Any]) -> Reading:
        values = [x.decode() if isinstance(x, bytes) else x for x in raw]
        sums = {n: (int(v) if n in _INTEGRAL else float(v)) for n, v in zip(FIELDS, values, strict=False)}
        stamp = values[len(FIELDS) + 1]
        updated = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None
        return sums, int(values[len(FIELDS)]), updated

    async def read(self, campaign_id: str, *, start: datetime, end: datetime, active_since: float) -> Reading:
        """Sums over the slots of `[start, end)`, active calls, and when counters last changed."""
        keys = self._read_keys(campaign_id, start, end)
        return self._decode(await self._read(keys=keys, args=[repr(active_since), *FIELDS]))

    async def read_many(self, requests: Iterable[tuple[str, datetime, datetime, float]]) -> list[Reading]:
        """`read` for several campaigns in one pipeline (campaign lists, the SSE hub)."""
        calls: list[tuple[AsyncScript, list[Any], list[Any]]] = [
            (self._read, self._read_keys(campaign_id, start, end), [repr(since), *FIELDS])
            for campaign_id, start, end, since in requests
        ]
        if not calls:
            return []
        return [self._decode(raw) for raw in await self._run(calls)]

    # --- Rebuilding --------------------------------------------------------------------

    async def clear(self, campaign_ids: list[str] | None) -> None:
        """Drop the counters of these campaigns (all campaigns for None), not their markers.
        Key by key, so that it works on a Redis Cluster too."""
        patterns = [f"{tag(c)}:*" for c in campaign_ids] if campaign_ids is not None else [f"{PREFIX}*"]
        for pattern in patterns:
            batch: list[Any] = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                name = key.decode() if isinstance(key, bytes) else key
                if name.endswith(":applied") or name.startswith(f"{PREFIX}generation"):
                    continue
                batch.append(key)
                if len(batch) >= 1000:
                    await self._unlink(batch)
                    batch = []
            if batch:
                await self._unlink(batch)

    async def _unlink(self, keys: list[Any]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.unlink(key)
            await pipe.execute()

    async def load(
        self,
        buckets: list[tuple[str, int, dict[str, Any]]],
        calls: list[tuple[str, str, float | None, float | None]],
        campaign_ids: list[str],
    ) -> None:
        """Write rebuilt counters: slot sums, and calls (campaign, id, started, ended)."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for campaign, bucket, values in buckets:
                key = slot_key(campaign, bucket)
                mapping: dict[FieldT, EncodableT] = {
                    n: (str(int(values[n])) if n in _INTEGRAL else repr(float(values[n])))
                    for n in FIELDS
                    if values.get(n)
                }
                if mapping:
                    pipe.hset(key, mapping=mapping)
                    pipe.expire(key, BUCKET_TTL)
            for campaign, call_id, started, ended in calls:
                key = f"{tag(campaign)}:ended" if ended is not None else f"{tag(campaign)}:calls"
                score = ended if ended is not None else started
                if score is not None:
                    pipe.zadd(key, {call_id: score})
                    pipe.expire(key, BUCKET_TTL)
            stamp = str(int(now * 1000))
            for campaign in campaign_ids:
                pipe.set(f"{tag(campaign)}:updated", stamp)
                pipe.publish(channel(campaign), stamp)
            await pipe.execute()

    async def has_generation(self) -> bool:
        return bool(await self.redis.exists(GENERATION))

    async def set_generation(self) -> None:
        await self.redis.set(GENERATION, str(int(time.time() * 1000)))
