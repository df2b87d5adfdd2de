"""`smallcode bench concurrency`: aggregate generation throughput of the local tier at 1, 4 and
8 concurrent tasks, in-process (llama-cpp-python behind its lock) against llama.cpp's own
``llama-server`` with parallel slots (continuous batching), per-token logprobs on in all.

``through`` says how llama-server is reached: ``engine``, directly (its OpenAI API, from this
process); ``serve``, through `smallcode serve`'s HTTP API (a child process that starts its own
llama-server: :mod:`router.bench.serve_http`), as a client of the service sees it.

All run the same model, threads and requests in one run, level by level (in-process, then
each way in, at each level), llama-server with the engine settings `smallcode serve` gives it
(``local``: speculation, cache reuse...). Each task asks for a long answer with a distinct
opening line (no shared KV prefix), capped at ``tokens``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents import llama_server
from agents.base import Backend, GenerationRequest, Message
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from router.bench.serve_http import ServeApi

TASK = ("Write a Python module implementing a binary search tree class with insert, delete, "
        "search, minimum, maximum and in-order traversal methods. Give every method a docstring.")


def _request(i: int, tokens: int) -> GenerationRequest:
    prompt = f"Task {i}: name the class Tree{i}.\n{TASK}"
    return GenerationRequest(messages=(Message("user", prompt),), max_tokens=tokens,
                             logprobs=True, top_logprobs=2)


THROUGH = ("engine", "serve")
KINDS = {"engine": "llama_server", "serve": "serve_http"}  # the result's key for each


def completion_tokens(backend: Backend) -> Callable[[GenerationRequest], int]:
    def one(request: GenerationRequest) -> int:
        generation = backend.generate(request)
        assert generation.logprobs, "logprobs must be on"
        return generation.usage.completion_tokens
    return one


def aggregate(generate: Callable[[GenerationRequest], int], concurrency: int, tokens: int, *,
              rounds: int) -> dict[str, Any]:
    """``rounds`` waves of ``concurrency`` simultaneous requests, each answered by
    ``generate`` (its completion tokens): completion tokens per wall second over all waves, and
    each request's latency."""
    produced, latencies, wall = 0, [], 0.0
    with ThreadPoolExecutor(concurrency) as pool:
        for wave in range(rounds):
            requests = [_request(wave * concurrency + i, tokens) for i in range(concurrency)]
            started = time.perf_counter()

            def one(request: GenerationRequest, started: float = started) -> tuple[int, float]:
                return generate(request), time.perf_counter() - started

            results = list(pool.map(one, requests))
            wall += time.perf_counter() - started
            produced += sum(n for n, _ in results)
            latencies += [s for _, s in results]
    latencies.sort()
    return {"concurrency": concurrency, "requests": len(latencies),
            "completion_tokens": produced, "tokens_per_s": round(produced / wall, 1),
            "latency_s_p50": round(latencies[len(latencies) // 2], 2),
            "latency_s_max": round(latencies[-1], 2)}


def run(config: LocalConfig, path: Path, *, levels: Sequence[int] = (1, 4, 8), tokens: int = 128,
        rounds: int = 2, through: Sequence[str] = ("engine",), config_file: Path | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    from agents.local import LocalBackend  # deferred: loads numpy, and llama_cpp once built

    unknown = [way for way in through if way not in THROUGH]
    if unknown or not through:
        raise ValueError(f"through: each of {', '.join(THROUGH)}, got {list(through)}")
    kinds = ["inprocess", *(KINDS[way] for way in through)]
    result: dict[str, Any] = {"model": path.name, "n_threads": config.n_threads,
                              "tokens": tokens, "rounds": rounds, "kinds": kinds,
                              **{kind: [] for kind in kinds}}
    parallel = max(levels)
    server_config = config.model_copy(update={"server_parallel": parallel})
    result["llama_server_flags"] = llama_server.flags(server_config)
    with contextlib.ExitStack() as stack:
        log("in-process: loading")
        inprocess = LocalBackend(config, path)
        stack.callback(inprocess.close)
        ways: dict[str, Callable[[GenerationRequest], int]] = {
            "inprocess": completion_tokens(inprocess)}
        if "engine" in through:
            log(f"llama-server --parallel {parallel}: starting")
            server = stack.enter_context(llama_server.start(server_config, path, alias="bench"))
            remote = RemoteLocalBackend(server_config.model_copy(
                update={"mode": "server", "server_url": server.base_url}))
            stack.callback(remote.close)
            ways["llama_server"] = completion_tokens(remote)
        if "serve" in through:
            log(f"smallcode serve (llama-server --parallel {parallel}): starting")
            api = stack.enter_context(ServeApi(config, server_parallel=parallel,
                                               config_file=config_file))
            ways["serve_http"] = api.completion_tokens
        for generate in ways.values():  # page the weights in, open the connection
            generate(_request(-1, 4))
        # level by level, in-process then each way to llama-server: a shared machine's load
        # weighs on all alike
        for n in levels:
            for kind, generate in ways.items():
                log(f"{kind}: {n} concurrent")
                result[kind].append(aggregate(generate, n, tokens, rounds=rounds))
    single = result["inprocess"][0]["tokens_per_s"]
    result["ratios_vs_inprocess_single"] = {
        f"{kind}@{row['concurrency']}": round(row["tokens_per_s"] / single, 2)
        for kind in kinds for row in result[kind]}
    return result
