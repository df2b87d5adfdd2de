"""`smallcode eval repair`: figures per number of allowed repair rounds, from its records."""

from __future__ import annotations

from typing import Any

from router.evals.repair import format_summary, summary


def state(tests: bool, examples: bool | None, confidence: float | None = 0.8,
          ms: float = 0.0) -> dict[str, Any]:
    return {"trigger": "failed_examples" if examples is False else None, "syntax_errors": 0,
            "examples_passed": examples, "confidence": confidence, "tests_passed": tests,
            "ms": ms, "prompt_tokens": 100, "completion_tokens": 50}


def record(task: str, initial: dict[str, Any], rounds: list[dict[str, Any]], cloud: bool,
           split: str = "report") -> dict[str, Any]:
    return {"task_id": task, "split": split, "initial": initial, "rounds": rounds,
            "cloud_passed": cloud, "cloud_cost_usd": 0.01,
            "routed_as_recorded": {"passed": cloud, "route": "cloud"}}


def test_each_round_counts_what_it_fixed_costs_and_where_it_routes() -> None:
    records = [
        # fixed by the first round: stays local, no cloud
        record("a", state(False, False), [state(True, True, ms=2000)], cloud=True),
        # never fixed: two rounds, then the cloud
        record("b", state(False, False), [state(False, False, ms=1000),
                                          state(False, False, ms=1000)], cloud=True),
        # right at once: no round
        record("c", state(True, True), [], cloud=False),
        # passes its examples, fails the tests: nothing to repair, kept local
        record("d", state(False, True), [], cloud=True),
    ]
    data = summary(records, threshold=0.55, max_rounds=2)
    zero, one, two = (data["by_rounds"][n] for n in (0, 1, 2))
    assert zero["local_pass_at_1"] == 0.25 and one["local_pass_at_1"] == 0.5
    assert (one["fixed"], one["broken"], one["repaired_tasks"], one["rounds_run"]) == (1, 0, 2, 2)
    assert zero["added_local_s_mean"] == 0 and one["added_local_s_mean"] == 0.75
    assert two["added_local_s_mean"] == 1.0 and two["rounds_run"] == 3
    assert zero["at_threshold"] == {"threshold": 0.55, "pass_at_1": 0.75, "cloud_share": 0.5}
    assert one["at_threshold"] == {"threshold": 0.55, "pass_at_1": 0.75, "cloud_share": 0.25}
    assert one["passes_examples_fails_tests"] == 1
    lines = format_summary(data)
    assert lines[0].startswith("report half: 4 problems")
    assert "repair_rounds 1: local 50.0% (+1 fixed, -0 broken" in lines[3]
