"""The everyday set: a second HumanEval-like set, frozen before any judge was scored on it.
Every canonical solution passes its hidden tests and the prompt's own examples as the
router's checks run them, in the sandbox; a wrong answer fails; the file is not edited."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from router.checks.answer import check_answer
from router.checks.examples import find_examples
from router.checks.sandbox import doctest_examples
from router.evals.everyday import FILE, load_problems
from router.evals.humaneval import Problem, extract_program, score, task_prompt

PROBLEMS = load_problems()
#: The frozen file's SHA-256. A problem found broken is reported in BENCHMARKS.md, not fixed:
#: scores on this set count only while nobody tuned the set on them.
FROZEN_SHA256 = "3db08c33688efb67a574ff28e99da85df28f36ff696393a4b1bdd05e9d8f31d3"


def _answer(problem: Problem) -> str:
    return f"```python\n{problem.prompt}{problem.canonical_solution}```"


def test_the_file_is_frozen() -> None:
    data = resources.files("router.evals").joinpath("problems", FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == FROZEN_SHA256


def test_the_set_is_humaneval_like_with_examples_the_router_runs() -> None:
    assert len(PROBLEMS) >= 40
    assert len({p.task_id for p in PROBLEMS}) == len(PROBLEMS)
    assert all(p.task_id.startswith("Everyday/") and f"def {p.entry_point}(" in p.prompt
               for p in PROBLEMS)
    without = [p.task_id for p in PROBLEMS
               if not (find_examples(task_prompt(p)) or doctest_examples(task_prompt(p)))]
    assert without == []
    other_forms = [p.task_id for p in PROBLEMS if not doctest_examples(task_prompt(p))]
    assert len(other_forms) >= 3  # not only doctest's >>>


@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.task_id for p in PROBLEMS])
def test_canonical_solution_passes_tests_and_examples(problem: Problem, sandbox) -> None:
    answer = _answer(problem)
    result = score(problem, extract_program(problem, answer), sandbox)
    assert result.passed, result.detail
    checks = check_answer(task_prompt(problem), [], answer, sandbox)
    execution = checks["execution"]
    assert execution["passed"] and execution["ran"] >= 1, execution


def test_an_answer_that_passes_the_examples_can_still_fail_the_hidden_tests(sandbox) -> None:
    ordinal = next(p for p in PROBLEMS if p.entry_point == "ordinal")
    naive = ("```python\ndef ordinal(n):\n    if n % 10 == 1:\n        return f'{n}st'\n"
             "    if n % 10 == 2:\n        return f'{n}nd'\n"
             "    if n in (3, 23):\n        return f'{n}rd'\n    return f'{n}th'\n```")
    checks = check_answer(task_prompt(ordinal), [], naive, sandbox)
    assert checks["execution"]["passed"]
    assert not score(ordinal, extract_program(ordinal, naive), sandbox).passed
