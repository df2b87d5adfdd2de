"""How well a prompt's own examples predict the hidden tests, without running any model.

For each HumanEval problem, the router's own checks (:func:`router.checks.answer.check_answer`:
``>>>`` examples, and examples in every other form, :mod:`router.checks.examples`) run in the
sandbox against answers whose hidden-test outcome is already known:

- the canonical solution (passes its tests by construction);
- the local and the cloud answers recorded in a results file of ``smallcode eval humaneval``
  (their ``passed`` is the hidden tests' verdict), when one is given.

"examples pass" is then a predictor of "tests pass": precision is how often an answer whose
examples pass also passes the tests, recall how often an answer that passes the tests also
passes its examples. Figures are given for the ``>>>`` examples alone (the judge before) and
for every form (the judge now).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies.config import PolicyConfig
from router.checks.answer import check_answer
from router.checks.examples import find_examples
from router.checks.sandbox import Sandbox, doctest_examples
from router.evals.humaneval import Problem, task_prompt

Record = dict[str, Any]


def canonical_answer(problem: Problem) -> str:
    """The canonical solution as a model would write it: the whole function in a block."""
    return f"```python\n{problem.prompt}{problem.canonical_solution}\n```"


def verdicts(problem: Problem, answer: str, sandbox: Sandbox,
             rules: PolicyConfig) -> dict[str, bool | None]:
    """Whether ``answer`` passes the problem's ``>>>`` examples (``doctest``) and all its
    examples (``all``); None where the prompt has none of that kind."""
    checks = check_answer(task_prompt(problem), [], answer, sandbox,
                          enabled=rules.execution_checks, timeout_s=rules.execution_timeout_s)
    execution = checks.get("execution")
    if execution is None:
        if checks["code_blocks"] == 0 or checks["syntax_errors"]:
            # No runnable code: the checks cannot run, and the judge treats it as failing.
            has = _has_examples(problem)
            return {"doctest": False if has["doctest"] else None,
                    "all": False if has["all"] else None}
        return {"doctest": None, "all": None}
    runs = {run["kind"]: run["passed"] for run in execution["runs"]}
    return {"doctest": runs.get("doctest"), "all": execution["passed"]}


def _has_examples(problem: Problem) -> dict[str, bool]:
    prompt = task_prompt(problem)
    doctest = doctest_examples(prompt) is not None
    return {"doctest": doctest, "all": doctest or bool(find_examples(prompt))}


def agreement(rows: Sequence[tuple[bool | None, bool]]) -> dict[str, Any]:
    """Precision and recall of "examples pass" for "tests pass" over (examples, tests)
    pairs; pairs without examples (None) are counted apart."""
    judged = [(e, t) for e, t in rows if e is not None]
    tp = sum(1 for e, t in judged if e and t)
    fp = sum(1 for e, t in judged if e and not t)
    fn = sum(1 for e, t in judged if not e and t)
    tn = sum(1 for e, t in judged if not e and not t)
    return {
        "answers": len(rows), "with_examples": len(judged),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "agreement": (tp + tn) / len(judged) if judged else None,
    }


def evaluate(problems: Sequence[Problem], results: Sequence[Record], sandbox: Sandbox,
             rules: PolicyConfig) -> dict[str, Any]:
    """Coverage, and the agreement of each judge's examples verdict with the hidden tests."""
    by_id = {r["task_id"]: r for r in results}
    rows: list[Record] = []
    for problem in problems:
        row: Record = {"task_id": problem.task_id, **{
            f"has_{k}": v for k, v in _has_examples(problem).items()}}
        answers = [("canonical", canonical_answer(problem), True)]
        record = by_id.get(problem.task_id)
        if record is not None:
            answers += [(tier, record[tier]["answer"], bool(record[tier]["passed"]))
                        for tier in ("local", "cloud")]
        for source, answer, passed in answers:
            row[source] = {"tests": passed, **verdicts(problem, answer, sandbox, rules)}
        rows.append(row)
    return summarise(rows)


def summarise(rows: Sequence[Record]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "problems": len(rows),
        "with_examples": {"doctest": sum(r["has_doctest"] for r in rows),
                          "all": sum(r["has_all"] for r in rows)},
    }
    for judge in ("doctest", "all"):
        summary[judge] = {
            "canonical": agreement([(r["canonical"][judge], True) for r in rows]),
            "recorded": agreement([(r[t][judge], r[t]["tests"]) for r in rows
                                   for t in ("local", "cloud") if t in r]),
            "local": agreement([(r["local"][judge], r["local"]["tests"]) for r in rows
                                if "local" in r]),
        }
    summary["canonical_failing"] = [r["task_id"] for r in rows if r["canonical"]["all"] is False]
    return summary


def format_summary(summary: dict[str, Any]) -> list[str]:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    n = summary["problems"]
    lines = [f"{n} problems; with at least one runnable example: `>>>` only "
             f"{summary['with_examples']['doctest']}/{n}, every form "
             f"{summary['with_examples']['all']}/{n}"]
    for judge, label in (("doctest", "`>>>` only"), ("all", "every form")):
        for source in ("canonical", "recorded", "local"):
            a = summary[judge][source]
            if not a["answers"]:
                continue
            lines.append(
                f"  {label:<10} {source:<9} answers {a['answers']:>3}, judged {a['with_examples']:>3}"
                f" (tp {a['tp']}, fp {a['fp']}, fn {a['fn']}, tn {a['tn']}): precision "
                f"{pct(a['precision'])}, recall {pct(a['recall'])}, agreement {pct(a['agreement'])}")
    if summary["canonical_failing"]:
        lines.append("  canonical solutions failing their prompt's examples (the examples are "
                     f"wrong or misread): {', '.join(summary['canonical_failing'])}")
    return lines
