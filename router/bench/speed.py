"""`smallcode bench speed`: the local tier through every layer we add, against the raw call.

One model, one prompt, 128 greedy tokens, alternating rounds, median total time per layer:
raw llama-cpp-python (`create_completion`, plain and streamed), our backend (`generate`,
`stream`, both with logprobs), the routing graph (`ask --route local`), and the HTTP API
(`/v1/chat/completions`, plain and SSE). Ratios are layer time / raw time: 1.00 is free.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from agents.base import GenerationRequest, Message
from agents.cloud import CloudBackend
from agents.config import LocalConfig
from agents.local import LocalBackend
from router.bench.local_speed import LONG_ANSWER
from router.graph.graph import build_graph, run_task
from router.runtime import build_context
from router.store.server import EmbeddedRedis

MAX_TOKENS = 128


def run(settings: object, config: LocalConfig, model_path: Path, *, rounds: int = 3,
        log: Callable[[str], None] = print) -> dict[str, object]:
    """The layers measured with ``settings``; the HTTP API layers run without auth on
    loopback (a key check is one Redis read, not what is measured here) and on an embedded
    Valkey when ``redis.url`` is empty, as ``smallcode serve`` would start one."""
    with tempfile.TemporaryDirectory() as scratch, EmbeddedRedis(Path(scratch)) as redis:
        url = settings.redis.url or redis.url  # type: ignore[attr-defined]
        served = settings.model_copy(update={  # type: ignore[attr-defined]
            "auth": settings.auth.model_copy(update={"enabled": False}),  # type: ignore[attr-defined]
            "server": settings.server.model_copy(update={"host": "127.0.0.1"}),  # type: ignore[attr-defined]
            "redis": settings.redis.model_copy(update={"url": url}),  # type: ignore[attr-defined]
            "tasks": settings.tasks.model_copy(update={"embedded_worker": False})})  # type: ignore[attr-defined]
        return _run(served, config, model_path, rounds=rounds, log=log)


class _Timed:
    """The local backend as the graph and the API see it, timing each call to the model: a
    layer's own cost is then its call's time less the model's, measured in the same call,
    whatever pace the host sets (it moved by 46% between two runs on a shared machine)."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.model_s = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def stream(self, request: GenerationRequest) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            yield from self.inner.stream(request)
        finally:
            self.model_s = time.perf_counter() - started

    def generate(self, request: GenerationRequest) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.generate(request)
        finally:
            self.model_s = time.perf_counter() - started


def _ok(response: httpx.Response) -> httpx.Response:
    """A layer that answered with an error measured nothing: stop, saying why."""
    if response.status_code != 200:
        raise RuntimeError(f"the HTTP API answered {response.status_code}: {response.text[:200]}")
    return response


def _run(settings: object, config: LocalConfig, model_path: Path, *, rounds: int,
         log: Callable[[str], None]) -> dict[str, object]:
    # deferred: uvicorn and the whole service are heavy; only the HTTP layers need them
    import uvicorn

    from router.service.app import create_app

    local = LocalBackend(config, model_path)
    cloud = CloudBackend(settings.cloud)  # type: ignore[attr-defined]  # never called here
    request = GenerationRequest(messages=(Message("user", LONG_ANSWER),), max_tokens=MAX_TOKENS)
    prompt = local.render(request)
    graph = build_graph()
    # One answer per graph run, as the other layers give (a cut-off module would be repaired).
    one_answer = settings.policies.model_copy(update={  # type: ignore[attr-defined]
        "default": settings.policies.default.model_copy(update={"repair_rounds": 0})})  # type: ignore[attr-defined]
    timed = _Timed(local)
    context = build_context(settings.model_copy(update={"policies": one_answer}),  # type: ignore[attr-defined]
                            timed, cloud)  # type: ignore[arg-type]
    app = create_app(settings, local=timed, cloud=cloud, with_retrieval=False)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           loop="asyncio", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "local", "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": LONG_ANSWER}]}

    def raw() -> None:
        local._llama.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0)

    def raw_stream() -> None:
        for _ in local._llama.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0,
                                                stream=True):
            pass

    def stream() -> None:
        for _ in local.stream(request):
            pass

    def api_stream() -> None:
        with httpx.stream("POST", url, json={**body, "stream": True}, timeout=300) as response:
            _ok(response)
            for _ in response.iter_lines():
                pass

    layers: dict[str, Callable[[], object]] = {
        "raw llama-cpp create_completion": raw,
        "raw llama-cpp create_completion, stream": raw_stream,
        "backend generate (logprobs)": lambda: local.generate(request),
        "backend stream (logprobs)": stream,
        "router graph, ask --route local": lambda: run_task(
            graph, {"prompt": LONG_ANSWER, "route": "local", "max_tokens": MAX_TOKENS}, context),
        "HTTP API /v1/chat/completions": lambda: _ok(httpx.post(url, json=body, timeout=300)),
        "HTTP API /v1/chat/completions, SSE": api_stream,
    }
    times: dict[str, list[float]] = {name: [] for name in layers}
    # The layers above the model: each call's time less its model call's (ms).
    over = ("router graph, ask --route local", "HTTP API /v1/chat/completions",
            "HTTP API /v1/chat/completions, SSE")
    overhead_ms: dict[str, list[float]] = {name: [] for name in over}
    model_s: dict[str, list[float]] = {name: [] for name in over}
    log(f"{len(layers)} layers x {rounds} rounds, {MAX_TOKENS} tokens each ...")
    names = list(layers)
    for r in range(rounds):
        # Each round starts one layer further on, so no layer always runs first (or right
        # after another that leaves the machine warmer).
        for name in names[r % len(names):] + names[:r % len(names)]:
            timed.model_s = 0.0
            started = time.perf_counter()
            layers[name]()
            times[name].append(time.perf_counter() - started)
            if name in overhead_ms:
                overhead_ms[name].append((times[name][-1] - timed.model_s) * 1000)
                model_s[name].append(timed.model_s)
    server.should_exit = True
    thread.join(timeout=10)
    tokens = local.generate(request).usage.completion_tokens
    local.close()
    raw_times = times["raw llama-cpp create_completion"]
    base = statistics.median(raw_times)
    return {
        "model": model_path.name, "n_threads": config.n_threads, "completion_tokens": tokens,
        "rounds": rounds,
        "layers": {name: {"median_s": statistics.median(t),
                          "tokens_per_s": tokens / statistics.median(t),
                          "ratio_vs_raw": statistics.median(t) / base,
                          # the host's pace drifts between rounds: the ratio within each
                          # round, then their median, is the steadier figure
                          "paired_ratio_vs_raw": statistics.median(
                              a / b for a, b in zip(t, raw_times, strict=True))}
                   for name, t in times.items()},
        "above_the_model": {name: {
            "overhead_ms_p50": round(statistics.median(overhead_ms[name]), 1),
            "overhead_ms_max": round(max(overhead_ms[name]), 1),
            "ratio_vs_its_model_call": round(statistics.median(
                (o / 1000 + m) / m for o, m in zip(overhead_ms[name], model_s[name],
                                                    strict=True)), 4)}
            for name in over},
    }
