"""The committed HumanEval records as generations to replay (:class:`router.evals.replay.ReplayBackend`).

Three records hold every generation the routed graph asks for on a HumanEval problem, each
with what the judge reads:

- the local tier's greedy answer to the task prompt: its text, tokens and time in
  ``docs/humaneval-results.jsonl``, its per-token logprobs and top-2 alternatives (by teacher
  forcing, rounded to 4 digits) in ``docs/humaneval-features.jsonl``;
- the cloud tier's answer to the identical request (``docs/humaneval-results.jsonl``; the judge
  reads no cloud logprobs);
- the local repair rounds (``docs/humaneval-repair.jsonl`` and ``-calibrate.jsonl``: text,
  tokens, time) with their
  logprobs (``docs/humaneval-repair-features.jsonl``), two rounds at most, only those whose
  request was rebuilt word for word when they were scored (``request_matches``).

Each generation is keyed by the request the graph sends: the task prompt (``max_tokens``), and
for a repair round :func:`router.graph.repair.messages` over the previous answer's checks,
run again here in the sandbox. The graph replays a generation only for an identical request;
any other request runs live. What the records lack: token texts (a replayed stream carries the
whole text on its first token, so an early abort would cut nothing: none fired in the recorded
run) and a repair round's finish reason (``length`` when it used every token allowed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.base import (
    Alternative,
    FinishReason,
    Generation,
    GenerationRequest,
    Message,
    Timings,
    TokenLogprob,
    Usage,
)
from policies.config import PolicyConfig
from router.checks.answer import check_answer
from router.checks.sandbox import Sandbox
from router.evals import features
from router.evals.humaneval import Problem, task_prompt
from router.graph import repair

Record = dict[str, Any]
#: Repair rounds with logprobs in the records (``eval features --repairs`` scores two).
ROUNDS = 2


@dataclass(frozen=True)
class Paths:
    results: Path = Path("docs/humaneval-results.jsonl")
    features: Path = Path("docs/humaneval-features.jsonl")
    repairs: tuple[Path, ...] = (Path("docs/humaneval-repair.jsonl"),
                                 Path("docs/humaneval-repair-calibrate.jsonl"))
    repair_features: Path = Path("docs/humaneval-repair-features.jsonl")


@dataclass
class Recordings:
    """Generations by request, per tier; ``missing``: what could not be rebuilt, and why."""

    local: dict[GenerationRequest, Generation] = field(default_factory=dict)
    cloud: dict[GenerationRequest, Generation] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def logprobs(lp: Sequence[float], top: Sequence[Sequence[float]]) -> tuple[TokenLogprob, ...]:
    """Recorded logprobs as the backend gives them (no token texts: the judge reads none)."""
    return tuple(TokenLogprob("", value, tuple(Alternative("", a) for a in alternatives))
                 for value, alternatives in zip(lp, top, strict=True))


def _generation(text: str, model: str, finish: FinishReason, prompt_tokens: int,
                completion_tokens: int, ms: float, *, lp: Sequence[float] | None = None,
                top: Sequence[Sequence[float]] | None = None,
                cost_usd: float = 0.0) -> Generation:
    return Generation(text=text, model=model, finish_reason=finish,
                      usage=Usage(prompt_tokens, completion_tokens),
                      timings=Timings(total_ms=ms),
                      logprobs=None if lp is None else logprobs(lp, top or [[]] * len(lp)),
                      cost_usd=cost_usd)


def load(problems: Sequence[Problem], *, paths: Paths, sandbox: Sandbox, rules: PolicyConfig,
         max_tokens: int) -> Recordings:
    """The recorded generations of ``problems`` (see the module's docstring)."""
    from router.evals.run import read_results  # deferred on purpose: run loads the graph

    results = {r["task_id"]: r for r in read_results(paths.results)}
    scored = features.read_records(paths.features)
    rounds = {task: record for path in paths.repairs
              for task, record in features.read_records(path).items()}
    rounds_scored = features.read_records(paths.repair_features)
    found = Recordings()
    for problem in problems:
        task = problem.task_id
        result, local = results.get(task), scored.get(task)
        if result is None or local is None or local["local"]["answer"] != result["local"]["answer"]:
            found.missing.append(f"{task}: no recorded local answer with logprobs")
            continue
        prompt = task_prompt(problem)
        request = GenerationRequest(messages=(Message("user", prompt),), max_tokens=max_tokens)
        models = result["models"]
        tier = local["local"]
        found.local[request] = _generation(
            tier["answer"], models["local"], tier["finish_reason"], tier["tokens"]["prompt"],
            tier["tokens"]["completion"], result["local"]["latency_ms"], lp=tier["lp"],
            top=tier["top"])
        cloud = result["cloud"]
        found.cloud[request] = _generation(
            cloud["answer"], models["cloud"], cloud["finish_reason"], cloud["tokens"]["prompt"],
            cloud["tokens"]["completion"], cloud["latency_ms"], cost_usd=cloud["cost_usd"])
        _repairs(found, problem, tier["answer"], rounds.get(task), rounds_scored.get(task),
                 model=models["local"], sandbox=sandbox, rules=rules, max_tokens=max_tokens)
    return found


def _repairs(found: Recordings, problem: Problem, answer: str, recorded: Record | None,
             scored: Record | None, *, model: str, sandbox: Sandbox, rules: PolicyConfig,
             max_tokens: int) -> None:
    """The repair rounds of one problem, each keyed by the request rebuilt from the answer
    before it, as the graph's repair node builds it."""
    if not recorded or not recorded["rounds"]:
        return
    prompt = task_prompt(problem)
    task = [Message("user", prompt)]
    with_lp: Sequence[Mapping[str, Any]] = (scored or {}).get("rounds", [])
    for index, entry in enumerate(recorded["rounds"][:ROUNDS]):
        if index >= len(with_lp) or not with_lp[index]["request_matches"]:
            found.missing.append(f"{problem.task_id}: repair round {index + 1} has no "
                                 "logprobs for its request")
            return
        checks = check_answer(prompt, [], answer, sandbox, enabled=rules.execution_checks,
                              timeout_s=rules.execution_timeout_s)
        request = GenerationRequest(messages=tuple(repair.messages(task, answer, checks)),
                                    max_tokens=max_tokens)
        tokens = entry["completion_tokens"]
        found.local[request] = _generation(
            entry["answer"], model, "length" if tokens >= max_tokens else "stop",
            entry["prompt_tokens"], tokens, entry["ms"], lp=with_lp[index]["lp"],
            top=with_lp[index]["top"])
        answer = entry["answer"]
