"""HumanEval problems, prompts, code extraction and scoring in the sandbox."""

from __future__ import annotations

from collections import Counter

import pytest

from router.checks.sandbox import doctest_examples
from router.evals.humaneval import (
    Problem,
    extract_program,
    load_problems,
    score,
    select,
    split_of,
    task_prompt,
)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return load_problems()


@pytest.fixture(scope="module")
def close(problems: list[Problem]) -> Problem:
    return problems[0]  # has_close_elements


def test_loads_the_164_problems_in_order(problems: list[Problem]) -> None:
    assert [p.task_id for p in problems] == [f"HumanEval/{i}" for i in range(164)]
    assert all(p.entry_point in p.prompt and "def check(candidate)" in p.test for p in problems)


def test_select_by_id_and_limit(problems: list[Problem]) -> None:
    assert [p.task_id for p in select(problems, ["3", "HumanEval/1", "3"])] == [
        "HumanEval/3", "HumanEval/1"]
    assert len(select(problems, limit=5)) == 5
    with pytest.raises(KeyError, match="HumanEval/999"):
        select(problems, ["999"])


def test_split_is_fixed_and_halves_the_problems(problems: list[Problem]) -> None:
    halves = Counter(split_of(p.task_id) for p in problems)
    assert halves == {"calibrate": 82, "report": 82}  # changing the split changes the figures
    assert [split_of(f"HumanEval/{i}") for i in range(6)] == [
        "calibrate", "report", "calibrate", "calibrate", "report", "report"]


def test_prompt_keeps_the_examples_the_router_checks(close: Problem) -> None:
    examples = doctest_examples(task_prompt(close))
    assert examples is not None and examples.rstrip().endswith("True")
    assert close.prompt in task_prompt(close)


@pytest.mark.parametrize("task", [0, 10, 32, 38, 56, 95, 129, 163])
def test_canonical_solution_passes(problems: list[Problem], task: int, sandbox) -> None:
    # 38 needs a helper from its prompt; 56's tests contain ">>>" (they are not examples)
    problem = problems[task]
    result = score(problem, problem.prompt + problem.canonical_solution, sandbox)
    assert result.passed, result.detail


def test_wrong_solution_fails(problems: list[Problem], sandbox) -> None:
    problem = problems[2]  # truncate_number
    result = score(problem, problem.prompt + "    return number\n", sandbox)
    assert not result.passed and "AssertionError" in result.detail
    other = problems[56]  # correct_bracketing, answered with another problem's solution
    assert not score(other, other.prompt + problems[61].canonical_solution, sandbox).passed


CHATTY = '''Here is the function:

```python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            if abs(numbers[i] - numbers[j]) < threshold:
                return True
    return False


# Example usage
print(has_close_elements([1.0, 2.0, 3.0], 0.5))
assert has_close_elements([1.0], 0.5) is True  # a wrong example must not fail the run
```

It compares every pair of numbers, so it is O(n^2).
'''

BODY_ONLY = '''```python
    numbers = sorted(numbers)
    return any(b - a < threshold for a, b in zip(numbers, numbers[1:]))
```'''

BARE = '''def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
'''

WRONG = '''```python
def has_close_elements(numbers, threshold):
    return False
```'''

TRUNCATED = '''```python
from typing import List

def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i in range(len(numbers)):
        for j in range('''


@pytest.mark.parametrize("answer", [CHATTY, BODY_ONLY, BARE], ids=["chatty", "body", "bare"])
def test_extracted_answers_pass(close: Problem, answer: str, sandbox) -> None:
    program = extract_program(close, answer)
    assert "print(" not in program
    result = score(close, program, sandbox)
    assert result.passed, result.detail


@pytest.mark.parametrize("answer", [WRONG, TRUNCATED, "I cannot help with that."],
                         ids=["wrong", "truncated", "prose"])
def test_bad_answers_fail(close: Problem, answer: str, sandbox) -> None:
    assert not score(close, extract_program(close, answer), sandbox).passed
