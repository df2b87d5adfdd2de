"""`smallcode bench api`: the service around the models, with the models replayed.

Both tiers replay one real generation of the local model (recorded at the start), so every
figure is the service's own cost: HTTP, auth, Redis, the queue, the ledger, the graph.
The API runs in its own process (uvicorn), the two workers in theirs, the load generator here,
all on loopback against an embedded Valkey:

1. enqueue throughput: ``POST /v1/tasks`` from 50 concurrent clients;
2. those tasks through 2 worker processes, counted in and out (tasks done, ledger entries);
3. non-generating endpoints (``GET /v1/tasks/{id}``, ``GET /v1/usage``) under 100 concurrent
   clients for ``duration_s``: p50 / p99 and errors;
4. the ledger's write cost per request (sequential writes).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from agents.base import Generation, GenerationRequest, Message
from agents.config import LocalConfig
from agents.scripted import Scripted
from router.graph.graph import build_graph
from router.graph.signals import quantile
from router.run.outcome import RouteRecord, ledger_entry
from router.runtime import build_context
from router.settings import Settings
from router.store import apikeys, ledger
from router.store.names import Names
from router.store.server import EmbeddedRedis, free_port
from router.worker import serve_worker

ADMIN = "bench-admin-key-0123456789abcdef"
PREFIX = "bench"


def _settings(redis_url: str) -> Any:
    return Settings(redis={"url": redis_url, "prefix": PREFIX}, admin_key=ADMIN,
                    tasks={"embedded_worker": False}, log_level="warning")


def _replay_tiers(recorded: Generation) -> tuple[Any, Any]:
    counter = lambda request: max(1, sum(len(m.content) for m in request.messages) // 4)  # noqa: E731
    return (Scripted(recorded, name="replay", prompt_counter=counter),
            Scripted(recorded, name="replay", prompt_counter=counter))


def _serve_api(redis_url: str, recorded: Generation, port: int) -> None:  # in a child process
    # deferred: uvicorn and the whole service are heavy, and only the API's child process needs them
    import uvicorn

    from router.service.app import create_app

    local, cloud = _replay_tiers(recorded)
    app = create_app(_settings(redis_url), local=local, cloud=cloud, with_retrieval=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _run_worker(redis_url: str, recorded: Generation) -> None:  # in a child process
    logging.basicConfig(level=logging.WARNING)
    settings = _settings(redis_url)
    local, cloud = _replay_tiers(recorded)
    context = build_context(settings, local, cloud)
    asyncio.run(serve_worker(settings, Names(PREFIX), graph=build_graph(),
                             context=context, concurrency=8))


async def _load(n_clients: int, duration_s: float, make: Callable[[int], Any],
                by_path: dict[str, list[float]] | None = None,
                ) -> tuple[list[float], int, float]:
    """``n_clients`` each sending one request after another for ``duration_s``; each
    latency also under its path's first two segments in ``by_path``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def user(u: int) -> None:
            nonlocal errors
            i = u
            while time.perf_counter() < deadline:
                method, url, kwargs = make(i)
                started = time.perf_counter()
                try:
                    response = await client.request(method, url, **kwargs)
                    errors += response.status_code >= 400
                except Exception:  # counted, not raised: the figure is the error count
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
                if by_path is not None:
                    path = "/".join(httpx.URL(url).path.split("/")[:3])
                    by_path.setdefault(path, []).append(latencies[-1])
                i += n_clients

        started = time.perf_counter()
        await asyncio.gather(*[user(u) for u in range(n_clients)])
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def run(config: LocalConfig, model_path: Path, *, tasks: int = 1000, duration_s: float = 20,
        apis: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``apis``: API processes; the reads' clients are spread over them (as a balancer
    would), the tasks are enqueued through the first."""
    from agents.local import LocalBackend  # deferred: loads numpy, and llama_cpp once built

    local = LocalBackend(config, model_path)
    recorded = local.generate(GenerationRequest(
        messages=(Message("user", "Write a Python function add(a, b) that returns a + b."),),
        max_tokens=64))
    local.close()
    result: dict[str, Any] = {"tasks": tasks, "duration_s": duration_s, "api_processes": apis}
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(Path(data) / "redis") as valkey:
        ports = [free_port() for _ in range(apis)]
        processes = [spawn.Process(target=_serve_api, args=(valkey.url, recorded, port),
                                   daemon=True) for port in ports]
        for process in processes:
            process.start()
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        base = bases[0]
        try:
            for url, process in zip(bases, processes, strict=True):
                _wait_healthy(url, process)

            async def make_key() -> str:
                redis = Redis.from_url(valkey.url)
                try:
                    return (await apikeys.create_key(redis, Names(PREFIX), team="bench"))[1]
                finally:
                    await redis.aclose()

            headers = {"Authorization": f"Bearer {asyncio.run(make_key())}"}
            body = {"prompt": "Write a Python function add(a, b) that returns a + b.",
                    "max_tokens": 64}
            log(f"enqueue: {tasks} tasks from 50 clients")
            started = time.perf_counter()
            ids: list[str] = []

            async def enqueue() -> tuple[list[float], int]:
                latencies: list[float] = []
                errors = 0
                async with httpx.AsyncClient(timeout=30) as client:
                    async def one(i: int) -> None:
                        nonlocal errors
                        t = time.perf_counter()
                        response = await client.post(f"{base}/v1/tasks", json=body,
                                                     headers=headers)
                        latencies.append((time.perf_counter() - t) * 1000)
                        if response.status_code == 202:
                            ids.append(response.json()["id"])
                        else:
                            errors += 1

                    semaphore = asyncio.Semaphore(50)

                    async def bounded(i: int) -> None:
                        async with semaphore:
                            await one(i)

                    await asyncio.gather(*[bounded(i) for i in range(tasks)])
                return latencies, errors

            latencies, errors = asyncio.run(enqueue())
            elapsed = time.perf_counter() - started
            result["enqueue"] = {"tasks_per_s": round(tasks / elapsed, 1), "errors": errors,
                                 "p50_ms": round(quantile(latencies, 0.5), 1),
                                 "p99_ms": round(quantile(latencies, 0.99), 1)}
            log("drain: 2 worker processes")
            workers = [spawn.Process(target=_run_worker, args=(valkey.url, recorded), daemon=True)
                       for _ in range(2)]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            done = 0
            while time.perf_counter() - started < 900:
                statuses = asyncio.run(_statuses(base, ids, headers))
                done = statuses.get("done", 0)
                if done + statuses.get("failed", 0) >= len(ids):
                    break
                time.sleep(1)
            drained = time.perf_counter() - started
            for worker in workers:
                worker.terminate()
                worker.join(30)
            usage = httpx.get(f"{base}/v1/usage", headers=headers, timeout=30).json()
            result["workers"] = {"accepted": len(ids), "done": done,
                                 "ledger_entries": usage["totals"]["tasks"],
                                 "lost": len(ids) - done, "seconds": round(drained, 1),
                                 "tasks_per_s": round(done / drained, 1)}
            log(f"load: 100 clients for {duration_s:g} s on GET /v1/tasks/{{id}} and /v1/usage"
                f" over {apis} API process(es)")

            def request(i: int) -> tuple[str, str, dict[str, Any]]:
                # client u sends requests u, u + 100, ...: always to the same API process
                at = bases[(i % 100) % apis]
                if (i // 100) % 2:
                    return "GET", f"{at}/v1/usage", {"headers": headers}
                return "GET", f"{at}/v1/tasks/{ids[i % len(ids)]}", {"headers": headers}

            by_path: dict[str, list[float]] = {}
            latencies, errors, elapsed = asyncio.run(_load(100, duration_s, request, by_path))
            result["read_endpoints"] = {
                "clients": 100, "requests": len(latencies), "errors": errors,
                "requests_per_s": round(len(latencies) / elapsed, 1),
                "p50_ms": round(quantile(latencies, 0.5), 1),
                "p99_ms": round(quantile(latencies, 0.99), 1),
                "by_path": {path: {"requests": len(times),
                                   "p50_ms": round(quantile(times, 0.5), 1),
                                   "p99_ms": round(quantile(times, 0.99), 1)}
                            for path, times in sorted(by_path.items())}}
        finally:
            for process in processes:
                process.terminate()
                process.join(30)
        log("ledger: 2,000 sequential writes")
        result["ledger_write_ms"] = asyncio.run(_ledger_cost(valkey.url, ledger))
    return result


def _wait_healthy(url: str, process: Any) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not process.is_alive():
            raise RuntimeError("an API process did not start")
        time.sleep(0.2)


async def _statuses(base: str, ids: list[str], headers: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        semaphore = asyncio.Semaphore(50)

        async def one(task_id: str) -> None:
            async with semaphore:
                response = await client.get(f"{base}/v1/tasks/{task_id}", headers=headers)
            status = response.json().get("status", "error") if response.status_code == 200 \
                else "error"
            counts[status] = counts.get(status, 0) + 1

        await asyncio.gather(*[one(i) for i in ids])
    return counts


async def _ledger_cost(url: str, ledger: Any) -> dict[str, float]:
    redis = Redis.from_url(url)
    record = RouteRecord.routed({
        "final": "local", "reason": "confident", "escalated": False,
        "tokens": {"prompt": 40, "completion": 30, "local_completion": 30},
        "cost_usd": 0.0, "counterfactual_cost_usd": 0.0006})
    times = []
    try:
        for i in range(2000):
            entry = ledger_entry(request_id=f"cost-{i}", team="bench", key_id="k",
                                 source="chat", record=record, latency_ms=100)
            started = time.perf_counter()
            await ledger.write_entry(redis, Names("ledger-cost"), entry, retention_days=30)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await redis.aclose()
    return {"p50": round(quantile(times, 0.5), 3), "p99": round(quantile(times, 0.99), 3)}
