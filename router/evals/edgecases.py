"""The edge-case set: Python problems that are not HumanEval, written for this project, whose
prompts state the behaviour in prose with few or no runnable examples, each with hidden tests
of the edge cases the prose names. The judge cannot lean on the task's own examples here.

The problems live in ``router/evals/problems/edgecases.yaml`` (HumanEval's fields); they are
run and scored like HumanEval's (:mod:`router.evals.humaneval`: the same prompt, extraction
and sandboxed scoring) and split in halves by the same hash of the task id.
"""

from __future__ import annotations

from importlib import resources

import yaml

from router.evals.humaneval import Problem

FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def load_problems() -> list[Problem]:
    """The set's problems, in file order. A malformed entry raises ValueError naming it."""
    return load_file("edgecases.yaml")


def load_file(name: str) -> list[Problem]:
    """The problems of ``router/evals/problems/<name>`` (HumanEval's fields), in file order.
    A malformed entry raises ValueError naming the file and the entry."""
    text = resources.files("router.evals").joinpath("problems", name).read_text(
        encoding="utf-8")
    problems = []
    for index, row in enumerate(yaml.safe_load(text)):
        missing = [f for f in FIELDS if not isinstance(row.get(f), str)]
        if missing:
            raise ValueError(f"{name} entry {index}: missing {', '.join(missing)}")
        # YAML drops a block's common indentation: the body goes back under its ``def``.
        body = row["canonical_solution"]
        if not body.startswith((" ", "\t")):
            body = "".join(f"    {line}" if line.strip() else line
                           for line in body.splitlines(keepends=True))
        problems.append(Problem(row["task_id"], row["prompt"], row["entry_point"], body,
                                row["test"]))
    return problems
