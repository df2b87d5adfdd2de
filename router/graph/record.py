"""The route record: why a task went where it went, what it cost, what cloud would have cost."""

from __future__ import annotations

from typing import Any

from agents.base import Generation
from router.graph import decide
from router.graph.state import RouterState


def build_record(state: RouterState, *, price: Any, models: dict[str, str]) -> dict[str, Any]:
    """``price(prompt_tokens, completion_tokens) -> USD`` prices at the configured cloud model."""
    local, cloud = state.get("local"), state.get("cloud")
    decision = state["decision"]
    assert decision is not None, "the judge always decides"
    auto = state.get("auto_decision") or decision
    rules = state["policy"]
    final = "cloud" if cloud is not None else "local"
    answer = cloud or local
    prompt_tokens = state["prompt_tokens"]
    local_completion = local.usage.completion_tokens if local else 0
    aborted = state.get("aborted")
    if aborted:
        local_completion = aborted["after_tokens"]
    completion = answer.usage.completion_tokens if answer else 0
    cloud_prompt = cloud.usage.prompt_tokens if cloud else prompt_tokens
    attempts = local_attempts(state)
    flags = decide.served_flags(final=final, decision=decision, auto=auto,
                                last_attempt=attempts[-1] if attempts else None)
    record: dict[str, Any] = {
        "final": final,
        "escalated": final == "cloud" and (local is not None or aborted is not None),
        "reason": decide.reported_reason(decision, shadow=rules.shadow_route),
        "detail": decision["detail"],
        "confidence": state.get("confidence"),
        "threshold": (state.get("judge") or {}).get("threshold", rules.confidence_threshold),
        "judge": {k: v for k, v in (state.get("judge") or {}).items() if k != "features"},
        "signals": {
            **state.get("signals", {}),
            "thresholds": {
                "confidence": rules.confidence_threshold,
                "early_abort_floor": rules.early_abort_floor,
                "max_local_files": rules.max_local_files,
                "context_available": state.get("signals", {}).get("context", {}).get("available"),
            },
        },
        "task_type": state.get("task_type"),
        "task_type_source": state.get("task_type_source"),
        "files": state.get("file_refs", []),
        # what retrieval put in the local prompt: path, symbol, lines, score, tokens
        "snippets": state.get("snippets_used", []),
        "tokens": {
            "prompt": prompt_tokens,
            "snippets": state.get("snippet_tokens", 0),
            "completion": completion,
            "local_completion": local_completion,
            "saved_by_early_abort": aborted["saved_tokens"] if aborted else 0,
            "repair_prompt": sum(a["prompt_tokens"] for a in attempts),
            "repair_completion": sum(a["completion_tokens"] for a in attempts),
            "sample_completion": (state.get("agreement") or {}).get("completion_tokens", 0),
            # the prompt as the cloud counted it (what it bills), and of those, the tokens
            # read from and written to its prompt cache
            "cloud_prompt": cloud.usage.prompt_tokens if cloud else 0,
            "cloud_cache_read": cloud.usage.cache_read_tokens if cloud else 0,
            "cloud_cache_write": cloud.usage.cache_write_tokens if cloud else 0,
        },
        "local_attempts": attempts,
        "agreement": state.get("agreement"),
        "timings_ms": {k: round(v, 2) for k, v in state.get("timings_ms", {}).items()},
        "models": {"local": models["local"], "cloud": models["cloud"],
                   "priced_as": models["price_as"]},
        "finish_reason": answer.finish_reason if answer else None,
        # The local answer's prompt tokens its engine took from its cache (a conversation's
        # earlier turns, kept in llama-server's slot); None where the engine does not say
        # (in-process chat) or nothing ran locally.
        "cached_prompt_tokens": local_cached(local),
        "local_server": local.extra.get("local_server") if local else None,
        "cost_usd": cloud.cost_usd if cloud else 0.0,
        # All-cloud: the cloud's own call when it ran (its prompt-cache reads and writes
        # priced as they were); else the same prompt and the local answer's length, at list
        # price (no cache assumed).
        "counterfactual_cost_usd": (
            cloud.cost_usd if cloud is not None and cloud.cost_usd is not None
            else price(cloud_prompt, completion if cloud else local_completion)),
        "flags": flags,
        "notes": state.get("context_notes", []),
    }
    if state.get("redactions"):
        record["redactions"] = state["redactions"]
    if "conversation" in state:  # an agent's turn: its session, its tools and calls
        record["agent"] = agent_turn(state, answer)
    features = (state.get("judge") or {}).get("features")
    if features:  # what the learned judge saw: feedback on this task can refit it
        record["signals"]["judge_features"] = features
    if rules.shadow_route:
        record["shadow"] = {"served": rules.shadow_route, "auto_route": auto["route"],
                            "auto_reason": auto["reason"]}
    return record


def agent_turn(state: RouterState, answer: Generation | None) -> dict[str, Any]:
    """An agent's turn: its ``session``, whether the session's tool exchange ``pinned`` its
    tier, the tools offered, the hosted tools left out (no tier runs them) and the calls
    the served answer makes."""
    return {"session": state.get("session"), "pinned": state.get("pinned"),
            "tools": [t.get("function", {}).get("name") for t in state.get("tools") or []],
            "hosted_tools_left_out": list(state.get("hosted_tools") or []),
            "calls": [call.name for call in answer.tool_calls] if answer else []}


def local_cached(local: Generation | None) -> int | None:
    cached = local.extra.get("cached_prompt_tokens") if local else None
    return cached if isinstance(cached, int) else None


def local_attempts(state: RouterState) -> list[dict[str, Any]]:
    """Each repair round: why, its tokens and time, and what the judge then found (the judge
    pass after round n is the n+1-th)."""
    judged = state.get("judged") or []
    attempts = []
    for index, attempt in enumerate(state.get("local_attempts") or []):
        after = judged[index + 1] if index + 1 < len(judged) else {}
        attempts.append({**attempt, "examples_passed": after.get("examples_passed"),
                         "syntax_errors": after.get("syntax_errors")})
    return attempts
