"""The service on a pool of two real llama-servers (SmolLM2-135M) with one of them stopped:
``/readyz`` stays ready and names the stopped one and why, ``/metrics`` shows each member up or
down and the requests in flight on it, every answer comes from the live one; and the second
turn of a conversation says in its route record how much of its prompt the server had cached.

Real parts: uvicorn, Valkey, the embedded task worker, llama-server; the cloud is never
reached (an unused address)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import llama_server, model_store
from agents.cloud import CloudBackend
from agents.config import CloudConfig, LocalConfig
from agents.pool import LocalPool
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

SMOL = "smollm2-135m"
UNUSED_CLOUD = CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0)
COUNT = ("Count from 1 to 500, one number per line.",
         "Write the multiplication table of 7 up to 7 x 100, one line each.",
         "List the squares of the numbers from 1 to 300, one per line.")
SYSTEM = "You answer questions about this module:\n" + "\n".join(
    f"def helper_{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(30))


class Service:
    def __init__(self, url: str, live: str, stopped: str) -> None:
        self.url, self.live, self.stopped = url, live, stopped

    def chat(self, messages: list[dict[str, str]], **body: Any) -> dict[str, Any]:
        reply = httpx.post(f"{self.url}/v1/chat/completions", timeout=120,
                           json={"model": "auto", "route": "local", "max_tokens": 12,
                                 "messages": messages, **body})
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def metrics(self) -> dict[tuple[str, str], float]:
        """``smallcode_local_member_*`` samples: (name, url) → value."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        return {(name, url): float(value) for name, url, value in re.findall(
            r'^(smallcode_local_member_\w+)\{url="([^"]+)"\} (\S+)$', text, re.MULTILINE)}

    def ready(self) -> dict[str, Any]:
        """``/readyz`` once it is ready (the embedded worker's first heartbeat may lag)."""
        deadline = time.monotonic() + 30
        while True:
            body = httpx.get(f"{self.url}/readyz", timeout=30).json()
            if body["status"] == "ready" or time.monotonic() > deadline:
                return dict(body)
            time.sleep(0.2)


@pytest.fixture(scope="module")
def service(model_cache: Path, valkey_server: Any) -> Iterator[Service]:
    config = LocalConfig(model=SMOL, n_ctx=2048, server_parallel=2)
    model = model_cache / model_store.MODELS[SMOL].filename
    with contextlib.ExitStack() as stack:
        live, stopped = (stack.enter_context(llama_server.start(config, model, alias=SMOL))
                         for _ in range(2))
        stopped.stop()
        pool = LocalPool(config.model_copy(update={
            "mode": "server", "server_urls": (live.base_url, stopped.base_url)}), recheck_s=60)
        stack.callback(pool.close)
        settings = Settings(redis={"url": valkey_server.url, "prefix": "engine-pool"},
                            auth={"enabled": False}, local={"model": SMOL, "n_ctx": 2048})
        app = create_app(settings, local=pool, cloud=CloudBackend(UNUSED_CLOUD),
                         with_retrieval=False)
        url = stack.enter_context(serving(app))
        yield Service(url, live.base_url, stopped.base_url)


def test_readyz_and_metrics_show_each_member_of_the_pool(service: Service) -> None:
    body = service.ready()
    assert (body["status"], body["local"]) == ("ready", "ok"), body  # one of two is enough
    members = {m["url"]: m for m in body["local_members"]}
    assert set(members) == {service.live, service.stopped}
    assert members[service.live]["up"] and members[service.live]["problem"] is None
    assert not members[service.stopped]["up"]
    assert "does not answer" in members[service.stopped]["problem"]

    served = service.chat([{"role": "user", "content": "Say hi."}])
    assert served["smallcode"]["route"]["local_server"] == service.live
    seen = service.metrics()
    assert seen[("smallcode_local_member_up", service.live)] == 1
    assert seen[("smallcode_local_member_up", service.stopped)] == 0
    assert seen[("smallcode_local_member_requests_total", service.live)] >= 1
    assert seen[("smallcode_local_member_in_flight", service.live)] == 0

    # A stream being answered is in flight on the live member, in both views, until it ends.
    # (SmolLM2 may answer in a few tokens: the answer ended before the look is tried again.)
    for attempt in range(3):
        with httpx.stream("POST", f"{service.url}/v1/chat/completions", timeout=120,
                          json={"model": "local", "stream": True, "max_tokens": 1500,
                                "messages": [{"role": "user", "content": COUNT[attempt]}]}
                          ) as response:
            assert response.status_code == 200
            chunks = (json.loads(line[6:]) for line in response.iter_lines()
                      if line.startswith("data: ") and line != "data: [DONE]")
            for chunk in chunks:
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    break  # the first token is out: the request is on the server now
            busy = service.metrics()[("smallcode_local_member_in_flight", service.live)]
            members = {m["url"]: m for m in service.ready()["local_members"]}
            if busy == 1:
                assert members[service.live]["in_flight"] == 1
                break  # the client leaves mid-answer
            rest = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
            assert len(rest) < 40, "a long answer was streaming but not counted in flight"
    else:
        pytest.fail("every answer ended before it could be seen in flight")
    deadline = time.monotonic() + 30
    while service.metrics()[("smallcode_local_member_in_flight", service.live)] != 0:
        assert time.monotonic() < deadline, "the stream stayed in flight after the client left"
        time.sleep(0.1)


def test_the_second_turn_says_how_much_of_its_prompt_was_cached(service: Service) -> None:
    history = [{"role": "system", "content": SYSTEM},
               {"role": "user", "content": "What does helper_3 return for 2?"}]
    first = service.chat(history)
    history += [{"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                {"role": "user", "content": "And helper_5?"}]
    second = service.chat(history)
    before, after = first["smallcode"]["route"], second["smallcode"]["route"]
    assert before["final"] == after["final"] == "local"
    prompt = first["usage"]["prompt_tokens"]
    assert prompt > 300  # the long system message: most of the second turn's prompt
    # the whole first turn was in the server's slot: the second re-read only its new turn
    assert after["cached_prompt_tokens"] >= prompt - 4, after
    assert after["cached_prompt_tokens"] > before["cached_prompt_tokens"]
