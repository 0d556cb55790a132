"""API keys' principals, kept in the process's memory tier.

Revoking a key drops its principal in every process before the revocation returns (the
`LocalCache` invalidation), so a revoked key is refused everywhere at once.

Keys looked up and found unknown are remembered too, for a while, in this process only: a
client repeating a bad key costs no further lookup. That needs no invalidation: a key is
random, so one that was unknown cannot become valid (a new key is a new value).
"""

from __future__ import annotations

from cachetools import TTLCache

from campaigns.auth.principals import Principal
from campaigns.local_cache import LocalCache


def _key(key_hash: bytes) -> str:
    return f"apikey:{key_hash.hex()}"


class PrincipalCache:
    def __init__(self, local: LocalCache, *, refused_ttl_s: float = 300.0, refused_max: int = 100_000) -> None:
        self.local = local
        self._refused: TTLCache[bytes, bool] = TTLCache(maxsize=refused_max, ttl=refused_ttl_s)

    def refused(self, key_hash: bytes) -> bool:
        """Whether this key was looked up and found unknown lately."""
        return key_hash in self._refused

    def refuse(self, key_hash: bytes) -> None:
        self._refused[key_hash] = True

    def get(self, key_hash: bytes) -> Principal | None:
        return self.local.get(_key(key_hash))

    @property
    def epoch(self) -> int:
        return self.local.epoch

    def keep(self, key_hash: bytes, principal: Principal, epoch: int) -> None:
        self.local.keep(_key(key_hash), principal, epoch)

    async def forget(self, key_hash: bytes) -> None:
        await self.local.invalidate([_key(key_hash)])
