"""The cloud down (nothing listening), erroring (500), rate-limiting (429) or hanging past its
timeout: a task the policy lets stay local is answered locally, flagged `cloud_unavailable`;
one with no local answer fails fast with a clear error; the circuit breaker stops calling a
dead provider, probes it again later and closes when it answers; litellm's own retries run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.helpers import refusing_provider, serving, silent_provider
from tests.reliability.conftest import LogScan, clear_error, figure, post_chat, running

EAGER = {"teams": {"eager": {"confidence_threshold": 1.0, "repair_rounds": 0}}}  # always escalates
ASK = [{"role": "user", "content": "Write a Python function that doubles a number."}]
FILES = [{"path": f"pkg/m{i}.py", "content": f"def f{i}():\n    return {i}\n"} for i in range(3)]
TIMEOUT_S = 2.0


@contextmanager
def failing_cloud(kind: str) -> Iterator[tuple[str, bool]]:
    """A cloud that fails as ``kind`` says; yields its /v1 URL and whether to record at a proxy
    (a proxy in front of a dead or silent port would turn the failure into its own 500)."""
    if kind == "down":
        yield f"http://127.0.0.1:{free_port()}/v1", False
    elif kind == "hanging":
        with silent_provider() as url:
            yield url, False
    else:
        status = {"erroring": 500, "rate_limited": 429}[kind]
        with refusing_provider(status, kind) as url:
            yield url, True


@pytest.mark.parametrize("kind", ["down", "erroring", "rate_limited", "hanging"])
def test_a_failing_cloud_serves_local_where_allowed_and_fails_fast_elsewhere(
        kind: str, smol: Any, valkey_server: Any, service_logs: LogScan) -> None:
    with failing_cloud(kind) as (url, proxy), running(
            smol, url, valkey_server.url, prefix=f"rel-cloud-{kind}", proxy=proxy,
            cloud={"timeout_s": TIMEOUT_S, "breaker_failures": 0}, policies=EAGER) as service:
        key = service.key("eager")
        started = time.perf_counter()
        reply = post_chat(service, {"model": "auto", "messages": ASK, "max_tokens": 8}, key)
        local_s = time.perf_counter() - started
        assert reply.status_code == 200, reply.text
        route = reply.json()["smallcode"]["route"]
        assert (route["final"], route["reason"]) == ("local", "cloud_unavailable")
        assert reply.json()["choices"][0]["message"]["content"]

        started = time.perf_counter()
        no_local = post_chat(service, {"model": "auto", "messages": ASK, "files": FILES,
                                       "max_tokens": 8}, key)  # multi-file: no local answer
        failed_s = time.perf_counter() - started
        expected = {"down": 503, "erroring": 503, "rate_limited": 429, "hanging": 504}[kind]
        error = clear_error(no_local, expected)
        assert "cloud" in error["message"]
        direct = post_chat(service, {"model": "cloud", "messages": ASK, "max_tokens": 8}, key)
        clear_error(direct, expected)
        assert failed_s < TIMEOUT_S + 5  # one timeout at most, never a hang
        usage = httpx.get(f"{service.url}/v1/usage", params={"group_by": "reason"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        reasons = {row["reason"]: row["tasks"] for row in usage["data"]}
        assert reasons.get("cloud_unavailable") == 1  # the ledger says why it stayed local
    figure("cloud fault", kind=kind, served_local=1, failed_clearly=2, status=expected,
           local_s=round(local_s, 2), fail_s=round(failed_s, 2), lost=0)


class Switchable:
    """A provider that answers 500 while ``down``, else forwards to the stand-in."""

    def __init__(self, target: str) -> None:
        self.target, self.down = target, True
        self.clients: list[httpx.AsyncClient] = []

    @contextmanager
    def serving(self) -> Iterator[str]:
        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with httpx.AsyncClient(timeout=120) as client:
                self.clients.append(client)
                yield

        async def chat(request: Request) -> Response:
            if self.down:
                return JSONResponse({"error": {"message": "down", "type": "server_error",
                                               "param": None, "code": None}}, status_code=500)
            upstream = await self.clients[0].post(f"{self.target}/chat/completions",
                                                  content=await request.body(),
                                                  headers={"content-type": "application/json"})
            return Response(upstream.content, upstream.status_code,
                            media_type=upstream.headers.get("content-type"))

        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])],
                        lifespan=lifespan)
        with serving(app) as url:
            yield f"{url}/v1"


def test_the_breaker_stops_calling_a_dead_cloud_probes_it_and_closes(
        smol: Any, smol_standin_url: str, valkey_server: Any, service_logs: LogScan) -> None:
    provider = Switchable(smol_standin_url)
    reset_s = 1.5
    with provider.serving() as url, running(
            smol, url, valkey_server.url, prefix="rel-breaker",
            cloud={"breaker_failures": 2, "breaker_reset_s": reset_s}, policies=EAGER) as service:
        key = service.key("eager")
        body = {"model": "auto", "messages": ASK, "max_tokens": 4}

        def ask() -> dict[str, Any]:
            reply = post_chat(service, body, key)
            assert reply.status_code == 200, reply.text
            return dict(reply.json()["smallcode"]["route"])

        routes = [ask() for _ in range(6)]
        assert {(r["final"], r["reason"]) for r in routes} == {("local", "cloud_unavailable")}
        assert service.recorder.count == 2  # open after two failures: four never called it
        fast = post_chat(service, {"model": "cloud", "messages": ASK, "max_tokens": 4}, key)
        assert clear_error(fast, 503)["code"] == "upstream_unavailable"
        assert int(fast.headers["Retry-After"]) >= 1
        time.sleep(reset_s + 0.2)
        ask()
        assert service.recorder.count == 3  # one probe, which failed: open again
        ask()
        assert service.recorder.count == 3
        provider.down = False
        time.sleep(reset_s + 0.2)
        recovered = [ask() for _ in range(3)]
        assert all(r["final"] == "cloud" for r in recovered)  # the probe closed it
        assert service.recorder.count == 6
    figure("circuit breaker", requests=6 + 1 + 2 + 3, calls_to_dead_provider=3,
           refused_without_a_call=5, probes=2, recovered=True)


def test_litellm_retries_a_failing_provider_itself(smol: Any, valkey_server: Any,
                                                   service_logs: LogScan) -> None:
    """cloud.num_retries goes to litellm; we do not retry on top of it."""
    with refusing_provider(500, "server_error") as url, running(
            smol, url, valkey_server.url, prefix="rel-retries",
            cloud={"num_retries": 2, "breaker_failures": 0}) as service:
        key = service.key("retries")
        clear_error(post_chat(service, {"model": "cloud", "messages": ASK, "max_tokens": 4},
                              key), 503)
        calls = service.recorder.count
    # litellm 1.110 retries in two layers for an OpenAI-compatible provider: the first call
    # goes with the SDK's max_retries = num_retries (1 + 2 calls), then its wrapper retries
    # num_retries more times (2 calls): 1 + 2 * num_retries. None of them is ours.
    assert calls == 1 + 2 * 2, calls
    figure("litellm retries", num_retries=2, provider_calls=calls)
