"""Requests and tokens per minute per key, shared by every API process through Redis, with
the ``limits`` library's moving windows (no window arithmetic of our own).

The run layer's caller (:class:`router.run.caller.Caller`) holds them: it admits a request
(:meth:`RateLimits.admit`, :class:`RateLimited` when over) and charges the tokens it used.

Each window is one key per (key id, limit) and each of the library's scripts touches that one
key, so the limits work on a Redis Cluster as they do on one server: there, the library's
cluster storage (its own cluster client, closed by :meth:`RateLimits.aclose`)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from router.store.apikeys import ApiKey
from router.store.config import RedisSettings


class RateLimited(Exception):
    """A key is over one of its limits: ``which`` (``requests per minute``, ``tokens per
    minute``), and when to retry."""

    def __init__(self, which: str, retry_after_s: int) -> None:
        super().__init__(f"this key is over its {which} limit; retry in {retry_after_s} s")
        self.which, self.retry_after_s = which, retry_after_s


class RateLimits:
    def __init__(self, redis: Redis, settings: RedisSettings, prefix: str) -> None:
        url = settings.url or ""
        self.storage: RedisStorage
        self._owned: Redis | None = None
        if settings.cluster:
            # The library's cluster client, found from the node redis.url names (over TLS
            # when that is rediss://); it follows each window's key to its slot's node.
            scheme, _, rest = url.partition("://")
            self.storage = RedisClusterStorage(
                f"async+redis+cluster://{rest.split('/', 1)[0]}", implementation="redispy",
                key_prefix=prefix, **({"ssl": True} if scheme == "rediss" else {}))
            self._owned = self.storage.bridge.storage  # type: ignore[attr-defined]
        else:
            # The app's own connection pool: closed with the app's client, nothing left open.
            self.storage = RedisStorage(f"async+{url}", implementation="redispy",
                                        key_prefix=prefix,
                                        connection_pool=redis.connection_pool)  # type: ignore[arg-type]
        self.limiter = MovingWindowRateLimiter(self.storage)

    async def aclose(self) -> None:
        """Close the cluster client the storage opened (on one server: nothing of its own)."""
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned.aclose()

    async def admit(self, key: ApiKey) -> tuple[str, int] | None:
        """Count one request against the key's limits; ``(which, retry_after_s)`` when it is
        over one of them (then nothing is counted)."""
        if key.tpm is not None:
            tokens = RateLimitItemPerMinute(key.tpm)
            if not await self.limiter.test(tokens, key.id, "tokens"):
                return "tokens per minute", await self._retry_after(tokens, key.id, "tokens")
        if key.rpm is not None:
            requests = RateLimitItemPerMinute(key.rpm)
            if not await self.limiter.hit(requests, key.id, "requests"):
                return "requests per minute", await self._retry_after(requests, key.id, "requests")
        return None

    async def charge_tokens(self, key: ApiKey, tokens: int) -> None:
        """Count the tokens a request used (after it ran) against the key's tokens per minute."""
        if key.tpm is not None and tokens > 0:
            item = RateLimitItemPerMinute(key.tpm)
            # A request larger than what is left still ran: fill the window as far as it goes.
            while tokens > 0:
                stats = await self.limiter.get_window_stats(item, key.id, "tokens")
                cost = min(tokens, stats.remaining)
                if cost <= 0:
                    break
                await self.limiter.hit(item, key.id, "tokens", cost=cost)
                tokens -= cost

    async def _retry_after(self, item: RateLimitItemPerMinute, *identifiers: str) -> int:
        stats = await self.limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))
