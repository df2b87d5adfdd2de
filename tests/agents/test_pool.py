"""A pool of two real llama-servers on loopback (SmolLM2-135M): a conversation stays on the
server that holds its prompt, new ones go to the least busy, one killed → the other takes
every request, both down → the tier is unavailable, one back → it serves again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agents import llama_server, model_store
from agents.base import GenerationRequest, Message
from agents.config import LocalConfig
from agents.errors import BackendUnavailable
from agents.pool import LocalPool

SMOL = "smollm2-135m"


def start(model_cache: Path, port: int | None = None) -> llama_server.LlamaServer:
    config = LocalConfig(model=SMOL, n_ctx=1024, server_parallel=2, server_port=port)
    return llama_server.start(config, model_cache / model_store.MODELS[SMOL].filename,
                              alias=SMOL)


@pytest.fixture
def two(model_cache: Path) -> Iterator[list[llama_server.LlamaServer]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(start(model_cache)) for _ in range(2)]


def pool_of(servers: list[llama_server.LlamaServer], **kwargs: float) -> LocalPool:
    config = LocalConfig(model=SMOL, n_ctx=1024, mode="server",
                         server_urls=tuple(s.base_url for s in servers))
    return LocalPool(config, **kwargs)


def chat(*turns: str) -> GenerationRequest:
    messages = [Message("system", "You are a terse coding assistant.")]
    for i, text in enumerate(turns):
        messages.append(Message("user" if i % 2 == 0 else "assistant", text))
    return GenerationRequest(messages=tuple(messages), max_tokens=8)


def test_a_conversation_stays_on_its_server_and_new_ones_spread(
        two: list[llama_server.LlamaServer]) -> None:
    pool = pool_of(two)
    try:
        first = pool.generate(chat("Name a sorting algorithm."))
        later = pool.generate(chat("Name a sorting algorithm.", first.text, "Another one?"))
        assert later.extra["local_server"] == first.extra["local_server"]
        assert later.extra["cached_prompt_tokens"] >= first.usage.prompt_tokens - 4
        with ThreadPoolExecutor(4) as run:  # four new conversations at once
            served = list(run.map(lambda i: pool.generate(chat(f"Task {i}: say hi."))
                                  .extra["local_server"], range(4)))
        assert set(served) == {s.base_url for s in two}, served
        assert all(m["up"] and m["in_flight"] == 0 for m in pool.members())
    finally:
        pool.close()


def test_one_server_killed_the_other_takes_every_request(
        two: list[llama_server.LlamaServer]) -> None:
    pool = pool_of(two, recheck_s=60)
    try:
        first = pool.generate(chat("Name a data structure."))
        holder = next(s for s in two if s.base_url == first.extra["local_server"])
        holder.process.kill()
        holder.process.wait()
        assert pool.unavailable() is None  # the other still answers
        # the same conversation (its server gone) and new ones: all served by the other
        for request in (chat("Name a data structure.", first.text, "Another?"),
                        *(chat(f"Task {i}: say hi.") for i in range(3))):
            answer = pool.generate(request)
            assert answer.extra["local_server"] != holder.base_url
            assert answer.logprobs
        [down] = [m for m in pool.members() if not m["up"]]
        assert down["url"] == holder.base_url and down["problem"]
    finally:
        pool.close()


def test_all_down_is_unavailable_and_a_restarted_server_serves_again(
        model_cache: Path) -> None:
    servers = [start(model_cache) for _ in range(2)]
    port = int(servers[0].base_url.rsplit(":", 1)[1].split("/")[0])
    pool = pool_of(servers, recheck_s=0.5)
    try:
        for server in servers:
            server.stop()
        why = pool.unavailable()
        assert why is not None and why.startswith("none of the 2 local servers answers")
        with pytest.raises(BackendUnavailable, match="none of the 2 local servers answers"):
            pool.generate(chat("Say hi."))
        with start(model_cache, port=port) as back:
            time.sleep(0.6)  # the pool asks a left-out server again after recheck_s
            answer = pool.generate(chat("Say hi."))
            assert answer.extra["local_server"] == back.base_url
            assert pool.unavailable() is None
    finally:
        pool.close()
        for server in servers:
            server.stop()


def test_several_server_urls_make_the_local_tier_a_pool(tmp_path: Path) -> None:
    from agents.remote import RemoteLocalBackend
    from router.backends import build_local
    from router.settings import ConfigError, load_settings

    config = tmp_path / "config.yaml"
    config.write_text("local:\n  mode: server\n  server_urls: [http://127.0.0.1:1/v1, "
                      "http://127.0.0.1:2/v1]\n")
    pool = build_local(load_settings(config))
    assert isinstance(pool, LocalPool)
    assert [m["url"] for m in pool.members()] == ["http://127.0.0.1:1/v1",
                                                  "http://127.0.0.1:2/v1"]
    pool.close()
    config.write_text("local:\n  mode: server\n  server_urls: [http://127.0.0.1:1/v1]\n")
    one = build_local(load_settings(config))
    assert isinstance(one, RemoteLocalBackend) and one.url == "http://127.0.0.1:1/v1"
    one.close()
    config.write_text("local:\n  server_url: http://127.0.0.1:1/v1\n"
                      "  server_urls: [http://127.0.0.1:2/v1]\n")
    with pytest.raises(ConfigError, match=r"local\.server_url and local\.server_urls"):
        load_settings(config)
