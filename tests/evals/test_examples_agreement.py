"""`smallcode eval examples`: the examples' verdict against the hidden tests, no model run."""

from __future__ import annotations

from policies.config import PolicyConfig
from router.checks.sandbox import Sandbox
from router.evals.examples import agreement, evaluate, format_summary
from router.evals.humaneval import load_problems, select


def test_precision_and_recall_count_only_answers_with_examples() -> None:
    rows = [(True, True), (True, False), (False, True), (False, False), (None, True)]
    result = agreement(rows)
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (1, 1, 1, 1)
    assert result["precision"] == result["recall"] == 0.5
    assert (result["answers"], result["with_examples"]) == (5, 4)


def test_recorded_answers_are_judged_against_their_test_outcome(sandbox: Sandbox) -> None:
    problems = select(load_problems(), ["69", "38"])  # `==` examples; none (decode_cyclic)
    search = problems[0]
    wrong = "```python\ndef search(lst):\n    return max(lst)\n```"
    right = f"```python\n{search.prompt}{search.canonical_solution}\n```"
    results = [{"task_id": search.task_id, "local": {"answer": wrong, "passed": False},
                "cloud": {"answer": right, "passed": True}}]
    summary = evaluate(problems, results, sandbox, PolicyConfig())
    assert summary["with_examples"] == {"doctest": 0, "all": 1}
    recorded = summary["all"]["recorded"]
    assert (recorded["tp"], recorded["fp"], recorded["fn"], recorded["tn"]) == (1, 0, 0, 1)
    assert summary["all"]["canonical"]["recall"] == 1.0
    assert summary["doctest"]["recorded"]["with_examples"] == 0  # the old judge saw nothing
    assert "every form 1/2" in format_summary(summary)[0]
