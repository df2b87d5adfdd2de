"""The judge, as a plain function of the state: the code checks of the local answer, its
confidence, whether to repair it first, and the route. The graph's ``judge`` node calls it;
the evaluation harness calls it on recorded answers (never the node)."""

from __future__ import annotations

from typing import Any

from router.checks.sandbox import Sandbox
from router.graph import decide, signals
from router.graph.state import RouterState


def run_checks(state: RouterState, text: str, sandbox: Sandbox | None) -> dict[str, Any]:
    """The code checks of ``text`` for this task (:func:`router.checks.answer.check_answer`)."""
    from router.checks.answer import check_answer

    rules = state["policy"]
    return check_answer(state["prompt"], state.get("files") or [], text, sandbox,
                        enabled=rules.execution_checks, timeout_s=rules.execution_timeout_s,
                        system=state.get("system", ""), history=state.get("history") or [])


def judge_answer(state: RouterState, sandbox: Sandbox | None, *,
                 repair_fits: bool = True) -> dict[str, Any]:
    """The state's update from judging its local answer. ``repair_fits``: whether a repair
    turn would fit the local window."""
    from router.graph import repair

    rules = state["policy"]
    local, aborted = state.get("local"), state.get("aborted")
    score = None
    checks: dict[str, Any] = {}
    if local is not None:
        checks = run_checks(state, local.text, sandbox)
        score = decide.judge_score(
            signals.confidence([t.logprob for t in local.logprobs or ()]),
            syntax_errors=checks["syntax_errors"],
            examples_passed=checks.get("execution", {}).get("passed"))
    failed = ((bool(checks.get("execution")) and not checks["execution"]["passed"])
              or checks.get("edit_format", {}).get("passed") is False)
    trigger = repair.trigger(checks) if local is not None else None
    attempts = state.get("local_attempts") or []
    wants_repair = decide.should_repair(policy=rules, trigger=trigger, attempts=len(attempts),
                                        decided=state.get("decision") is not None,
                                        fits=repair_fits,
                                        stalled=bool(attempts) and attempts[-1]["unchanged"])
    verdict = state.get("decision") or decide.after_judge(
        policy=rules, confidence=score, checks_failed=failed, aborted=bool(aborted),
        cloud_allowed=not state.get("privacy"))
    execution = checks.get("execution")
    return {"confidence": score, "checks": checks, "decision": verdict, "auto_decision": verdict,
            "repair": wants_repair,
            "judged": [{"syntax_errors": checks.get("syntax_errors", 0),
                        "examples_passed": None if execution is None else execution["passed"],
                        "confidence": score}],
            "signals": {"confidence": score, "checks": checks,
                        "early_abort": aborted}}
