"""The judge, as a plain function of the state: the code checks of the local answer, its
confidence, whether to repair it first, and the route. The graph's ``judge`` node calls it;
the evaluation harness calls it on recorded answers (never the node)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.base import Generation
from router.checks.answer import check_answer
from router.checks.sandbox import Sandbox
from router.graph import agreement, decide, judge_model, repair, signals, tool_calls
from router.graph.state import RouterState


def run_checks(state: RouterState, text: str, sandbox: Sandbox | None,
               modules: Mapping[str, frozenset[str]] | None = None) -> dict[str, Any]:
    """The code checks of ``text`` for this task (:func:`router.checks.answer.check_answer`);
    ``modules``: the task's indexed repository's symbol table, for its imports."""
    rules = state["policy"]
    return check_answer(state["prompt"], state.get("files") or [], text, sandbox,
                        enabled=rules.execution_checks, timeout_s=rules.execution_timeout_s,
                        system=state.get("system", ""), history=state.get("history") or [],
                        modules=modules)


def score_answer(state: RouterState, local: Generation, checks: dict[str, Any],
                 rounds: int) -> dict[str, Any]:
    """Which judge scores the answer, its score (the learned judge: the probability that the
    answer is right) and the threshold it is compared with; None without logprobs. The
    learned judge's features are recorded whichever judge decides, so that the labels clients
    post on their tasks can fit one (`smallcode calibrate --fit --from-feedback`)."""
    rules = state["policy"]
    execution = checks.get("execution")
    entries = local.logprobs or ()
    values = judge_model.features(
        logprob=judge_model.logprob_features([t.logprob for t in entries],
                                             [[a.logprob for a in t.top] for t in entries]),
        syntax_errors=checks["syntax_errors"], code_blocks=checks["code_blocks"],
        examples=execution, repair_rounds=rounds, task_type=state.get("task_type"),
        prompt_tokens=state.get("prompt_tokens", 0), files=len(state.get("file_refs") or []))
    recorded = None if values is None else {k: round(v, 4) for k, v in values.items()}
    if rules.judge_model is None:
        score = decide.judge_score(
            signals.confidence([t.logprob for t in entries]),
            syntax_errors=checks["syntax_errors"],
            examples_passed=None if execution is None else execution["passed"])
        return {"name": "fixed", "probability": score, "threshold": rules.confidence_threshold,
                "features": recorded}
    model = judge_model.load(rules.judge_model)
    threshold = model.threshold if rules.judge_threshold is None else rules.judge_threshold
    return {"name": "learned", "model": rules.judge_model,
            "probability": None if values is None else model.probability(values),
            "threshold": threshold, "features": recorded}


def judge_answer(state: RouterState, sandbox: Sandbox | None, *,
                 repair_fits: bool = True,
                 modules: Mapping[str, frozenset[str]] | None = None) -> dict[str, Any]:
    """The state's update from judging its local answer. ``repair_fits``: whether a repair
    turn would fit the local window; ``modules``: see :func:`run_checks`."""
    rules = state["policy"]
    local, aborted = state.get("local"), state.get("aborted")
    attempts = state.get("local_attempts") or []
    checks: dict[str, Any] = {}
    scored: dict[str, Any] = {"name": "fixed" if rules.judge_model is None else "learned",
                              "probability": None, "threshold": rules.confidence_threshold}
    if local is not None:
        checks = run_checks(state, local.text, sandbox, modules)
        if state.get("tools") or local.tool_calls:  # an agent's turn: its calls must be valid
            checks["tool_calls"] = tool_calls.check(local.tool_calls, state.get("tools") or [],
                                                    state.get("tool_choice"))
        scored = score_answer(state, local, checks, len(attempts))
    score = scored["probability"]
    examples_failed = bool(checks.get("execution")) and not checks["execution"]["passed"]
    format_failed = (checks.get("edit_format", {}).get("passed") is False
                     or checks.get("tool_calls", {}).get("passed") is False)
    trigger = repair.trigger(checks) if local is not None else None
    sampled = state.get("agreement")
    decided = state.get("decision") is not None
    wants_repair = sampled is None and decide.should_repair(
        policy=rules, trigger=trigger, attempts=len(attempts),
        decided=decided and not decide.stays_local(state.get("decision")),
        fits=repair_fits, stalled=bool(attempts) and attempts[-1]["unchanged"])
    wants_sample = not wants_repair and decide.should_sample(
        policy=rules, decided=decided, sampled=sampled is not None, aborted=bool(aborted),
        examples_ran="execution" in checks, has_code=bool(checks.get("code_blocks")),
        target=local is not None and agreement.target_function(state["prompt"]) is not None,
        sandbox=sandbox is not None)
    verdict = state.get("decision") or decide.after_judge(
        policy=rules, confidence=score, threshold=scored["threshold"],
        checks_failed=examples_failed or format_failed, aborted=bool(aborted),
        cloud_allowed=not state.get("privacy"),
        agreed=None if sampled is None or sampled["majority"] is None
        else bool(sampled["majority"]),
        weighs_checks=scored["name"] == "learned" and not format_failed)
    execution = checks.get("execution")
    return {"confidence": score, "checks": checks, "decision": verdict, "auto_decision": verdict,
            "repair": wants_repair, "sample": wants_sample, "judge": scored,
            "judged": [{"syntax_errors": checks.get("syntax_errors", 0),
                        "examples_passed": None if execution is None else execution["passed"],
                        "confidence": score}],
            "signals": {"confidence": score, "checks": checks,
                        "early_abort": aborted}}
