"""API keys' principals, kept in the process's memory tier.

Revoking a key drops its principal in every process before the revocation returns (the
`LocalCache` invalidation), so a revoked key is refused everywhere at once.
"""

from __future__ import annotations

from campaigns.auth.principals import Principal
from campaigns.local_cache import LocalCache


def _key(key_hash: bytes) -> str:
    return f"apikey:{key_hash.hex()}"


class PrincipalCache:
    def __init__(self, local: LocalCache) -> None:
        self.local = local

    def get(self, key_hash: bytes) -> Principal | None:
        return self.local.get(_key(key_hash))

    @property
    def epoch(self) -> int:
        return self.local.epoch

    def keep(self, key_hash: bytes, principal: Principal, epoch: int) -> None:
        self.local.keep(_key(key_hash), principal, epoch)

    async def forget(self, key_hash: bytes) -> None:
        await self.local.invalidate([_key(key_hash)])
