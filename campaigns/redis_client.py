"""Redis clients, built the same way in every process, and the circuit breaker they share.

Every client has short socket timeouts (`REDIS_CONNECT_TIMEOUT_S`, `REDIS_SOCKET_TIMEOUT_S`)
and retries a command once, at once, only when its pooled connection turned out to be dead;
never after a timeout, since a frozen Redis would then cost each call several timeouts.

One `Breaker` per process is shared by everything that uses the process's client: the
campaign cache, the rate limiters, the real-time counters and the SSE hub. The first call
that fails for want of Redis (refused, reset, timed out) opens it; while it is open every
call fails at once with `RedisUnavailable` (a `redis.exceptions.ConnectionError`, so the
callers' existing handling of an outage applies), and a probe pings Redis in the background
until it answers, which closes it. So an outage costs a request at most one socket timeout,
and usually nothing; callers then degrade (memory, Postgres, a local limit) instead of
waiting. Callers that must react to the transitions (drop what may have gone stale, catch
up what could not be written) register with `when_open` and `when_closed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import Counter, Gauge
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from campaigns.metrics import REGISTRY
from campaigns.settings import Settings

log = logging.getLogger("campaigns.redis")

BREAKER_OPEN = Gauge("redis_breaker_open", "1 while this process considers Redis unavailable", registry=REGISTRY)
BREAKER_OPENINGS = Counter(
    "redis_breaker_openings_total", "Times this process's Redis breaker opened", registry=REGISTRY
)


class RedisUnavailable(redis.exceptions.ConnectionError):
    """Refused without trying: the breaker is open."""


# What says "Redis is not there" rather than "this command was wrong".
OUTAGE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


class Breaker:
    """Open on the first outage-like failure; closed again by a background probe.

    The transitions call the registered callbacks (synchronous, cheap; start a task for
    anything that talks to Redis)."""

    def __init__(self, *, probe_every_s: float = 0.25, probe_timeout_s: float = 0.5) -> None:
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self._open = False
        self._probe: Callable[[], Awaitable[Any]] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._on_open: list[Callable[[], None]] = []
        self._on_close: list[Callable[[], None]] = []
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    def check(self) -> None:
        if self._open:
            raise RedisUnavailable("Redis is unavailable (circuit open)")

    def when_open(self, callback: Callable[[], None]) -> None:
        self._on_open.append(callback)

    def when_closed(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def attach(self, probe: Callable[[], Awaitable[Any]]) -> None:
        """How to ask Redis whether it is back (a PING that bypasses the breaker)."""
        if self._probe is None:
            self._probe = probe

    def failed(self, exc: BaseException) -> None:
        if self._open:
            return
        self._open = True
        self.opened_at = time.monotonic()
        self._closed.clear()
        BREAKER_OPEN.set(1)
        BREAKER_OPENINGS.inc()
        log.warning("Redis unavailable (%r): degrading until it answers again", exc)
        for callback in self._on_open:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one listener must not keep the others from hearing
                log.exception("a Redis outage listener failed")
        if self._probe is not None:
            try:
                self._prober = asyncio.get_running_loop().create_task(self._probe_until_back(), name="redis-probe")
            except RuntimeError:  # no loop (a synchronous caller): the next async failure starts it
                self._prober = None
        else:
            self.close()  # nothing to probe with: let the next call try

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._closed.set()
        BREAKER_OPEN.set(0)
        took = time.monotonic() - (self.opened_at or time.monotonic())
        log.warning("Redis is back after %.1f s", took)
        for callback in self._on_close:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("a Redis recovery listener failed")

    async def _probe_until_back(self) -> None:
        assert self._probe is not None
        while self._open:
            await asyncio.sleep(self.probe_every_s)
            try:
                async with asyncio.timeout(self.probe_timeout_s):
                    await self._probe()
            except Exception:  # noqa: BLE001 - still down
                continue
            self.close()

    async def stop(self) -> None:
        if self._prober is not None and not self._prober.done():
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)


class GuardedPipeline(Pipeline):
    breaker: Breaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.breaker.check()
        try:
            return await super().execute(raise_on_error)
        except OUTAGE as exc:
            self.breaker.failed(exc)
            raise


class GuardedRedis(aioredis.Redis):
    """A Redis client whose commands, pipelines and scripts go through `breaker`."""

    breaker: Breaker

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.breaker.check()
        try:
            return await super().execute_command(*args, **options)
        except OUTAGE as exc:
            self.breaker.failed(exc)
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> GuardedPipeline:
        pipe = GuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.breaker = self.breaker
        return pipe

    async def ping_unguarded(self) -> Any:
        return await super().execute_command("PING")

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.breaker.stop()
        await super().aclose(close_connection_pool)


def connect(settings: Settings, *, breaker: Breaker | None = None, decode_responses: bool = False) -> GuardedRedis:
    """A client of the settings' Redis, with the timeouts from Settings and `breaker` (a new
    one if not given: pass the process's own when it already has one)."""
    client: GuardedRedis = GuardedRedis.from_url(  # type: ignore[assignment]
        settings.redis_dsn,
        decode_responses=decode_responses,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        # Once, at once, and only for a dead pooled connection (not after a timeout).
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        health_check_interval=30,
    )
    client.breaker = breaker or Breaker(
        probe_every_s=settings.redis_probe_interval_s, probe_timeout_s=settings.redis_socket_timeout_s
    )
    client.breaker.attach(client.ping_unguarded)
    return client


def breaker_of(client: aioredis.Redis) -> Breaker:
    """The client's breaker; a client built elsewhere (a test's, a tool's) gets one of its own."""
    found = getattr(client, "breaker", None)
    if isinstance(found, Breaker):
        return found
    breaker = Breaker()
    client.breaker = breaker  # type: ignore[attr-defined]
    return breaker


# A script call: the script, the keys it touches (all named, one hash slot), its arguments.
ScriptCall = tuple[AsyncScript, list[Any], list[Any]]


PIPELINE_CHUNK = 1000  # commands sent at once: one client never holds Redis long


async def run_scripts(client: aioredis.Redis, calls: list[ScriptCall]) -> list[Any]:
    """Script calls pipelined by their hash: one round trip per `PIPELINE_CHUNK` calls
    (redis-py's own pipelining of scripts first asks Redis whether it knows them: a second
    one). Calls whose script Redis did not know (it restarted) are loaded and sent again."""
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        answers: list[Any] = []
        for start in range(0, len(todo), PIPELINE_CHUNK):
            async with client.pipeline(transaction=False) as pipe:
                for i in todo[start : start + PIPELINE_CHUNK]:
                    script, keys, args = calls[i]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                answers += await pipe.execute(raise_on_error=False)
        missing = []
        for i, answer in zip(todo, answers, strict=True):
            if isinstance(answer, redis.exceptions.NoScriptError) and attempt == 0:
                missing.append(i)
            elif isinstance(answer, Exception):
                raise answer
            else:
                results[i] = answer
        if not missing:
            break
        for script in {calls[i][0] for i in missing}:
            await client.script_load(script.script)
        todo = missing
    return results
