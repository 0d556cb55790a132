"""Real-time counters in Redis: derived from Postgres, applied once per batch, rebuildable.

Every key of a campaign carries the campaign's hash tag, `qc:rt:{<campaign>}:…`, so all of
a campaign's keys live in one hash slot and every script call below touches one campaign
only, naming each key it touches: the layout runs on Redis Cluster as on a single Redis.

- `qc:rt:{c}:slots` — hash of 15-minute UTC slots (field: the slot's number), each value the
  slot's sums of `FIELDS`, comma-separated; slots older than 50 hours are trimmed. "Today"
  is summed at read time from the campaign's local midnight (one HMGET), so a timezone
  change never leaves stale counters behind.
- `qc:rt:{c}:calls` / `:ended` — sorted sets of call ids by start / end time; a call is
  active while started, not ended, and younger than the campaign's maximum call duration
  (a lost `call.completed` cannot keep a call "active" for ever).
- `qc:rt:{c}:updated` — when the counters last changed (ms since the epoch).
- `qc:rt:{c}:applied` — sorted set of the batches applied to this campaign in the last
  `MARKER_KEEP` seconds: applying a batch again is a no-op, so the ingest path and the
  refresher can both try, and a crash between them loses nothing. The refresher never
  relies on a marker older than that: a batch it finds still unapplied after so long has
  its campaigns' counters rebuilt from Postgres instead.
- `qc:rt:done:<batch>` — every campaign of the batch has it (kept as long as the markers),
  so the refresher checks a batch with one command, not one per campaign.
- `qc:rt:generation:3` — set by a rebuild; if Redis comes back empty (or holds an older
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
from redis.typing import EncodableT, FieldT

from campaigns.analytics.delta import Delta
from campaigns.domain import metrics, periods
from campaigns.redis_client import PIPELINE_CHUNK, ScriptCall, run_scripts

PREFIX = "qc:rt:"
GENERATION = PREFIX + "generation:3"  # :3 — hash-tagged, one hash of slots per campaign
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
# For the scripts: each field's position in a slot's value, and whether it is an integer.
_LUA_TABLES = (
    "local INDEX = {" + ", ".join(f"{name} = {i + 1}" for i, name in enumerate(FIELDS)) + "}\n"
    "local INTEGRAL = {" + ", ".join("true" if n in _INTEGRAL else "false" for n in FIELDS) + "}\n"
    f"local N = {len(FIELDS)}\n"
)


def channel(campaign_id: str) -> str:
    return f"{PREFIX}chan:{campaign_id}"


def tag(campaign_id: str) -> str:
    """The prefix of every key of the campaign, with its hash tag."""
    return f"{PREFIX}{{{campaign_id}}}"


def slots_key(campaign_id: str) -> str:
    return f"{tag(campaign_id)}:slots"


def pack(values: dict[str, Any]) -> str:
    """A slot's sums as the scripts keep them."""
    return ",".join(str(int(values.get(n) or 0)) if n in _INTEGRAL else repr(float(values.get(n) or 0)) for n in FIELDS)


def applied_key(campaign_id: str) -> str:
    return f"{tag(campaign_id)}:applied"


def done_key(batch_id: str) -> str:
    """Set once every campaign of the batch has it: the refresher's one check per batch."""
    return f"{PREFIX}done:{batch_id}"


# KEYS: applied, updated, calls, ended, slots.
# ARGV: payload, batch id, now (s), slot TTL, call memory (s), marker keep (s), channel.
_APPLY = (
    _LUA_TABLES
    + """
local now = tonumber(ARGV[3])
if redis.call('ZADD', KEYS[1], 'NX', now, ARGV[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[6]))
redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[6]))
local p = cjson.decode(ARGV[1])
-- b: each entry's slot; c: {metric: [value per entry]} (the variants of a slot add up).
local add = {}
for field, values in pairs(p.c) do
  local i = INDEX[field]
  for j, v in ipairs(values) do
    if v ~= 0 then
      local slot = string.format('%d', p.b[j])
      local row = add[slot]
      if not row then row = {}; add[slot] = row end
      row[i] = (row[i] or 0) + v
    end
  end
end
local touched = false
for slot, row in pairs(add) do
  local sums = {}
  local packed = redis.call('HGET', KEYS[5], slot)
  if packed then
    local k = 1
    for x in string.gmatch(packed, '[^,]+') do sums[k] = tonumber(x); k = k + 1 end
  end
  local out = {}
  for i = 1, N do
    local v = (sums[i] or 0) + (row[i] or 0)
    out[i] = INTEGRAL[i] and string.format('%d', v) or string.format('%.17g', v)
  end
  redis.call('HSET', KEYS[5], slot, table.concat(out, ','))
  touched = true
end
if touched then redis.call('EXPIRE', KEYS[5], ARGV[4]) end
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

# KEYS: calls, ended, slots. ARGV: forget calls before this (s), TTL, forget slots before this.
_TIDY = """
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
local oldest = tonumber(ARGV[3])
if oldest then
  local old = {}
  for _, slot in ipairs(redis.call('HKEYS', KEYS[3])) do
    if tonumber(slot) < oldest then old[#old + 1] = slot end
  end
  if #old > 0 then redis.call('HDEL', KEYS[3], unpack(old)) end
end
return 0
"""

# KEYS: slots, calls, updated. ARGV: first and last slot of the period, active since (s).
_READ = (
    _LUA_TABLES
    + """
local slots = {}
for b = tonumber(ARGV[1]), tonumber(ARGV[2]) do slots[#slots + 1] = string.format('%d', b) end
local sums = {}
for i = 1, N do sums[i] = 0 end
for _, packed in ipairs(redis.call('HMGET', KEYS[1], unpack(slots))) do
  if packed then
    local i = 1
    for x in string.gmatch(packed, '[^,]+') do sums[i] = sums[i] + tonumber(x); i = i + 1 end
  end
end
local out = {}
for i = 1, N do
  local v = sums[i]
  if v == math.floor(v) and math.abs(v) < 9007199254740992 then
    out[i] = string.format('%d', v)
  else
    out[i] = string.format('%.17g', v)
  end
end
out[N + 1] = tostring(redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf'))
out[N + 2] = redis.call('GET', KEYS[3]) or ''
return out
"""
)

Reading = tuple[dict[str, float], int, datetime | None]


def _split(delta: Delta, oldest: int) -> list[tuple[str, list[str], bytes]]:
    """The batch's part of each campaign: (campaign, the keys its script call names, payload).
    Slots too old for anyone's today are left out."""
    parts: dict[str, tuple[list[int], list[int]]] = {}  # campaign → its entries, and their slots
    for i, (campaign, bucket, _) in enumerate(delta.keys):
        part = parts.get(campaign)
        if part is None:
            part = parts[campaign] = ([], [])
        if bucket >= oldest:
            part[0].append(i)
            part[1].append(bucket)
    starts: dict[str, list[tuple[str, float]]] = {}
    ends: dict[str, list[tuple[str, float]]] = {}
    for campaign, call_id, ts in delta.call_starts:
        starts.setdefault(campaign, []).append((call_id, ts))
        parts.setdefault(campaign, ([], []))
    for campaign, call_id, ts in delta.call_ends:
        ends.setdefault(campaign, []).append((call_id, ts))
        parts.setdefault(campaign, ([], []))
    columns = [(name, values) for name, values in delta.columns.items() if name in _REALTIME]
    out = []
    for campaign, (entries, buckets) in parts.items():
        prefix = tag(campaign)
        keys = [f"{prefix}:applied", f"{prefix}:updated", f"{prefix}:calls", f"{prefix}:ended", f"{prefix}:slots"]
        payload = orjson.dumps(
            {
                "b": buckets,
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
        self._trimmed: dict[str, float] = {}  # when this process last trimmed a campaign's old slots

    # --- Writing ---------------------------------------------------------------------

    async def apply(self, delta: Delta) -> bool:
        """Apply a batch once. False if it had been applied already (to every campaign)."""
        return bool(await self.apply_many([delta]))

    async def apply_many(self, deltas: list[Delta]) -> int:
        """Apply batches, each once per campaign, and mark each one done; how many batches did
        anything (the others had been applied already)."""
        if not deltas:
            return 0
        now = time.time()
        oldest = int(now - BUCKET_TTL) // periods.BUCKET_SECONDS
        owners: list[int] = []
        calls: list[ScriptCall] = []
        for n, delta in enumerate(deltas):
            for campaign, keys, payload in _split(delta, oldest):
                args = [payload, delta.batch_id, repr(now), BUCKET_TTL, CALL_MEMORY, MARKER_KEEP, channel(campaign)]
                calls.append((self._apply, keys, args))
                owners.append(n)
        results = await self._run(calls)
        # Every campaign's part is in (run_scripts raised otherwise): the batch is done.
        async with self.redis.pipeline(transaction=False) as pipe:
            for delta in deltas:
                pipe.set(done_key(delta.batch_id), "1", ex=MARKER_KEEP)
            await pipe.execute()
        return len({n for n, done in zip(owners, results, strict=True) if done})

    async def apply_missing(self, deltas: list[Delta]) -> int:
        """`apply_many` for those of `deltas` not marked done (the refresher's catch-up): one
        check per batch, rather than one per batch and campaign."""
        if not deltas:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for delta in deltas:
                pipe.exists(done_key(delta.batch_id))
            done = await pipe.execute()
        return await self.apply_many([d for d, seen in zip(deltas, done, strict=True) if not seen])

    async def _run(self, calls: list[ScriptCall]) -> list[Any]:
        return await run_scripts(self.redis, calls)

    async def tidy(self, deltas: list[Delta]) -> None:
        """Forget calls older than any call can last and (hourly per campaign) slots older
        than anyone's today, and let idle campaigns' keys expire: once per campaign for
        several batches, off the ingest path."""
        campaigns = sorted({c for d in deltas for c in d.campaigns} | {x[0] for d in deltas for x in d.call_starts})
        if not campaigns:
            return
        now = time.time()
        cutoff = repr(now - CALL_MEMORY)
        oldest = int(now - BUCKET_TTL) // periods.BUCKET_SECONDS
        if len(self._trimmed) > 100_000:
            self._trimmed.clear()
        calls = []
        for c in campaigns:
            trim = now - self._trimmed.get(c, 0.0) > 3600
            if trim:
                self._trimmed[c] = now
            prefix = tag(c)
            keys = [f"{prefix}:calls", f"{prefix}:ended", f"{prefix}:slots"]
            calls.append((self._tidy, keys, [cutoff, BUCKET_TTL, oldest if trim else ""]))
        await self._run(calls)

    # --- Reading ---------------------------------------------------------------------

    @staticmethod
    def _read_call(campaign_id: str, start: datetime, end: datetime, since: float) -> tuple[list[Any], list[Any]]:
        prefix = tag(campaign_id)
        b0, b1 = periods.bucket_of(start), periods.bucket_of(end - timedelta(microseconds=1))
        return [f"{prefix}:slots", f"{prefix}:calls", f"{prefix}:updated"], [b0, b1, repr(since)]

    @staticmethod
    def _decode(raw: list[Any]) -> Reading:
        values = [x.decode() if isinstance(x, bytes) else x for x in raw]
        sums = {n: (int(v) if n in _INTEGRAL else float(v)) for n, v in zip(FIELDS, values, strict=False)}
        stamp = values[len(FIELDS) + 1]
        updated = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None
        return sums, int(values[len(FIELDS)]), updated

    async def read(self, campaign_id: str, *, start: datetime, end: datetime, active_since: float) -> Reading:
        """Sums over the slots of `[start, end)`, active calls, and when counters last changed."""
        keys, args = self._read_call(campaign_id, start, end, active_since)
        return self._decode(await self._read(keys=keys, args=args))

    async def read_many(self, requests: Iterable[tuple[str, datetime, datetime, float]]) -> list[Reading]:
        """`read` for several campaigns in one pipeline (campaign lists, the SSE hub)."""
        calls: list[ScriptCall] = [
            (self._read, *self._read_call(campaign_id, start, end, since))
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
                if name.endswith(":applied") or name.startswith((f"{PREFIX}generation", f"{PREFIX}done:")):
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
        slots: dict[str, dict[FieldT, EncodableT]] = {}
        for campaign, bucket, values in buckets:
            if any(values.get(n) for n in FIELDS):
                slots.setdefault(campaign, {})[str(bucket)] = pack(values)
        pipe = self.redis.pipeline(transaction=False)

        async def flush(every: int) -> None:
            if len(pipe) >= every:  # in chunks: one client never holds Redis long
                await pipe.execute()

        for campaign, mapping in slots.items():
            pipe.hset(slots_key(campaign), mapping=mapping)
            pipe.expire(slots_key(campaign), BUCKET_TTL)
            await flush(PIPELINE_CHUNK)
        for campaign, call_id, started, ended in calls:
            key = f"{tag(campaign)}:ended" if ended is not None else f"{tag(campaign)}:calls"
            score = ended if ended is not None else started
            if score is not None:
                pipe.zadd(key, {call_id: score})
                pipe.expire(key, BUCKET_TTL)
                await flush(PIPELINE_CHUNK)
        stamp = str(int(now * 1000))
        for campaign in campaign_ids:
            pipe.set(f"{tag(campaign)}:updated", stamp)
            pipe.publish(channel(campaign), stamp)
            await flush(PIPELINE_CHUNK)
        await flush(1)

    async def has_generation(self) -> bool:
        return bool(await self.redis.exists(GENERATION))

    async def set_generation(self) -> None:
        await self.redis.set(GENERATION, str(int(time.time() * 1000)))
