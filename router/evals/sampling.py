"""Sampling agreement on recorded answers: for k = 1, 3, 5 the greedy answer and k-1 recorded
samples are run on the graph's probe inputs (:mod:`router.graph.agreement`, in the sandbox),
clustered, and routed by the graph's rule (no majority escalates; a majority serves its
answer, which the judge then judges). No model runs: ``smallcode eval features --samples``
recorded the samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.config import PolicyConfig
from router.checks.code import extract_code_blocks
from router.checks.sandbox import Sandbox
from router.evals.features import checks_of
from router.graph import agreement

Record = dict[str, Any]


def python_code(text: str) -> str | None:
    """The answer's Python, as the graph's sample node joins it."""
    return "\n\n".join(b.code for b in extract_code_blocks(text) if b.language == "python") or None


def agreement_of(record: Record, prompt: str, k: int, sandbox: Sandbox,
                 rules: PolicyConfig) -> dict[str, Any] | None:
    """The agreement of the first k answers of a record (greedy first), the answer it would
    serve, and the sandbox time; None when k answers are not recorded or no function."""
    answers = [record["local"], *record.get("samples", [])][:k]
    target = agreement.target_function(prompt)
    if len(answers) < k or target is None:
        return None
    calls = agreement.probe_calls(*target)
    started = time.perf_counter()
    found = agreement.agree(agreement.behaviours(
        [python_code(a["answer"]) for a in answers], calls, sandbox,
        timeout_s=rules.execution_timeout_s), len(calls))
    chosen = answers[found.chosen]
    return {"agreement": found, "answer": chosen,
            "checks": record["checks"] if found.chosen == 0 else checks_of(
                prompt, chosen["answer"], rules, sandbox),
            "sandbox_ms": (time.perf_counter() - started) * 1000,
            "added_ms": sum(a["latency_ms"] for a in answers[1:])}


def evaluate(records: Sequence[Record], prompts: Mapping[str, str], ks: Sequence[int],
             sandbox: Sandbox, rules: PolicyConfig,
             judges: Mapping[str, tuple[Callable[..., float | None], float]]) -> dict[str, Any]:
    """For each k: local-only pass@1 of the served answer, and routed pass@1 and cloud share
    for agreement alone (majority: local) and agreement then each judge (``judges``: name ->
    (score of a record with ``answer`` and ``checks`` overridden, threshold))."""
    out: dict[str, Any] = {}
    for k in ks:
        rows = []
        for record in records:
            found = agreement_of(record, prompts[record["task_id"]], k, sandbox, rules)
            if found is None:
                break
            rows.append((record, found))
        if len(rows) < len(records):
            continue  # not enough samples recorded for this k
        n = len(rows)
        row: dict[str, Any] = {
            "local_only": sum(f["answer"]["passed"] for _, f in rows) / n,
            "majority_share": sum(f["agreement"].majority for _, f in rows) / n,
            "added_s_mean": sum(f["added_ms"] + f["sandbox_ms"] for _, f in rows) / n / 1000,
            "routes": {}}
        for name, (score, threshold) in {"agreement only": (None, 0.0), **judges}.items():
            passed = cloud = 0
            for record, found in rows:
                local_ok = found["agreement"].majority or k == 1
                if local_ok and score is not None:
                    value = score(record, answer=found["answer"], checks=found["checks"])
                    local_ok = value is not None and value >= threshold
                if local_ok:
                    passed += bool(found["answer"]["passed"])
                else:
                    cloud += 1
                    passed += bool(record.get("cloud_passed"))
            row["routes"][name] = {"pass_at_1": passed / n, "cloud_share": cloud / n}
        out[str(k)] = row
    return out


def format_sampling(data: Mapping[str, Any]) -> list[str]:
    lines = []
    for k, row in data.items():
        lines.append(f"  k={k}: local-only {row['local_only']:.1%}, majority on "
                     f"{row['majority_share']:.1%}, added {row['added_s_mean']:.1f} s/task; "
                     + "; ".join(f"{name} {r['pass_at_1']:.1%} at {r['cloud_share']:.1%} cloud"
                                 for name, r in row["routes"].items()))
    return lines
