"""The routing graph factory and a small function to run one task through it.

``RoutedAnswer`` (:mod:`router.graph.answer`) is imported here for the callers that find it
here."""

from __future__ import annotations

import time
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.cloud import price
from router.graph import nodes
from router.graph.answer import RoutedAnswer
from router.graph.context import RouterContext
from router.graph.record import build_record
from router.graph.state import RouterState, TaskInput

__all__ = ["RoutedAnswer", "build_graph", "run_task"]


def _record(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    started = time.perf_counter()
    record = build_record(
        state,
        price=lambda p, c: price(ctx.price_as, p, c),
        models={"local": ctx.local.model_name, "cloud": ctx.cloud.model_name,
                "price_as": ctx.price_as},
    )
    record["timings_ms"]["record"] = round((time.perf_counter() - started) * 1000, 2)
    return {"record": record}


def build_graph() -> Any:
    """intake → policy → (cloud_generate | retrieve → local_generate → (judge ⇄ repair,
    judge ⇄ sample → (cloud_generate | record) | cloud_generate when the local tier did not
    answer)) → record. The judge sends a failing local answer back to the local model (repair)
    up to the policy's ``repair_rounds`` before it escalates; where no example can run and
    ``sample_k`` > 1, it compares k local answers by behaviour first (sampling agreement)."""
    # Typed as Any: langgraph's add_node overloads do not accept Runtime-taking callables
    # whose state is a TypedDict subclass, though they run fine.
    graph: Any = StateGraph(RouterState, context_schema=RouterContext, input_schema=TaskInput)
    graph.add_node("intake", nodes.intake)
    graph.add_node("policy", nodes.policy)
    graph.add_node("retrieve", nodes.retrieve)
    graph.add_node("local_generate", nodes.local_generate)
    graph.add_node("judge", nodes.judge)
    graph.add_node("repair", nodes.repair)
    graph.add_node("sample", nodes.sample)
    graph.add_node("cloud_generate", nodes.cloud_generate)
    graph.add_node("record", _record)
    graph.add_edge(START, "intake")
    graph.add_edge("intake", "policy")
    graph.add_conditional_edges("policy", nodes.after_policy, ["cloud_generate", "retrieve"])
    graph.add_edge("retrieve", "local_generate")
    graph.add_conditional_edges("local_generate", nodes.after_local,
                                ["judge", "cloud_generate"])
    graph.add_conditional_edges("judge", nodes.after_judge,
                                ["repair", "sample", "cloud_generate", "record"])
    graph.add_edge("repair", "judge")
    graph.add_edge("sample", "judge")
    graph.add_edge("cloud_generate", "record")
    graph.add_edge("record", END)
    return graph.compile()


def run_task(graph: Any, task: TaskInput, context: RouterContext) -> RoutedAnswer:
    return RoutedAnswer.of(graph.invoke(task, context=context))
