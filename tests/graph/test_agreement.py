"""Sampling agreement's pure parts: the function a task defines, the probe calls built from
its argument types, and clustering answers by what they do."""

from __future__ import annotations

import ast

from router.graph.agreement import agree, probe_calls, target_function


def test_the_target_is_the_last_function_with_its_required_arguments_types() -> None:
    prompt = ("def helper(x):\n    pass\n\n"
              "def deep_get(data, path: str, default=None) -> object:\n    '''Follow path.'''\n")
    assert target_function(prompt) == ("deep_get", ["any", "str"])
    assert target_function("def f(xs: list[int], n: int, flag: bool): ...") == (
        "f", ["list", "int", "bool"])
    assert target_function("Write a function that sorts a list.") is None


def test_probe_calls_mix_ordinary_and_edge_values_and_parse() -> None:
    calls = probe_calls("f", ["list", "int"])
    assert 8 <= len(calls) <= 12 and len(set(calls)) == len(calls)
    assert "f([], 0)" in calls  # every argument's edge value at once
    assert all(isinstance(ast.parse(c, mode="eval").body, ast.Call) for c in calls)
    assert "f([])" in probe_calls("f", ["list"]) and probe_calls("g", []) == ["g()"]
    assert probe_calls("f", ["int"], ["f(3)", "f(3)", "f(4)"]) == ["f(3)", "f(4)"]


def test_a_strict_majority_is_confident_and_serves_the_greedy_answer_when_it_can() -> None:
    found = agree([("1", "2"), ("1", "3"), ("1", "2")], inputs=2)
    assert found.majority and found.clusters == ((0, 2), (1,)) and found.chosen == 0
    other = agree([("0",), ("1",), ("1",)], inputs=1)
    assert other.majority and other.chosen == 1
    assert not agree([("1",), ("2",), ("3",)], inputs=1).majority
    assert not agree([("1",), ("2",)], inputs=1).majority  # a tie is no majority


def test_answers_that_do_not_load_never_make_a_majority() -> None:
    found = agree([("broken",), ("broken",), ("1",)], inputs=1)
    assert not found.majority and found.chosen == 2 and found.share == 1 / 3
