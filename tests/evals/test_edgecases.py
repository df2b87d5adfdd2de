"""The edge-case set: every canonical solution passes its hidden tests in the sandbox, a wrong
one fails them, and the prompts give the judge no runnable example to lean on."""

from __future__ import annotations

import pytest

from router.checks.examples import find_examples
from router.checks.sandbox import doctest_examples
from router.evals.edgecases import load_problems
from router.evals.humaneval import Problem, extract_program, score, task_prompt

PROBLEMS = load_problems()


def test_the_set_is_a_second_benchmark_not_humaneval() -> None:
    assert len(PROBLEMS) >= 25
    assert len({p.task_id for p in PROBLEMS}) == len(PROBLEMS)
    assert all(p.task_id.startswith("Edge/") and f"def {p.entry_point}(" in p.prompt
               for p in PROBLEMS)
    with_examples = [p.task_id for p in PROBLEMS
                     if find_examples(task_prompt(p)) or doctest_examples(task_prompt(p))]
    assert len(with_examples) <= len(PROBLEMS) // 5, with_examples


@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.task_id for p in PROBLEMS])
def test_canonical_solution_passes(problem: Problem, sandbox) -> None:
    answer = f"```python\n{problem.prompt}{problem.canonical_solution}```"
    result = score(problem, extract_program(problem, answer), sandbox)
    assert result.passed, result.detail


def test_a_solution_that_skips_the_edge_cases_fails(sandbox) -> None:
    median = next(p for p in PROBLEMS if p.entry_point == "median")
    naive = ("```python\ndef median(values):\n    values.sort()\n"
             "    return values[len(values) // 2]\n```")
    assert not score(median, extract_program(median, naive), sandbox).passed
