"""The code checks of one answer: syntax of every code block, then the task's own examples
(every form a docstring writes them) and attached tests, run in the sandbox. A plain function
of the task and the answer: the judge calls it, and so do the evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from router.checks.code import extract_code_blocks, syntax_ok
from router.checks.edits import (
    check_edits,
    is_edit_block,
    requested_format,
    sent_files,
    without_instructions,
)
from router.checks.examples import as_test_code, find_examples
from router.checks.sandbox import Sandbox, doctest_examples


def attached_tests(files: Sequence[Mapping[str, object]]) -> str:
    """The test files sent with a task (``test_*.py``, ``*_test.py``), joined."""
    tests = []
    for item in files:
        name = str(item["path"]).rsplit("/", 1)[-1]
        if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
            tests.append(str(item["content"]))
    return "\n\n".join(tests)


def check_answer(prompt: str, files: Sequence[Mapping[str, object]], text: str,
                 sandbox: Sandbox | None, *, enabled: bool = True, timeout_s: float = 5.0,
                 system: str = "", history: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Cheap code checks: the edit format the client asked for (its system prompt and
    earlier turns say which), syntax of every code block that is code (not an edit block); the
    task's own runnable examples and attached tests, in the sandbox (skipped, and said so,
    where there is none; not run when ``enabled`` is false)."""
    blocks = [b for b in extract_code_blocks(text) if not is_edit_block(b.code)]
    verdicts = [syntax_ok(block) for block in blocks]
    checks: dict[str, Any] = {"code_blocks": len(blocks),
                              "syntax_errors": sum(1 for v in verdicts if v is False)}
    # The system prompt says it first; else the earlier turns (examples), else the task.
    prompt = without_instructions(prompt, system)  # Aider repeats its reminder in the task
    edit_format = (requested_format(system)
                   or requested_format("\n".join(t["content"] for t in history))
                   or requested_format(prompt))
    if edit_format is not None:
        sent = sent_files([*(t["content"] for t in history if t["role"] == "user"), prompt],
                          list(files))
        first = next(iter(extract_code_blocks(prompt)), None)
        checks["edit_format"] = check_edits(text, edit_format, files=sent, task=prompt,
                                            original=first.code if first else None).as_dict()
    python = "\n\n".join(b.code for b in blocks if b.language == "python")
    examples, tests = doctest_examples(prompt), attached_tests(files)
    written = as_test_code(find_examples(prompt))  # f(x) == y, Input/Output ...
    if not (enabled and python and (examples or written or tests)):
        return checks
    if sandbox is None:
        checks["execution_skipped"] = "no isolation for execution checks on this server"
        return checks
    runs = []
    for kind, suite, run in (("doctest", examples, sandbox.run_examples),
                             ("examples", written, sandbox.run_tests),
                             ("tests", tests, sandbox.run_tests)):
        if suite:
            result = run(python, suite, timeout_s=timeout_s)
            runs.append({"kind": kind, "passed": result.passed, "ran": result.ran,
                         "failed": result.failed, "detail": result.detail[:300]})
    checks["execution"] = {"passed": all(r["passed"] for r in runs),
                           "ran": sum(r["ran"] for r in runs),
                           "failed": sum(r["failed"] for r in runs), "runs": runs}
    return checks
