"""Each API process keeps the keys it looked up for ``auth.key_cache_s``: a key revoked
through another process (or the CLI) is refused within that bound, one revoked through this
process at once, and a key created a moment ago works at once. Real Valkey, real uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from redis.asyncio import Redis

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from router.store import apikeys
from router.store.names import Names
from tests.helpers import serving

ADMIN = "admin-keycache-" + "k" * 16
PREFIX = "key-cache"
DEAD_CLOUD = "http://127.0.0.1:9/v1"


@contextmanager
def api(smol: Any, redis_url: str, cache_s: float) -> Iterator[str]:
    config = Settings(redis={"url": redis_url, "prefix": PREFIX}, admin_key=ADMIN,
                      auth={"key_cache_s": cache_s}, tasks={"embedded_worker": False})
    cloud = CloudBackend(CloudConfig(api_base=DEAD_CLOUD, num_retries=0))
    with serving(create_app(config, local=smol, cloud=cloud, with_retrieval=False)) as url:
        yield url


def store(redis_url: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """One store call, as another API process or `smallcode keys` makes it."""
    async def go() -> Any:
        client = Redis.from_url(redis_url)
        try:
            return await call(client, Names(PREFIX), *args, **kwargs)
        finally:
            await client.aclose()
    return asyncio.run(go())


def status(url: str, secret: str) -> int:
    return httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {secret}"},
                     timeout=30).status_code


def test_a_key_revoked_elsewhere_is_refused_within_the_bound_and_here_at_once(
        smol: Any, valkey_server: Any) -> None:
    with api(smol, valkey_server.url, cache_s=1.0) as url:
        first, first_secret = store(valkey_server.url, apikeys.create_key, team="cached")
        assert status(url, first_secret) == 200  # created a moment ago: works at once
        store(valkey_server.url, apikeys.revoke, first.id)  # by another process
        deadline = time.monotonic() + 15
        while status(url, first_secret) != 401:
            assert time.monotonic() < deadline, "a revoked key stayed accepted"
            time.sleep(0.1)
        second, second_secret = store(valkey_server.url, apikeys.create_key, team="cached")
        assert status(url, second_secret) == 200
        revoked = httpx.delete(f"{url}/v1/keys/{second.id}",
                               headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        assert revoked.status_code == 200
        assert status(url, second_secret) == 401  # revoked through this process: at once


def test_a_kept_key_is_served_without_reading_redis_again(smol: Any, valkey_server: Any) -> None:
    """Within the bound, a key revoked behind the API's back is still served: the lookup
    was kept (the cost of the cache, and the reason for its bound). With the cache off, it
    is refused on the next request."""
    for cache_s, expected in ((300.0, 200), (0.0, 401)):
        with api(smol, valkey_server.url, cache_s=cache_s) as url:
            key, secret = store(valkey_server.url, apikeys.create_key, team="kept")
            assert status(url, secret) == 200
            store(valkey_server.url, apikeys.revoke, key.id)
            assert status(url, secret) == expected, cache_s
