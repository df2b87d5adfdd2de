"""Signals and decisions as plain functions: no models, no graph."""

from __future__ import annotations

import math

import pytest

from policies.config import PolicyConfig
from router.graph import decide, signals


def lp(p: float) -> float:
    return math.log(p)


def test_confidence_is_none_without_logprobs() -> None:
    assert signals.confidence(None) is None
    assert signals.confidence([]) is None


def test_confidence_is_length_robust() -> None:
    sure = [lp(0.97)] * 20
    # the same quality of answer, ten times longer: the summed probability collapses,
    # the confidence score does not
    assert math.exp(sum(sure * 10)) < 0.01 < math.exp(sum(sure))
    assert signals.confidence(sure * 10) == pytest.approx(signals.confidence(sure), abs=1e-9)


def test_a_stretch_of_doubt_lowers_confidence() -> None:
    steady = [lp(0.95)] * 100
    lost = [lp(0.95)] * 60 + [lp(0.2)] * 20 + [lp(0.95)] * 20
    assert signals.confidence(lost) < 0.5 < 0.9 < signals.confidence(steady)


def test_no_logprobs_escalates() -> None:
    verdict = decide.after_judge(policy=PolicyConfig(), confidence=None, checks_failed=False,
                                 aborted=False, cloud_allowed=True)
    assert verdict["route"] == "cloud" and verdict["reason"] == "low_confidence"


@pytest.mark.parametrize(
    ("confidence", "failed", "aborted", "cloud_allowed", "route", "reason"),
    [
        (0.9, False, False, True, "local", "confident"),
        (0.3, False, False, True, "cloud", "low_confidence"),
        (0.9, True, False, True, "cloud", "failed_checks"),
        (None, False, True, True, "cloud", "early_abort"),
        (0.3, False, False, False, "local", "privacy"),
    ],
)
def test_after_judge(confidence, failed, aborted, cloud_allowed, route, reason) -> None:
    verdict = decide.after_judge(policy=PolicyConfig(confidence_threshold=0.55),
                                 confidence=confidence, checks_failed=failed, aborted=aborted,
                                 cloud_allowed=cloud_allowed)
    assert (verdict["route"], verdict["reason"]) == (route, reason)


def fit(prompt: int, max_tokens: int = 100, window: int = 1000) -> signals.ContextFit:
    return signals.ContextFit(prompt, 0, max_tokens, window, 100)


def files(n: int) -> list:
    return [{"path": f"f{i}.py", "source": "attached"} for i in range(n)]


def test_hard_rules_in_order() -> None:
    policy = PolicyConfig(task_type_routes={"refactor": "cloud"})
    run = lambda **kw: decide.before_generation(**{  # noqa: E731
        "policy": policy, "forced": None, "privacy": None, "task_type": "generate",
        "files": files(0), "fit": fit(100), **kw})
    assert run() is None
    assert run(forced="local")["reason"] == "forced"
    assert run(task_type="refactor")["reason"] == "task_type"
    assert run(files=files(2))["reason"] == "multi_file"
    assert run(fit=fit(850))["reason"] == "context"
    # privacy beats everything but a forced route: the task stays on the local path
    assert run(privacy="team x is local-only", files=files(3), fit=fit(5000)) is None


def test_context_fit_counts_prompt_snippets_and_answer() -> None:
    f = signals.ContextFit(prompt_tokens=500, snippet_tokens=300, max_tokens=100, window=1000,
                           margin=100)
    assert f.needed == 900 and f.available == 900 and f.fits
    assert not signals.ContextFit(501, 300, 100, 1000, 100).fits


def test_paths_and_symbols_in_prompt() -> None:
    prompt = ("Change `parse_config` in utils.py and update src/app/main.go; "
              "see also ./docs/guide.md, not e.g. or version 1.2.")
    assert signals.paths_in_prompt(prompt) == ["utils.py", "src/app/main.go", "docs/guide.md"]
    assert "parse_config" in signals.symbols_in_prompt(prompt)


@pytest.mark.parametrize(
    ("prompt", "task_type"),
    [
        ("Write a Python function add(a, b).", "generate"),
        ("Write unit tests for the parser.", "test"),
        ("Add docstrings to this module.", "document"),
        ("Refactor this class into two.", "refactor"),
        ("Fix the bug: it crashes on empty input.", "debug"),
        ("Please review this diff.", "review"),
        ("Change the default timeout to 30 s.", "edit"),
    ],
)
def test_task_classifier(prompt: str, task_type: str) -> None:
    assert signals.classify_task(prompt) == task_type


def test_early_abort_waits_for_enough_tokens() -> None:
    policy = PolicyConfig(early_abort_floor=0.2, early_abort_min_tokens=24)
    assert not decide.should_abort(0.1, 10, policy)
    assert decide.should_abort(0.1, 30, policy)
    assert not decide.should_abort(0.5, 30, policy)


def test_paths_inside_code_blocks_are_code_not_files_the_task_touches() -> None:
    prompt = "Fix utils.py.\n\n```python\nimport helpers.py  # not a file of the task\n```\n"
    assert signals.paths_in_prompt(prompt) == ["utils.py"]


def test_files_sent_are_path_lines_followed_by_their_code_block() -> None:
    text = ("I added these files:\n\napp/one.py\n```\nx = 1\n```\n\n`app/two.py`:\n```python\n"
            "y = 2\n```\nand mentions other.py in passing.")
    assert signals.files_sent(text) == ["app/one.py", "app/two.py"]


def test_a_git_diffs_a_and_b_paths_are_one_file() -> None:
    diff = ("Generate a commit message.\n\n# Diffs:\ndiff --git a/src/shapes.py b/src/shapes.py\n"
            "index 1..2 100644\n--- a/src/shapes.py\n+++ b/src/shapes.py\n@@ -1 +1 @@\n-x\n+y\n")
    assert signals.paths_in_prompt(diff) == ["src/shapes.py"]
    assert signals.paths_in_prompt("move a/util.py into b/util.py") == ["a/util.py", "b/util.py"]


def test_the_replies_a_commit_message_request_quotes_name_no_file() -> None:
    # Aider's commit-message request: the edit's chat as USER:/ASSISTANT: paragraphs, then the
    # diff. The reply's listing says path/to/shapes.py (Aider wrote it to shapes.py).
    request = ("\nUSER: In shapes.py, make area_square raise on a negative side.\n\n"
               "ASSISTANT: path/to/shapes.py\n```python\ndef area_square(side):\n    return 1\n"
               "```\n\n# Diffs:\ndiff --git a/shapes.py b/shapes.py\n--- a/shapes.py\n"
               "+++ b/shapes.py\n@@ -1 +1 @@\n-x\n+y\n")
    task = signals.without_inlined_replies(request)
    assert signals.paths_in_prompt(task) == ["shapes.py"] and signals.files_sent(task) == []
    assert "path/to/shapes.py" in signals.paths_in_prompt(request)  # what it was before
    # a text that quotes no chat is left as it is
    plain = "ASSISTANT: notes.py\n```\nx = 1\n```\n"
    assert signals.without_inlined_replies(plain) == plain
