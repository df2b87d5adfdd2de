"""The code checks of one answer: syntax of every code block, the names it uses and imports
(static, ``names``), then the task's own examples (every form a docstring writes them) and
attached tests, run in the sandbox. A plain function
of the task and the answer: the judge calls it, and so do the evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from router.checks import names
from router.checks.code import extract_code_blocks, syntax_ok
from router.checks.edits import check_edits, client_edit, is_edit_block, without_instructions
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
                 system: str = "", history: Sequence[Mapping[str, Any]] = (),
                 modules: Mapping[str, frozenset[str]] | None = None) -> dict[str, Any]:
    """Cheap code checks: the edit format the client asked for (its system prompt and
    earlier turns say which), syntax of every code block that is code (not an edit block); the
    task's own runnable examples and attached tests, in the sandbox (skipped, and said so,
    where there is none; not run when ``enabled`` is false).

    Undefined names and unresolved imports (``modules``: the indexed repository's symbol
    table, else the installed packages) fail the answer like a failing example: a run of
    kind ``names`` in ``execution``, so the judge escalates or repairs it."""
    blocks = [b for b in extract_code_blocks(text) if not is_edit_block(b.code)]
    verdicts = [syntax_ok(block) for block in blocks]
    checks: dict[str, Any] = {"code_blocks": len(blocks),
                              "syntax_errors": sum(1 for v in verdicts if v is False)}
    edit = client_edit(prompt, system=system, history=history, files=files)
    prompt = without_instructions(prompt, system)  # Aider repeats its reminder in the task
    if edit is not None:
        first = next(iter(extract_code_blocks(prompt)), None)
        checks["edit_format"] = check_edits(text, edit.format, files=edit.files, task=prompt,
                                            original=first.code if first else None).as_dict()
    python = "\n\n".join(b.code for b in blocks if b.language == "python")
    earlier = [str(t["content"]) for t in history]
    names = (unresolved_names(python, prompt, files, modules, earlier=earlier)
             if enabled and python else [])
    if names:
        checks["names"] = names
    examples, tests = doctest_examples(prompt), attached_tests(files)
    written = as_test_code(find_examples(prompt))  # f(x) == y, Input/Output ...
    if not (enabled and python and (examples or written or tests)):
        return _with_names(checks, names)
    if sandbox is None:
        checks["execution_skipped"] = "no isolation for execution checks on this server"
        return _with_names(checks, names)
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
    return _with_names(checks, names)


def unresolved_names(python: str, prompt: str, files: Sequence[Mapping[str, object]],
                     modules: Mapping[str, frozenset[str]] | None = None, *,
                     earlier: Sequence[str] = ()) -> list[str]:
    """The answer's undefined names and unresolvable imports (``router.checks.names``);
    names the task's files, its prompt (when it is code) and the code blocks of the prompt
    and the chat's earlier turns define count as defined."""
    known = names.defined_names(prompt)
    for item in files:
        if str(item["path"]).endswith(".py"):
            known |= names.defined_names(str(item["content"]))
    for text in (prompt, *earlier):
        for block in extract_code_blocks(text):
            known |= names.defined_names(block.code)
    return names.problems(python, known=known, modules=modules)


def _with_names(checks: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """A names failure is a failing run of the execution checks (static: no sandbox)."""
    if not problems:
        return checks
    run = {"kind": "names", "passed": False, "ran": 1, "failed": len(problems),
           "detail": "; ".join(problems)[:300]}
    execution = checks.get("execution") or {"passed": True, "ran": 0, "failed": 0, "runs": []}
    checks["execution"] = {"passed": False, "ran": execution["ran"] + 1,
                           "failed": execution["failed"] + len(problems),
                           "runs": [*execution["runs"], run]}
    return checks
