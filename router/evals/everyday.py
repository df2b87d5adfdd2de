"""The everyday set: a second Python problem set, HumanEval-like, that nobody tuned on.

Written for this project and frozen in its own commit before any judge was scored on it:
each prompt is a stub whose docstring gives runnable examples (``>>>`` mostly, and other
forms :mod:`router.checks.examples` reads), from the standard library's documented behaviour
and everyday coding tasks, with hidden tests beyond the examples. The problems live in
``router/evals/problems/everyday.yaml`` and are run and scored like HumanEval's
(:mod:`router.evals.humaneval`); ``tests/evals/test_everyday.py`` pins the file's hash.
"""

from __future__ import annotations

from router.evals.edgecases import load_file
from router.evals.humaneval import Problem

FILE = "everyday.yaml"


def load_problems() -> list[Problem]:
    """The set's problems, in file order."""
    return load_file(FILE)
