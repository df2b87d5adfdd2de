"""A per-process cache of API-key lookups.

Authentication reads Redis twice per request (the secret's hash to the key's id, then the
key): at hundreds of requests a second that is most of an API process's Redis work. A key
found is kept ``auth.key_cache_s`` seconds, so a key revoked through another API process (or
the CLI) is refused by every process within that bound; revoked through this one, at once.
0 turns the cache off. A secret that matches no key is not kept: a key created a moment ago
works at once. Keys cannot be changed once created (revoking is the one change), so a kept
key is never stale in any other way.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from router.store import apikeys
from router.store.apikeys import ApiKey
from router.store.names import Names

MAX_KEYS = 10_000  # the oldest kept key makes room past this


class KeyCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._kept: dict[str, tuple[ApiKey, float]] = {}  # secret's hash -> key, kept until

    async def lookup(self, redis: Redis, names: Names, secret: str) -> ApiKey | None:
        """The live key ``secret`` belongs to, or None (unknown or revoked)."""
        if self.ttl_s <= 0:
            return await apikeys.lookup(redis, names, secret)
        digest = apikeys.hash_secret(secret)
        now = time.monotonic()
        kept = self._kept.get(digest)
        if kept is not None and kept[1] > now:
            return kept[0]
        key = await apikeys.lookup(redis, names, secret)
        if key is None:
            self._kept.pop(digest, None)
            return None
        if len(self._kept) >= MAX_KEYS:
            self._kept.pop(next(iter(self._kept)))
        self._kept[digest] = (key, now + self.ttl_s)
        return key

    def forget(self, key_id: str) -> None:
        """A key revoked through this process: refused here from now on."""
        for digest in [d for d, (key, _) in self._kept.items() if key.id == key_id]:
            del self._kept[digest]
