"""The API's request limits and the throttling of failed authentication.

- **Requests** a second per API key (`RATE_LIMIT_PER_SECOND`) and per organization, all its
  keys together (`RATE_LIMIT_ORG_PER_SECOND`), so minting keys does not multiply what an
  organization may send. Over either: 429 with `Retry-After`.
- **Failed authentication** a minute per client address and per key prefix (the first ten
  characters, as `GET /api/keys` shows them) (`AUTH_FAILURES_PER_MINUTE`). Past it, a request
  with a key this process does not know is refused (429) before its key is looked up, so a
  flood of bad keys cannot reach Postgres at full rate; keys already known keep working.
  A key that is malformed, or was looked up and found unknown lately (`AUTH_NEGATIVE_CACHE_S`),
  is refused without a lookup too.

Every count is shared by all replicas through Redis, and decided without a round trip
(`campaigns.limits`). **When Redis is down, these limits fail open per process, on purpose:**
each process keeps applying them to what it sees itself, so a client gets at most the limit
once per replica instead of either no limit at all or no service at all.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from campaigns.auth.cache import PrincipalCache
from campaigns.auth.principals import Principal
from campaigns.auth.service import KEY_PREFIX, authenticate, hash_key
from campaigns.errors import AppError, Unauthorized
from campaigns.limits import WindowLimiter
from campaigns.settings import Settings

PREFIX_LENGTH = len(KEY_PREFIX) + 6  # what the key list shows of a key


class RateLimited(AppError):
    status, code = 429, "rate_limited"


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds + 0.49)))}


def well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 20 <= len(key) <= 200 and key.isascii()


class RequestLimits:
    """The API process's limiters (built by the app; `start` their background sync)."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.requests = WindowLimiter(redis, name="req", window_s=1.0, sync_s=settings.rate_limit_sync_s)
        slow = max(settings.rate_limit_sync_s, 0.25)  # minute windows need no tighter sharing
        self.failures = WindowLimiter(redis, name="authfail", window_s=60.0, sync_s=slow)
        # Widget events per visitor and key (`widget.public.within_rate`).
        self.widget = WindowLimiter(redis, name="widget", window_s=60.0, sync_s=slow)

    async def start(self) -> None:
        for limiter in (self.requests, self.failures, self.widget):
            await limiter.start()

    async def stop(self) -> None:
        for limiter in (self.requests, self.failures, self.widget):
            await limiter.stop()

    def check(self, principal: Principal, settings: Settings) -> None:
        """Count the request against its key and its organization, or refuse it (429)."""
        checks = []
        if settings.rate_limit_per_second > 0:
            checks.append((f"key:{principal.key_id}", settings.rate_limit_per_second))
        if settings.rate_limit_org_per_second > 0:
            checks.append((f"org:{principal.organization_id}", settings.rate_limit_org_per_second))
        if not checks:
            return
        wait = self.requests.allow(checks)
        if wait is not None:
            raise RateLimited(
                f"more than {settings.rate_limit_per_second} requests a second with this API key, or "
                f"{settings.rate_limit_org_per_second} with all of the organization's keys; retry in a second",
                headers=_retry_after(wait),
            )

    async def authenticate(
        self, pool: asyncpg.Pool, principals: PrincipalCache, key: str, *, address: str, settings: Settings
    ) -> Principal:
        """The key's principal (from memory when this process knows it), throttling failures."""
        key_hash = hash_key(key)
        known = principals.get(key_hash)
        if known is not None:
            return known
        limit = settings.auth_failures_per_minute
        by_address, by_prefix = f"addr:{address}", f"prefix:{key[:PREFIX_LENGTH]}"
        if limit > 0:
            wait = self.failures.exceeded(by_address, limit) or self.failures.exceeded(by_prefix, limit)
            if wait is not None:
                raise RateLimited(
                    "too many failed authentications from this address or with this key prefix; retry later",
                    code="too_many_failed_authentications",
                    headers=_retry_after(wait),
                )
        principal = None
        if well_formed(key) and not principals.refused(key_hash):
            principal = await authenticate(pool, principals, key)
            if principal is None:
                principals.refuse(key_hash)
        if principal is None:
            self.failures.add(by_address)
            self.failures.add(by_prefix)
            raise Unauthorized("invalid or revoked API key")
        return principal
