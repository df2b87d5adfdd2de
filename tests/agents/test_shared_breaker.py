"""The cloud's circuit breaker shared through Redis: two cloud backends (as two API processes
or workers have, each its own client) on one Valkey, in front of one dead provider, make the
calls one breaker would: ``breaker_failures`` in all, then one probe per ``breaker_reset_s``
in all; the probe that finds the provider back closes the breaker for both. On one server and
on a three-primary cluster."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.cloud import CloudBackend
from agents.errors import BackendUnavailable, CircuitOpen
from router.backends import cloud_config, shared_breaker
from router.settings import Settings
from tests.conftest import Store, ask
from tests.helpers import serving

FAILURES, RESET_S = 3, 1.0
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class Provider:
    """An OpenAI-compatible provider that fails every call with a 500 while ``down``, and
    counts the calls that reach it."""

    def __init__(self) -> None:
        self.down, self.calls = True, 0

    async def complete(self, request: Request) -> Response:
        self.calls += 1
        if self.down:
            return JSONResponse({"error": {"message": "down", "type": "server_error"}},
                                status_code=500)
        if not (await request.json()).get("stream"):
            return JSONResponse(ANSWER)
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                 "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                  "content": "ok"},
                                            "finish_reason": "stop"}]}
        last = {**chunk, "choices": [], "usage": ANSWER["usage"]}
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in (chunk, last)) + "data: [DONE]\n\n"
        return Response(body, media_type="text/event-stream")

    @contextmanager
    def serving(self) -> Iterator[str]:
        app = Starlette(routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])])
        with serving(app) as url:
            yield f"{url}/v1"


def backend(store: Store, url: str) -> CloudBackend:
    """A cloud backend as ``build_cloud`` makes one for a process of the deployment."""
    settings = Settings(redis=store.redis(prefix="breaker-test"),  # type: ignore[arg-type]
                        cloud={"api_base": url, "num_retries": 0,  # type: ignore[arg-type]
                               "breaker_failures": FAILURES, "breaker_reset_s": RESET_S,
                               "timeout_s": 10})
    config = cloud_config(settings)
    return CloudBackend(config, breaker=shared_breaker(settings, config))


def call(tier: CloudBackend) -> str:
    try:
        tier.generate(ask("Say ok.", max_tokens=4))
    except CircuitOpen:
        return "refused"
    except BackendUnavailable:
        return "failed"
    return "ok"


def test_two_processes_breakers_let_a_dead_provider_get_what_one_would(store: Store) -> None:
    provider = Provider()
    with provider.serving() as url:
        first, second = backend(store, url), backend(store, url)
        try:
            assert [call(first) for _ in range(FAILURES)] == ["failed"] * FAILURES
            # The second process never called; it knows the provider is down all the same.
            assert call(second) == "refused" and provider.calls == FAILURES
            assert second.breaker.state == "open" and second.breaker.retry_after_s() > 0
            # Both keep calling, in turn, for three reset periods: one probe per period in all.
            started = time.monotonic()
            outcomes = []
            while time.monotonic() - started < 3 * RESET_S:
                outcomes += [call(first), call(second)]
                time.sleep(0.02)
            elapsed = time.monotonic() - started
            probes = provider.calls - FAILURES
            assert 1 <= probes <= math.ceil(elapsed / RESET_S), (probes, elapsed)
            assert outcomes.count("failed") == probes  # every other call was refused unsent
            assert len(outcomes) > 10 * probes
            # The provider is back: the next probe, from either process, closes it for both.
            provider.down = False
            time.sleep(RESET_S)
            assert call(second) == "ok"
            assert first.breaker.state == "closed"
            before = provider.calls
            assert [call(first), call(second)] == ["ok", "ok"] and provider.calls == before + 2
        finally:
            first.close()
            second.close()


def test_with_its_redis_gone_each_process_falls_back_to_its_own_breaker(
        tmp_path: Path) -> None:
    """Redis unreachable: calls are not held up by it; each breaker still opens on its own."""
    from router.store.server import EmbeddedRedis

    provider = Provider()
    with provider.serving() as url, EmbeddedRedis(tmp_path / "redis") as server:
        store = Store(server.url, cluster=False)
        tier = backend(store, url)
        server.kill()
        try:
            assert [call(tier) for _ in range(FAILURES)] == ["failed"] * FAILURES
            assert call(tier) == "refused" and provider.calls == FAILURES
        finally:
            tier.close()
