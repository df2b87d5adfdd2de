"""Local repair: what the local model is told when its answer fails the task's own checks.

The judge found the answer does not parse, raises, or fails one of the task's examples; the
local model is told the failing example, what it should return and what it returned (or the
error), and tries again (:func:`router.graph.nodes.repair`; whether to is
:func:`router.graph.decide.should_repair`). Pure functions of the checks and the text.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from agents.base import Generation, Message
from router.checks.code import extract_code_blocks
from router.graph.tool_calls import repair_message as tool_call_message

_TEST_PREFIX = re.compile(r"test_example_\d+: (?:AssertionError: )?")
_UNDEFINED = re.compile(r"undefined name '([^']+)'")
FEEDBACK_CHARS = 600


def trigger(checks: dict[str, Any]) -> str | None:
    """Why the answer needs repair: ``tool_call`` (an agent's turn called a tool that is not
    offered, or with arguments its schema refuses: the client cannot run it), ``edit_format``
    (it breaks the edit format the client asked for: the client would apply nonsense),
    ``syntax_error``, ``failed_examples`` (an example failed or the code raised), or None."""
    if checks.get("tool_calls", {}).get("passed") is False:
        return "tool_call"
    if checks.get("edit_format", {}).get("passed") is False:
        return "edit_format"
    if checks.get("syntax_errors"):
        return "syntax_error"
    execution = checks.get("execution")
    if execution and not execution["passed"]:
        return "failed_examples"
    return None


def failure(checks: dict[str, Any], answer: str, imports: Mapping[str, str] | None = None) -> str:
    """What went wrong, in one sentence for the model: the parser's message, or the failing
    example with what it should return and what it returned (or the error). ``imports``:
    the import line of each name the prompt's snippets showed (``snippet_imports``), given
    again for the undefined names among them."""
    if trigger(checks) == "edit_format":
        return f"the answer breaks the edit format: {format_problems(checks)}."
    if checks.get("syntax_errors"):
        problems = [syntax_error(b.code) for b in extract_code_blocks(answer)
                    if b.language == "python"]
        found = next((p for p in problems if p), "a code block is not valid Python")
        return f"the code does not parse: {found}."
    runs = checks.get("execution", {}).get("runs", [])
    failing = next((r for r in runs if not r["passed"]), None)
    if failing and failing.get("kind") == "names":
        undefined = _UNDEFINED.findall(" ".join(checks.get("names") or [failing["detail"]]))
        lines = list(dict.fromkeys((imports or {})[n] for n in undefined if n in (imports or {})))
        fix = ("Import them with the lines shown: " + "; ".join(f"`{line}`" for line in lines)
               + "." if lines else "Add the missing imports.")
        return (f"the code uses names it never defines or imports: "
                f"{failing['detail'][:FEEDBACK_CHARS]}. {fix}")
    detail = _TEST_PREFIX.sub("", failing["detail"]) if failing else "the checks failed"
    return f"the code fails the task's own examples: {detail[:FEEDBACK_CHARS]}"


def tool_call_messages(task: list[Message], answer: Generation,
                       verdict: Mapping[str, Any]) -> list[Message]:
    """The repair turn of an invalid tool call: what the model answered (its calls as text:
    a call with no result would break the chat template) and what was wrong with it."""
    calls = "\n".join(f"{call.name}({call.arguments})" for call in answer.tool_calls)
    said = "\n".join(part for part in (answer.text.strip(), calls) if part)
    return [*task, Message("assistant", said or "(no tool call)"),
            Message("user", tool_call_message(verdict))]


def format_problems(checks: dict[str, Any]) -> str:
    """What the edit-format check found, one clause each (``names path/to/filename.js,
    which the client did not send``)."""
    return "; ".join(checks.get("edit_format", {}).get("problems") or ["the format is broken"])


def feedback(checks: dict[str, Any], answer: str, imports: Mapping[str, str] | None = None) -> str:
    """The message that tells the local model what went wrong and asks for a fix."""
    return (f"Your answer is wrong: {failure(checks, answer, imports)}\n\nFix the code so that "
            "it runs and every example in the task gives the expected result. Reply with the whole "
            "corrected code in one ```python code block, and nothing else.")


def syntax_error(code: str) -> str | None:
    """Python's own message for the first syntax error of ``code``, with its line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(code)
        except SyntaxError as exc:
            line = (exc.text or "").strip()
            return f"{exc.msg} (line {exc.lineno}: `{line[:120]}`)" if line else exc.msg
        except ValueError as exc:
            return str(exc)
    return None


Style = Literal["turn", "rewrite", "hint"]


def snippet_imports(used: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each name a prompt's snippets made importable (the record's ``snippets``), and its
    import line (``from requests.utils import parse_dict_header``)."""
    found: dict[str, str] = {}
    for snippet in used:
        module, symbol = snippet.get("module"), snippet.get("symbol")
        if module and symbol:
            top = str(symbol).split(".", 1)[0]
            if top.isidentifier():
                found.setdefault(top, f"from {module} import {top}")
    return found


def messages(task: list[Message], answer: str, checks: dict[str, Any], *,
             style: Style = "hint", imports: Mapping[str, str] | None = None) -> list[Message]:
    """The repair request. ``hint`` (the default): the task again, with what failed and no
    code, for a fresh attempt. ``turn``: the failing answer as the model's turn, then the
    feedback as the user's. ``rewrite``: the task with the failing code and what failed.

    Measured on HumanEval's held-out half with the 0.5B coder (BENCHMARKS.md): shown its own
    answer (``turn``), it repeated it word for word in the first round on 29 of 33
    problems and fixed none; ``hint`` changed the answer and fixed 6 in two rounds."""
    *earlier, last = task
    if style == "turn":
        return [*task, Message("assistant", answer),
                Message("user", feedback(checks, answer, imports))]
    code = "\n\n".join(b.code for b in extract_code_blocks(answer) if b.language == "python")
    if style == "rewrite":
        extra = (f"This attempt is wrong:\n\n```python\n{code.strip()}\n```\n\nWhy: "
                 f"{failure(checks, answer, imports)}\nWrite the corrected code.")
    else:
        extra = (f"Careful: a first attempt was wrong: {failure(checks, answer, imports)}\n"
                 "Make sure every example in the task gives exactly the expected result.")
    return [*earlier, Message(last.role, f"{last.content}\n\n{extra}")]
