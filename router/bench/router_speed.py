"""`smallcode bench router`: what routing costs on top of the models.

1. Routing logic per task, model time excluded: 1,000 synthetic tasks run through the whole
   graph with both tiers replaced by a replay of one real generation (recorded from the local
   model at the start), so every node does its real work but no model runs. p50 / p99.
2. End to end for a task that stays local: the graph (`ask --route auto`) vs a direct
   llama-cpp-python call on the same prompt and model, alternating, as a ratio.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from agents.base import GenerationRequest, Message
from agents.config import LocalConfig
from agents.local import LocalBackend
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph.context import RouterContext, token_counter
from router.graph.graph import build_graph, run_task
from router.graph.signals import quantile

TASK = "Write a Python function add(a, b) that returns a + b."


def synthetic_tasks(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    verbs = ["Write", "Fix", "Refactor", "Document", "Review", "Add tests for", "Change"]
    things = ["a parser for CSV rows", "the retry loop in client.py", "parse_config()",
              "a binary search", "the `Cache` class", "src/app/main.go and utils.py"]
    tasks: list[dict[str, object]] = []
    for i in range(n):
        task: dict[str, object] = {"prompt": f"{rng.choice(verbs)} {rng.choice(things)}. #{i}",
                                   "max_tokens": rng.choice([64, 256, 512])}
        if rng.random() < 0.3:
            task["files"] = [{"path": f"pkg/m{j}.py", "content": "def f():\n    return 1\n" * 20}
                             for j in range(rng.randint(1, 3))]
        if rng.random() < 0.2:
            task["team"] = "vault"
        tasks.append(task)
    return tasks


def run(config: LocalConfig, model_path: Path, *, tasks: int = 1000, rounds: int = 3,
        log: Callable[[str], None] = print) -> dict[str, object]:
    local = LocalBackend(config, model_path)
    graph = build_graph()
    request = GenerationRequest(messages=(Message("user", TASK),), max_tokens=160)
    recorded = local.generate(request)
    replay = Scripted(recorded, name=f"replay of {recorded.model}",
                      prompt_counter=local.count_prompt_tokens)
    policies = PoliciesConfig(teams={"vault": {"local_only": True}})
    context = RouterContext(local=replay, cloud=replay, policies=policies,
                            local_window=config.n_ctx, price_as="claude-sonnet-4-5",
                            count_tokens=token_counter(local))
    log(f"routing logic over {tasks} synthetic tasks (models replayed) ...")
    run_task(graph, {"prompt": TASK}, context)  # warm-up: imports, price map
    per_task_ms, routes = [], {"local": 0, "cloud": 0}
    for task in synthetic_tasks(tasks):
        started = time.perf_counter()
        answer = run_task(graph, task, context)  # type: ignore[arg-type]
        per_task_ms.append((time.perf_counter() - started) * 1000)
        routes[answer.record["final"]] += 1

    log("end to end: graph vs direct llama-cpp-python call ...")
    live = RouterContext(local=local, cloud=replay, policies=policies,
                         local_window=config.n_ctx, price_as="claude-sonnet-4-5",
                         count_tokens=token_counter(local))
    prompt = local.render(request)
    graph_s, direct_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = run_task(graph, {"prompt": TASK, "max_tokens": 160}, live)
        graph_s.append(time.perf_counter() - started)
        assert answer.record["final"] == "local", answer.record["reason"]
        started = time.perf_counter()
        local._llama.create_completion(prompt, max_tokens=160, temperature=0.0)
        direct_s.append(time.perf_counter() - started)
    local.close()
    return {
        "tasks": tasks,
        "routes": routes,
        "routing_ms_p50": quantile(per_task_ms, 0.5),
        "routing_ms_p99": quantile(per_task_ms, 0.99),
        "end_to_end_graph_s": statistics.median(graph_s),
        "end_to_end_direct_s": statistics.median(direct_s),
        "end_to_end_ratio": statistics.median(graph_s) / statistics.median(direct_s),
        "completion_tokens": recorded.usage.completion_tokens,
    }
