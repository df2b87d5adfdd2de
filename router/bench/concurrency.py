"""`smallcode bench concurrency`: aggregate generation throughput of the local tier at 1, 4 and
8 concurrent tasks, in-process (llama-cpp-python behind its lock) against llama.cpp's own
``llama-server`` with parallel slots (continuous batching), per-token logprobs on in both.

Both run the same model, threads and requests in one run, level by level (in-process, then
llama-server, at each level), llama-server with the engine settings `smallcode serve` gives it
(``local``: speculation, cache reuse...). Each task asks for a long answer with a distinct
opening line (no shared KV prefix), capped at ``tokens``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents.base import Backend, GenerationRequest, Message
from agents.config import LocalConfig

TASK = ("Write a Python module implementing a binary search tree class with insert, delete, "
        "search, minimum, maximum and in-order traversal methods. Give every method a docstring.")


def _request(i: int, tokens: int) -> GenerationRequest:
    prompt = f"Task {i}: name the class Tree{i}.\n{TASK}"
    return GenerationRequest(messages=(Message("user", prompt),), max_tokens=tokens,
                             logprobs=True, top_logprobs=2)


def aggregate(backend: Backend, concurrency: int, tokens: int, *, rounds: int) -> dict[str, Any]:
    """``rounds`` waves of ``concurrency`` simultaneous requests: completion tokens per wall
    second over all waves, and each request's latency."""
    produced, latencies, wall = 0, [], 0.0
    with ThreadPoolExecutor(concurrency) as pool:
        for wave in range(rounds):
            requests = [_request(wave * concurrency + i, tokens) for i in range(concurrency)]
            started = time.perf_counter()

            def one(request: GenerationRequest, started: float = started) -> tuple[int, float]:
                generation = backend.generate(request)
                assert generation.logprobs, "logprobs must be on"
                return generation.usage.completion_tokens, time.perf_counter() - started

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
        rounds: int = 2, log: Callable[[str], None] = print) -> dict[str, Any]:
    from agents import llama_server
    from agents.local import LocalBackend
    from agents.remote import RemoteLocalBackend

    result: dict[str, Any] = {"model": path.name, "n_threads": config.n_threads,
                              "tokens": tokens, "rounds": rounds, "inprocess": [],
                              "llama_server": []}
    parallel = max(levels)
    server_config = config.model_copy(update={"server_parallel": parallel})
    result["llama_server_flags"] = llama_server.flags(server_config)
    log("in-process: loading")
    inprocess = LocalBackend(config, path)
    try:
        log(f"llama-server --parallel {parallel}: starting")
        with llama_server.start(server_config, path, alias="bench") as server:
            remote = RemoteLocalBackend(server_config.model_copy(
                update={"mode": "server", "server_url": server.base_url}))
            try:
                for backend in (inprocess, remote):  # page the weights in, open the connection
                    backend.generate(_request(-1, 4))
                # level by level, in-process then llama-server: a shared machine's load weighs
                # on both alike
                for n in levels:
                    for kind, backend in (("inprocess", inprocess), ("llama_server", remote)):
                        log(f"{kind}: {n} concurrent")
                        result[kind].append(aggregate(backend, n, tokens, rounds=rounds))
            finally:
                remote.close()
    finally:
        inprocess.close()
    single = result["inprocess"][0]["tokens_per_s"]
    result["ratios_vs_inprocess_single"] = {
        f"{kind}@{row['concurrency']}": round(row["tokens_per_s"] / single, 2)
        for kind in ("inprocess", "llama_server") for row in result[kind]}
    return result
