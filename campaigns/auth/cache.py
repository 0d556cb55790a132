"""API keys' principals, kept in the process's memory tier, and who is listening for a
key's revocation.

Revoking a key drops its principal in every process before the revocation returns (the
`LocalCache` invalidation), so a revoked key is refused everywhere at once. Long requests
(an SSE stream, an export) `watch` their key: the same invalidation wakes them, without
any query per request while nothing happens.

Keys looked up and found unknown are remembered too, for a while, in this process only: a
client repeating a bad key costs no further lookup. That needs no invalidation: a key is
random, so one that was unknown cannot become valid (a new key is a new value).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from cachetools import TTLCache

from campaigns.auth.principals import Principal
from campaigns.local_cache import LocalCache

_PREFIX = "apikey:"
# A watch that begins just after its key's invalidation was heard still sees it.
_REMEMBER_S = 600


def _key(key_hash: bytes) -> str:
    return f"{_PREFIX}{key_hash.hex()}"


class PrincipalCache:
    def __init__(self, local: LocalCache, *, refused_ttl_s: float = 300.0, refused_max: int = 100_000) -> None:
        self.local = local
        self._watchers: dict[bytes, set[asyncio.Event]] = {}
        self._invalidated: TTLCache[bytes, bool] = TTLCache(maxsize=10_000, ttl=_REMEMBER_S)
        self._refused: TTLCache[bytes, bool] = TTLCache(maxsize=refused_max, ttl=refused_ttl_s)
        local.observe(self._heard)

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

    @contextmanager
    def watch(self, key_hash: bytes) -> Iterator[asyncio.Event]:
        """An event set when the key's principal is invalidated in any process (it may have
        been revoked: check), or when this process may have missed that (it lost Redis)."""
        woken = asyncio.Event()
        if key_hash in self._invalidated:
            woken.set()
        self._watchers.setdefault(key_hash, set()).add(woken)
        try:
            yield woken
        finally:
            watchers = self._watchers.get(key_hash)
            if watchers is not None:
                watchers.discard(woken)
                if not watchers:
                    del self._watchers[key_hash]

    def _heard(self, keys: list[str] | None) -> None:
        if keys is None:  # invalidations may be missed: every watcher checks for itself
            for watchers in self._watchers.values():
                for woken in watchers:
                    woken.set()
            return
        for key in keys:
            if not key.startswith(_PREFIX):
                continue
            try:
                key_hash = bytes.fromhex(key[len(_PREFIX) :])
            except ValueError:
                continue
            self._invalidated[key_hash] = True
            for woken in self._watchers.get(key_hash, ()):
                woken.set()
