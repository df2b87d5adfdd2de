"""The learned judge and sampling agreement with the real 0.5B coder: its samples at
temperature differ from its greedy answer, are run on probe inputs in the real sandbox, and
the route follows their agreement (the cloud is scripted: this is about the local tier)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.base import Backend, Generation, GenerationRequest, TokenEvent, Wrapped
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.checks.sandbox import Sandbox
from router.evals.edgecases import load_problems
from router.evals.humaneval import task_prompt
from router.graph.context import RouterContext, token_counter
from router.graph.graph import build_graph, run_task

pytestmark = pytest.mark.slow
CLOUD = "```python\ndef nothing():\n    pass\n```"


class Asked(Wrapped):
    """The real model, keeping the temperature of every request it was sent."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.temperatures: list[float] = []

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        self.temperatures.append(request.temperature)
        return self.inner.stream(request)


def test_samples_of_the_real_model_decide_the_route(coder, sandbox: Sandbox) -> None:
    problem = next(p for p in load_problems() if p.entry_point == "median")
    local = Asked(coder)
    context = RouterContext(
        local=local, cloud=Scripted(CLOUD), local_window=4096, price_as="claude-sonnet-4-5",
        policies=PoliciesConfig(teams={"t": {"judge_model": "builtin", "sample_k": 3}}),
        count_tokens=token_counter(coder), sandbox=sandbox)
    answer = run_task(build_graph(), {"prompt": task_prompt(problem), "max_tokens": 256,
                                      "team": "t"}, context)
    record = answer.record
    assert local.temperatures == [0.0, 0.7, 0.7]
    agreement = record["agreement"]
    assert agreement["k"] == 3 and sum(agreement["clusters"]) == 3 and agreement["inputs"] > 3
    assert record["judge"]["name"] == "learned" and 0 <= record["judge"]["probability"] <= 1
    if not agreement["majority"]:
        assert (record["final"], record["reason"], answer.text) == ("cloud", "disagreement", CLOUD)
    else:
        assert record["reason"] in ("confident", "low_confidence")
        assert (record["final"] == "local") == (record["reason"] == "confident")
