"""`smallcode bench stream`: time to first byte and to first content token of routed
(``auto``) streams, per route, side by side in one run.

The real service (in-process, on loopback uvicorn) with the real local model and the real
stand-in as the cloud (reached through litellm), an embedded Valkey. Three kinds of task,
alternating round by round so that drift hits all three alike, each round a different task
(so no cache holds a previous round's prompt):

- ``local_kept``: a one-function task the judge keeps local (the first content arrives when
  the judged answer is sent, all at once);
- ``escalated``: the same kind of task for a team whose threshold (1.0) escalates every local
  answer: the local model runs, the judge escalates, then the cloud's tokens stream;
- ``straight_to_cloud``: the task with three files attached (multi-file): the cloud's tokens
  stream from the start.

Each request's route is read from its final chunk; a request that took another route than
its kind's is counted under the route it took (``routes`` says how many of each).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agents import model_store, standin
from agents.cloud import CloudBackend
from router.backends import build_local, cloud_config, standin_alias
from router.bench.serving import serving
from router.graph.signals import quantile
from router.settings import load_settings
from router.store.server import EmbeddedRedis, free_port

ESCALATING_TEAM = "bench-escalate"
TASKS = (
    "Write a Python function reverse_words(s) that returns the words of s in reverse order.",
    "Write a Python function count_vowels(s) that returns how many vowels s has.",
    "Write a Python function is_palindrome(s) that says whether s reads the same backwards.",
    "Write a Python function clamp(x, lo, hi) that limits x to the range lo..hi.",
    "Write a Python function second_largest(xs) that returns the second largest number.",
    "Write a Python function flatten(xss) that flattens a list of lists into one list.",
    "Write a Python function digits_sum(n) that returns the sum of the digits of n.",
    "Write a Python function dedupe(xs) that removes duplicates and keeps the first order.",
    "Write a Python function title_case(s) that capitalises the first letter of each word.",
    "Write a Python function running_total(xs) that returns the cumulative sums of xs.",
    "Write a Python function gcd(a, b) that returns the greatest common divisor of a and b.",
    "Write a Python function chunks(xs, n) that splits xs into lists of n items.",
    "Write a Python function median(xs) that returns the median of a list of numbers.",
    "Write a Python function word_count(s) that returns a dict of word frequencies.",
    "Write a Python function rotate(xs, k) that rotates a list k places to the right.",
)
FILES = [{"path": f"lib/m{i}.py", "content": f"def helper_{i}(x):\n    return x + {i}\n"}
         for i in range(3)]
KINDS = ("local_kept", "escalated", "straight_to_cloud")


def _body(kind: str, task: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", "stream": True, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": task}]}
    if kind == "escalated":
        body["team"] = ESCALATING_TEAM
    elif kind == "straight_to_cloud":
        body["files"] = FILES
    return body


def measure(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One routed stream: first byte, first content token and end (ms), and its route."""
    started = time.perf_counter()
    first_byte = first_content = None
    route: dict[str, Any] = {}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body,
                      timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            now = (time.perf_counter() - started) * 1000
            if first_byte is None:
                first_byte = now
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the stream failed: {chunk['error'].get('message')}")
            for choice in chunk.get("choices") or []:
                if first_content is None and choice["delta"].get("content"):
                    first_content = now
            route = chunk.get("smallcode", {}).get("route") or route
    return {"first_byte_ms": first_byte, "first_content_ms": first_content,
            "total_ms": (time.perf_counter() - started) * 1000,
            "route": route.get("final"), "reason": route.get("reason"),
            "completion_tokens": route.get("tokens", {}).get("completion")}


def run(config_file: Path | None, *, rounds: int = 3, max_tokens: int = 128,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    from router.service.app import create_app  # deferred: the whole service (FastAPI) is heavy

    settings = load_settings(config_file)
    if rounds * len(KINDS) > len(TASKS):
        raise ValueError(f"--rounds: at most {len(TASKS) // len(KINDS)} (one new task a request)")
    config = settings.standin.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
    path = model_store.resolve(config.model, settings.models.cache_dir)
    log(f"starting the cloud stand-in ({path.name}) and the local model")
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(Path(data) / "redis") as valkey, \
            standin.start(config, path, alias=standin_alias(settings)) as server:
        served = load_settings(
            config_file, redis={"url": valkey.url}, auth={"enabled": False},
            tasks={"embedded_worker": False}, log_level="warning",
            policies={"teams": {ESCALATING_TEAM: {"confidence_threshold": 1.0,
                                                  "repair_rounds": 0}}})
        local = build_local(served)
        cloud = CloudBackend(cloud_config(served).model_copy(
            update={"api_base": server.base_url, "n_ctx": config.n_ctx}))
        try:
            app = create_app(served, local=local, cloud=cloud, with_retrieval=False)
            with serving(app) as base_url:
                # Warm both tiers (weights paged in) with a request of each kind, not counted.
                for kind in KINDS:
                    measure(base_url, _body(kind, "Write a Python function add(a, b).", 16))
                for r in range(rounds):
                    for k, kind in enumerate(KINDS):
                        task = TASKS[r * len(KINDS) + k]
                        sample = measure(base_url, _body(kind, task, max_tokens))
                        samples[kind].append(sample)
                        log(f"round {r + 1}/{rounds} {kind}: route {sample['route']} "
                            f"({sample['reason']}), first byte {sample['first_byte_ms']:.0f} ms, "
                            f"first content {sample['first_content_ms'] or 0:.0f} ms, total "
                            f"{sample['total_ms']:.0f} ms")
        finally:
            local.close()
    result: dict[str, Any] = {"model": settings.local.model, "cloud": path.name,
                              "n_threads": settings.local.n_threads, "rounds": rounds,
                              "max_tokens": max_tokens, "kinds": {}}
    for kind, rows in samples.items():
        figures: dict[str, Any] = {"routes": {}}
        for row in rows:
            key = f"{row['route']}/{row['reason']}"
            figures["routes"][key] = figures["routes"].get(key, 0) + 1
        for name in ("first_byte_ms", "first_content_ms", "total_ms"):
            values = [row[name] for row in rows if row[name] is not None]
            figures[f"{name}_p50"] = quantile(values, 0.5) if values else None
            figures[f"{name}_max"] = max(values) if values else None
        counts = [row["completion_tokens"] for row in rows if row["completion_tokens"]]
        figures["completion_tokens_p50"] = quantile(counts, 0.5) if counts else None
        result["kinds"][kind] = figures
    return result
