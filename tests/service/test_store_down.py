"""Redis killed under a running API: requests get a 503 in the OpenAI shape (not a 500, not a
hang), and once Redis is back, from its append-only file, keys and the ledger are all there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from router.store import apikeys
from router.store.names import Names
from router.store.server import EmbeddedRedis, free_port
from tests.helpers import serving

ASK = {"model": "local", "max_tokens": 2,
       "messages": [{"role": "user", "content": "Say hi."}]}


async def _create_key(url: str) -> str:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        _, secret = await apikeys.create_key(redis, Names("down"), team="ops")
        return secret
    finally:
        await redis.aclose()


def test_redis_down_is_a_503_and_the_service_recovers_with_its_data(smol, tmp_path: Path) -> None:
    port = free_port()
    valkey = EmbeddedRedis(tmp_path / "redis", port=port).start()
    try:
        secret = asyncio.run(_create_key(valkey.url))
        settings = Settings(redis={"url": valkey.url, "prefix": "down"})
        dead = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0))
        headers = {"Authorization": f"Bearer {secret}"}
        with serving(create_app(settings, local=smol, cloud=dead, with_retrieval=False)) as url:
            def chat() -> httpx.Response:
                return httpx.post(f"{url}/v1/chat/completions", json=ASK, headers=headers,
                                  timeout=60)

            assert chat().status_code == 200
            valkey.kill()
            started = time.monotonic()
            down = chat()
            assert down.status_code == 503 and time.monotonic() - started < 15
            assert down.json()["error"]["code"] == "store_unavailable"
            assert down.headers["Retry-After"]
            assert httpx.get(f"{url}/readyz", timeout=15).status_code == 503
            valkey.start()  # same port, same append-only file
            assert chat().status_code == 200  # the key survived the crash
            usage = httpx.get(f"{url}/v1/usage", headers=headers, timeout=15).json()
            assert usage["totals"]["tasks"] == 2  # the entry written before the crash, and now
            deadline = time.monotonic() + 30  # the embedded worker comes back by itself
            while httpx.get(f"{url}/readyz", timeout=15).status_code != 200:
                assert time.monotonic() < deadline, "the embedded worker did not come back"
                time.sleep(0.5)
            task = httpx.post(f"{url}/v1/tasks", headers=headers, timeout=15,
                              json={"prompt": "Say hi.", "max_tokens": 2, "route": "local"})
            assert task.status_code == 202
            while (status := httpx.get(f"{url}/v1/tasks/{task.json()['id']}", headers=headers,
                                       timeout=15).json()["status"]) in ("queued", "running"):
                assert time.monotonic() < deadline + 60, "the task never ran"
                time.sleep(0.5)
            assert status == "done"
    finally:
        valkey.stop()


def _closed_under_a_write() -> AttributeError:
    """What redis-py's asyncio cluster client raises for a connection closed under a write
    during a primary's failover (redis/redis-py#4287): its own write on a closed connection."""
    from redis.asyncio.connection import Connection

    try:
        asyncio.run(Connection()._send_packed_command([b"GET"]))
    except AttributeError as exc:
        return exc
    raise AssertionError("redis-py wrote on a closed connection: no failure to test")


def test_redis_pys_attribute_error_in_a_failover_is_the_stores_503_and_ours_a_500() -> None:
    from router.service.errors import describe

    store = describe(_closed_under_a_write())
    assert (store.status, store.code, store.headers) == (503, "store_unavailable",
                                                         {"Retry-After": "5"})
    try:
        getattr(None, "writelines")()  # noqa: B009  # the same error, raised by our code
    except AttributeError as exc:
        ours = describe(exc)
    assert ours.status == 500 and ours.code is None
