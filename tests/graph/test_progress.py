"""A run with its progress reported (router/graph/progress.py ``run_graph``, what streams and
queued tasks use) serves the answer and record that the same task run whole serves, whatever
the route: local, repaired, escalated, sent to the cloud for its tools."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph.answer import RoutedAnswer
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task
from router.graph.progress import run_graph
from tests.graph.test_agent_turns import ASK, READ, call

Tiers = Callable[[], tuple[Scripted, Scripted]]


def tiers(*local: Any, cloud: Any = "Done.", tools: bool = True) -> Tiers:
    def fresh() -> tuple[Scripted, Scripted]:
        return Scripted(*local, tools=tools), Scripted(cloud, tools=True)
    return fresh


AGENT = {"prompt": ASK, "max_tokens": 128, "tools": [READ],
         "conversation": [{"role": "user", "content": ASK}]}
CASES = {
    "local": (tiers(call("read_file", {"path": "calc.py"})), AGENT),
    "repaired": (tiers(call("open_file", {"path": "calc.py"}),
                       call("read_file", {"path": "calc.py"})), AGENT),
    "escalated": (tiers(call("read_file", {"file": "calc.py"}),
                        cloud=call("read_file", {"path": "calc.py"})), AGENT),
    "tools": (tiers("unused", tools=False), AGENT),
    "chat": (tiers("def add(a, b):\n    return a + b\n", cloud="Fixed."),
             {"prompt": "Write add(a, b) in Python.", "max_tokens": 64}),
}


def served(answer: RoutedAnswer) -> tuple[Any, ...]:
    record = answer.record
    return (answer.text, [(c.name, c.arguments) for c in answer.tool_calls],
            answer.finish_reason, record["final"], record["reason"], record["tokens"],
            record["cost_usd"], sorted(record["timings_ms"]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_reported_run_serves_what_the_whole_run_serves(case: str) -> None:
    fresh, task = CASES[case]
    graph = build_graph()

    def context() -> RouterContext:
        local, cloud = fresh()
        return RouterContext(local=local, cloud=cloud, policies=PoliciesConfig(),
                             local_window=4096, price_as="claude-sonnet-4-5",
                             count_tokens=lambda t: len(t) // 4 + 1)

    whole = run_task(graph, dict(task), context())  # type: ignore[arg-type]
    events: list[tuple[str, dict[str, Any]]] = []
    reported = run_graph(graph, dict(task), context(), cancel=threading.Event(),
                         emit=lambda kind, data: events.append((kind, data)))
    assert served(reported) == served(whole)
    assert [d["node"] for k, d in events if k == "node"][-1] == "record"
