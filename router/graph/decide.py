"""The one place where signals meet thresholds and routes are chosen: the hard rules before
generation, the judge's score and verdict, whether to repair, where the graph goes next
(shadow mode and privacy included), and the flags a served answer carries."""

from __future__ import annotations

from typing import Any, Literal

from policies.config import PolicyConfig, TaskType
from router.graph.signals import ContextFit
from router.graph.state import Decision, FileRef


def decision(route: str, reason: str, detail: str) -> Decision:
    return {"route": route, "reason": reason, "detail": detail}  # type: ignore[typeddict-item]


def before_generation(
    *, policy: PolicyConfig, forced: str | None, privacy: str | None, task_type: TaskType,
    files: list[FileRef], fit: ContextFit, tools_unsupported: bool = False,
    pinned: str | None = None,
) -> Decision | None:
    """Hard rules, in order: forced route, privacy, a session pinned to the cloud
    (``pinned``: the tier that served the tool exchange this turn continues; a local one is
    tried first anyway), tools the local model cannot take, task type, multi-file, context
    fit. None means: generate locally and let the judge decide."""
    if forced in ("local", "cloud"):
        return decision(forced, "forced", f"the request asked for {forced}")
    if privacy:
        return None  # never the cloud; the local path handles everything (judge flags it)
    if pinned == "cloud":  # the local tier would read the whole conversation cold
        return decision("cloud", "pinned", "the session's tool exchange is served by the "
                        "cloud: a turn within it does not switch tiers (its cache is warm)")
    if tools_unsupported:
        return decision("cloud", "tools", "the turn offers tools and the local model cannot "
                        "call them")
    pinned = policy.task_type_routes.get(task_type)
    if pinned == "cloud":
        return decision("cloud", "task_type", f"policy sends {task_type} tasks to the cloud")
    if len(files) > policy.max_local_files:
        return decision("cloud", "multi_file",
                        f"{len(files)} files > max_local_files {policy.max_local_files}")
    if not fit.fits:
        return decision("cloud", "context",
                        f"needs {fit.needed} tokens > {fit.available} available locally "
                        f"(window {fit.window} - margin {fit.margin})")
    return None


def fits_cloud(prompt_tokens: int, cloud_window: int) -> bool:
    """The prompt must leave the cloud model room for one token at least; how long the answer
    may be is the provider's to cut (as the local tier cuts it)."""
    return prompt_tokens < cloud_window


def should_abort(window_mean: float, tokens: int, policy: PolicyConfig) -> bool:
    return tokens >= policy.early_abort_min_tokens and window_mean < policy.early_abort_floor


def judge_score(confidence: float | None, *, syntax_errors: int,
                examples_passed: bool | None) -> float | None:
    """The judge's score from the logprob confidence and the code checks: code that does not
    parse is not a confident answer (halved); an answer that passes its task's own examples
    is strong evidence (at least 0.9). No logprobs stays None (no evidence)."""
    if confidence is None:
        return None
    if syntax_errors:
        confidence *= 0.5
    if examples_passed:
        confidence = max(confidence, 0.9)
    return confidence


def stays_local(verdict: Decision | None) -> bool:
    """A hard rule kept the task local whatever the judge finds (the request forced it):
    repairing its answer can only help, and the repaired answer keeps that route."""
    return verdict is not None and verdict["route"] == "local" and verdict["reason"] == "forced"


def should_repair(*, policy: PolicyConfig, trigger: str | None, attempts: int, decided: bool,
                  fits: bool, stalled: bool = False) -> bool:
    """Let the local model fix its answer (shown what failed) before anything escalates: when
    the checks found something to fix (``trigger``), rounds are left, no hard rule already
    decided the route (``decided``; the judge does not count one that keeps the task local,
    :func:`stays_local`), the repair turn fits the local window, and the last round changed
    the answer (``stalled``: greedy decoding would only repeat it, the same turn again)."""
    return (trigger is not None and attempts < policy.repair_rounds and not decided and fits
            and not stalled)


def should_sample(*, policy: PolicyConfig, decided: bool, sampled: bool, aborted: bool,
                  examples_ran: bool, has_code: bool, target: bool, sandbox: bool) -> bool:
    """Sampling agreement, once: where k > 1, no hard rule decided the route, the answer is
    code for a function the task defines, and no example of the task could run (examples are
    the stronger evidence), with a sandbox to run the samples in."""
    return (policy.sample_k > 1 and not decided and not sampled and not aborted
            and not examples_ran and has_code and target and sandbox)


def after_judge(
    *, policy: PolicyConfig, confidence: float | None, checks_failed: bool, aborted: bool,
    cloud_allowed: bool, threshold: float | None = None, agreed: bool | None = None,
    weighs_checks: bool = False,
) -> Decision:
    """``threshold``: the judge's own (the learned judge's, else ``confidence_threshold``);
    ``agreed``: whether sampling agreement found a majority (None: it did not run);
    ``weighs_checks``: the judge's score already weighs failed examples (the learned judge),
    so they escalate only below the threshold (an edit in the wrong format always does)."""
    threshold = policy.confidence_threshold if threshold is None else threshold
    if aborted:
        verdict = decision("cloud", "early_abort",
                           f"window confidence fell under {policy.early_abort_floor}")
    elif checks_failed and not (weighs_checks and confidence is not None
                                and confidence >= threshold):
        verdict = decision("cloud", "failed_checks", "the local answer failed the task's checks"
                           + (f" (probability right {confidence:.3f} < {threshold})"
                              if weighs_checks and confidence is not None else ""))
    elif agreed is False:
        verdict = decision("cloud", "disagreement", f"no majority among {policy.sample_k} "
                           "local answers compared by what they do")
    elif confidence is None:
        verdict = decision("cloud", "low_confidence", "no logprobs: no evidence of confidence")
    elif confidence < threshold:
        verdict = decision("cloud", "low_confidence", f"confidence {confidence:.3f} < {threshold}")
    else:
        verdict = decision("local", "confident", f"confidence {confidence:.3f} >= {threshold}")
    if verdict["route"] == "cloud" and not cloud_allowed:
        return decision("local", "privacy", f"kept local by privacy policy ({verdict['reason']})")
    return verdict


def over_budget(*, policy: PolicyConfig, has_local: bool) -> Decision | None:
    """A cloud-bound task whose key has no budget left: keep the local answer where the policy
    allows and there is one; None means refuse (429)."""
    if policy.over_budget == "local" and has_local:
        return decision("local", "budget", "the key's cloud budget for the period is spent; "
                        "the local answer is served")
    return None


# --- where the graph goes next (its edges call these) ------------------------------------

def step_after_policy(verdict: Decision | None, *,
                      shadow: str | None) -> Literal["cloud_generate", "retrieve"]:
    """A hard rule that chose the cloud goes there at once, unless shadow mode serves local
    (then the local path runs and the rule is only recorded)."""
    if verdict and verdict["route"] == "cloud" and shadow != "local":
        return "cloud_generate"
    return "retrieve"


def step_after_judge(*, repair: bool, privacy: str | None, shadow: str | None,
                     decision: Decision | None, sample: bool = False,
                     ) -> Literal["repair", "sample", "cloud_generate", "record"]:
    """Repair first, then sampling agreement (both local, so allowed under any rule);
    privacy never reaches the cloud, not even in shadow mode; shadow mode serves its route
    whatever the judge decided."""
    if repair:
        return "repair"
    if sample:
        return "sample"
    if privacy:
        return "record"
    assert decision is not None, "the judge always decides"
    route = shadow or decision["route"]
    return "cloud_generate" if route == "cloud" else "record"


def step_after_local(decision: Decision | None) -> Literal["judge", "cloud_generate"]:
    """A local tier that did not answer leaves nothing to judge: straight to the cloud."""
    if decision is not None and decision["reason"] == "local_unavailable":
        return "cloud_generate"
    return "judge"


# --- what the route record says about the served answer ----------------------------------

def reported_reason(decision: Decision, *, shadow: str | None) -> str:
    """Shadow mode forced the route, whatever rule fired (the rule is under ``shadow``)."""
    return "forced" if shadow else decision["reason"]


def served_flags(*, final: str, decision: Decision, auto: Decision | None,
                 last_attempt: dict[str, Any] | None) -> list[str]:
    """Flags of a served answer: ``low_confidence`` (the judge would have escalated; privacy
    kept it local), ``served_local_by_shadow``, ``repaired`` (a repair round made the answer
    pass its checks)."""
    flags = []
    if final == "local" and decision["reason"] == "privacy":
        flags.append("low_confidence")
    elif (final == "local" and auto and auto["route"] == "cloud"
          and decision["reason"] not in ("budget", "cloud_unavailable")):
        flags.append("served_local_by_shadow")
    if (final == "local" and last_attempt and last_attempt["examples_passed"] is not False
            and not last_attempt["syntax_errors"] and "local_unavailable" not in last_attempt):
        flags.append("repaired")
    return flags


def cloud_unavailable(*, policy: PolicyConfig, has_local: bool) -> Decision | None:
    """A cloud-bound task whose cloud did not answer (down, erroring, past its timeout, or its
    circuit breaker open): keep the local answer where the policy allows and there is one;
    None means fail with the cloud's error."""
    if policy.cloud_unavailable == "local" and has_local:
        return decision("local", "cloud_unavailable", "the cloud did not answer; the local "
                        "answer is served")
    return None


def kept_local(*, policy: PolicyConfig, privacy: str | None,
               requested_route: str | None) -> str | None:
    """The rule that keeps a task off the cloud when its local tier is down (privacy, the
    request's own ``route: local``, ``local_unavailable: refuse``), or None."""
    if privacy:
        return "privacy policy keeps this task local"
    if requested_route == "local":
        return "the request asked for the local route"
    if policy.local_unavailable == "refuse":
        return "policy local_unavailable is refuse"
    return None


def local_unavailable(*, policy: PolicyConfig, privacy: str | None,
                      requested_route: str | None) -> Decision | None:
    """A task whose local tier did not answer (its server gone or failing): the cloud unless
    a rule keeps it local (:func:`kept_local`); None means fail at once (503)."""
    if kept_local(policy=policy, privacy=privacy, requested_route=requested_route):
        return None
    return decision("cloud", "local_unavailable", "the local tier did not answer")
