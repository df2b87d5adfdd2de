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
from tests.store_proxy import StoreProxy

ASK = {"model": "local", "max_tokens": 2,
       "messages": [{"role": "user", "content": "Say hi."}]}


async def _create_key(url: str, prefix: str = "down") -> str:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        _, secret = await apikeys.create_key(redis, Names(prefix), team="ops")
        return secret
    finally:
        await redis.aclose()


def test_redis_down_is_a_503_and_the_service_recovers_with_its_data(smol, tmp_path: Path) -> None:
    port = free_port()
    valkey = EmbeddedRedis(tmp_path / "redis", port=port).start()
    try:
        secret = asyncio.run(_create_key(valkey.url))
        # An answered request waits out a failing store for answered_outage_s (2 s here).
        settings = Settings(redis={"url": valkey.url, "prefix": "down", "answered_outage_s": 2})
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


def test_an_answer_outlasts_a_store_that_goes_away_as_its_entry_is_written(
        smol, redis_url: str) -> None:
    """A failover as an answered request writes its ledger entry (the topology run's cut
    stream, 2026-12-08): the store goes away as the write is sent and refuses connections for
    1.5 s. The client still gets its whole answer, and the ledger has each entry once."""
    secret = asyncio.run(_create_key(redis_url, "outlast"))
    headers = {"Authorization": f"Bearer {secret}"}
    dead = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0))
    with StoreProxy(redis_url).running() as proxy:
        settings = Settings(redis={"url": proxy.url, "prefix": "outlast"},
                            tasks={"embedded_worker": False})
        with serving(create_app(settings, local=smol, cloud=dead, with_retrieval=False)) as url:
            for n, stream in enumerate((False, True), start=1):
                proxy.outage_at_next(b"ZREMRANGEBYSCORE", 1.5)  # only the ledger's write
                started = time.monotonic()
                response = httpx.post(f"{url}/v1/chat/completions", headers=headers,
                                      json={**ASK, "stream": stream}, timeout=60)
                waited = time.monotonic() - started
                assert response.status_code == 200 and proxy.outages == n
                assert waited > 1.5  # it waited the outage out
                if stream:
                    events = [line[6:] for line in response.text.splitlines()
                              if line.startswith("data: ")]
                    assert events[-1] == "[DONE]" and '"error"' not in response.text
                    assert '"finish_reason":"' in response.text.replace(" ", "")
                else:
                    assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")
            usage = httpx.get(f"{url}/v1/usage", headers=headers, timeout=15).json()
            assert usage["totals"]["tasks"] == 2  # each entry once


def _closed_under_a_write() -> AttributeError:
    """What redis-py's asyncio cluster client raises for a connection closed under a write
    during a primary's failover (redis/redis-py#4287): its own write on a closed connection."""
    from redis.asyncio.connection import Connection

    try:
        asyncio.run(Connection()._send_packed_command([b"GET"]))
    except AttributeError as exc:
        return exc
    raise AssertionError("redis-py wrote on a closed connection: no failure to test")


def _closed_transport_under_a_write() -> RuntimeError:
    """The same under uvloop (which `smallcode serve` runs on): a write on a transport that
    closed raises ``RuntimeError`` from uvloop, under redis-py's write (seen in the topology
    run, 2026-12-08)."""
    import uvloop
    from redis.asyncio.connection import Connection

    async def write_after_close() -> None:
        accepted: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(lambda _, w: accepted.append(w), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        writer.close()  # closed under the client, which writes on
        await writer.wait_closed()
        connection = Connection()
        connection._reader, connection._writer = reader, writer
        try:
            await connection._send_packed_command([b"GET"])
        finally:
            connection._reader = connection._writer = None
            for each in accepted:
                each.close()
            server.close()
            await server.wait_closed()

    try:
        uvloop.run(write_after_close())
    except RuntimeError as exc:
        return exc
    raise AssertionError("a write on a closed uvloop transport raised nothing")


def test_redis_pys_errors_in_a_failover_are_the_stores_503_and_ours_a_500() -> None:
    from router.service.errors import describe

    for error in (_closed_under_a_write(), _closed_transport_under_a_write()):
        store = describe(error)
        assert (store.status, store.code, store.headers) == (503, "store_unavailable",
                                                             {"Retry-After": "5"}), error
    try:
        getattr(None, "writelines")()  # noqa: B009  # the same error, raised by our code
    except AttributeError as exc:
        ours = describe(exc)
    assert ours.status == 500 and ours.code is None
    try:
        raise RuntimeError("ours")
    except RuntimeError as exc:
        assert describe(exc).status == 500


def test_a_failover_error_is_answered_by_the_app_not_raised_into_the_server() -> None:
    """Answered where it is raised: uvicorn logs nothing more, and the access log reads the
    status the client got (a /readyz during the topology run's failover read 500 there while
    its client got 503)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from router.service.errors import install

    app = FastAPI()
    install(app)
    errors = {"attribute": _closed_under_a_write(), "runtime": _closed_transport_under_a_write()}

    @app.get("/{kind}")
    async def fail(kind: str) -> None:
        raise errors[kind]

    with TestClient(app) as client:  # raises what reaches the server, as uvicorn logs it
        for kind in errors:
            answered = client.get(f"/{kind}")
            assert answered.status_code == 503
            assert answered.json()["error"]["code"] == "store_unavailable"
