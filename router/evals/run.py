"""Run HumanEval problems three ways in one pass and append one JSON line per problem.

Per problem, in order:

1. **local**: the local tier answers the task prompt (greedy, logprobs kept); its code is
   scored with the problem's tests. The router's judge runs on that answer too, giving the
   routing signals: the logprob confidence, the execution checks of the prompt's examples and
   the combined score the router compares with its threshold.
2. **cloud**: the cloud tier (through litellm) answers the identical request; scored.
3. **routed**: the whole graph (``auto``) runs the task. Generations it asks for with a request
   identical to steps 1-2 are replayed from them (see :mod:`router.evals.replay`); everything
   else (intake, policy, early abort, judge, its sandboxed checks) runs live. Routed latency is
   the graph's own time plus the recorded time of the generations it replayed.

Each line keeps ``confidence``, ``local_passed`` and ``cloud_passed`` for ``smallcode
calibrate``. ``confidence`` is the router's score with its threshold-independent escalations
folded in (failed checks, early abort, context and other hard rules give 0.0), so "cloud when
None or below t" reproduces the router's decision at any threshold t > 0.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.base import Generation, GenerationRequest, Message
from policies.config import PolicyConfig
from router.backends import build_cloud, build_local
from router.checks.sandbox import Sandbox
from router.evals.humaneval import Problem, extract_program, score, split_of, task_prompt
from router.evals.replay import ReplayBackend
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task
from router.graph.judge import judge_answer as judge
from router.graph.signals import confidence
from router.runtime import build_context
from router.settings import Settings
from router.standin_demand import cloud_available

# Reasons the graph escalates whatever the confidence threshold is.
THRESHOLD_REASONS = ("confident", "low_confidence")
ANSWER_CHARS = 4000


class EvalError(Exception):
    """The evaluation cannot run as asked; the message says what to do."""


@dataclass
class Harness:
    local: ReplayBackend
    cloud: ReplayBackend
    context: RouterContext
    graph: Any
    rules: PolicyConfig
    max_tokens: int

    @property
    def sandbox(self) -> Sandbox:
        if self.context.sandbox is None:
            raise EvalError("the tests cannot run isolated here: install bubblewrap (Debian: apt "
                            "install bubblewrap), or set checks.allow_unisolated: true")
        return self.context.sandbox


# --- the results file ----------------------------------------------------------------------

def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of a results file; a torn last line (a run killed mid-write) is dropped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "task_id" in record:
            records.append(record)
    return records


def prepare_out(path: Path, resume: bool) -> list[dict[str, Any]]:
    """Records already in ``path`` (when resuming); the file rewritten without torn lines."""
    if not resume:
        if path.exists() and path.stat().st_size:
            raise EvalError(f"{path} already holds results: add --resume to continue it, "
                            "or choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
        return []
    records = read_results(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
    return records


# --- one problem ---------------------------------------------------------------------------

def judge_answer(prompt: str, generation: Generation, rules: PolicyConfig,
                 sandbox: Sandbox) -> dict[str, Any]:
    """The router's judge on an answer: the same function the graph runs."""
    state: dict[str, Any] = {"prompt": prompt, "policy": rules, "local": generation,
                             "aborted": None}
    judged = judge(state, sandbox)  # type: ignore[arg-type]
    checks = judged["checks"]
    execution = checks.get("execution")
    if execution is None:
        examples_score = None
    elif execution["ran"] == 0:
        examples_score = 0.0  # the code did not even run
    else:
        examples_score = (execution["ran"] - execution["failed"]) / execution["ran"]
    logprobs = [t.logprob for t in generation.logprobs or ()]
    return {
        "logprob_confidence": confidence(logprobs),
        "examples_score": examples_score,
        "examples": None if execution is None else {
            k: execution[k] for k in ("passed", "ran", "failed")},
        "syntax_errors": checks["syntax_errors"],
        "router_score": judged["confidence"],
        "checks_failed": bool(execution) and not execution["passed"],
    }


def effective_confidence(signals: dict[str, Any], record: dict[str, Any]) -> float | None:
    """The score for "cloud when None or below t": 0.0 where the router escalates whatever
    the threshold (failed checks; a hard rule or an early abort in the routed run)."""
    if signals["checks_failed"]:
        return 0.0
    if record["final"] == "cloud" and record["reason"] not in THRESHOLD_REASONS:
        return 0.0
    score: float | None = signals["router_score"]
    return score


def _tier(problem: Problem, generation: Generation, sandbox: Sandbox) -> dict[str, Any]:
    started = time.perf_counter()
    result = score(problem, extract_program(problem, generation.text), sandbox)
    return {
        "answer": generation.text[:ANSWER_CHARS],
        "passed": result.passed,
        "detail": result.detail[:300],
        "finish_reason": generation.finish_reason,
        "tokens": {"prompt": generation.usage.prompt_tokens,
                   "completion": generation.usage.completion_tokens},
        "latency_ms": round(generation.timings.total_ms, 1),
        "cost_usd": generation.cost_usd,
        "score_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def evaluate(problem: Problem, harness: Harness) -> dict[str, Any]:
    prompt = task_prompt(problem)
    request = GenerationRequest(messages=(Message("user", prompt),),
                                max_tokens=harness.max_tokens)
    harness.local.forget()
    harness.cloud.forget()

    local_gen = harness.local.generate(request)
    sandbox = harness.sandbox
    local = _tier(problem, local_gen, sandbox)
    signals = judge_answer(prompt, local_gen, harness.rules, sandbox)

    cloud_gen = harness.cloud.generate(request)
    cloud = _tier(problem, cloud_gen, sandbox)

    replays_before = (harness.local.replays, harness.cloud.replays)
    ms_before = harness.local.replayed_ms + harness.cloud.replayed_ms
    started = time.perf_counter()
    answer = run_task(harness.graph, {"prompt": prompt, "max_tokens": harness.max_tokens},
                      harness.context)
    graph_ms = (time.perf_counter() - started) * 1000
    replayed_ms = harness.local.replayed_ms + harness.cloud.replayed_ms - ms_before
    record = answer.record
    if answer.text == local_gen.text:
        routed_passed, routed_detail = local["passed"], local["detail"]
    elif answer.text == cloud_gen.text:
        routed_passed, routed_detail = cloud["passed"], cloud["detail"]
    else:  # a generation that was not replayed: score it
        result = score(problem, extract_program(problem, answer.text), sandbox)
        routed_passed, routed_detail = result.passed, result.detail[:300]
    routed = {
        "answer": answer.text[:ANSWER_CHARS] if answer.text not in (local_gen.text,
                                                                   cloud_gen.text) else None,
        "same_as": ("local" if answer.text == local_gen.text else
                    "cloud" if answer.text == cloud_gen.text else None),
        "passed": routed_passed,
        "detail": routed_detail,
        "route": record["final"],
        "reason": record["reason"],
        "escalated": record["escalated"],
        "confidence": record["confidence"],
        "threshold": record["threshold"],
        "tokens": record["tokens"],
        "cost_usd": record["cost_usd"],
        "counterfactual_cost_usd": record["counterfactual_cost_usd"],
        "latency_ms": round(graph_ms + replayed_ms, 1),
        "graph_ms": round(graph_ms, 1),
        "replayed": {"local": harness.local.replays - replays_before[0],
                     "cloud": harness.cloud.replays - replays_before[1]},
        "execution": record["signals"].get("checks", {}).get("execution"),
    }
    return {
        "task_id": problem.task_id,
        "split": split_of(problem.task_id),
        "confidence": effective_confidence(signals, record),
        "local_passed": local["passed"],
        "cloud_passed": cloud["passed"],
        "routed_passed": routed_passed,
        "signals": signals,
        "local": local,
        "cloud": cloud,
        "routed": routed,
        "max_tokens": harness.max_tokens,
        "models": record["models"],
    }


# --- the run -------------------------------------------------------------------------------

def _rates(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    n = len(records) or 1
    rates = {m: f"{sum(r[f'{m}_passed'] for r in records) / n:.0%}"
             for m in ("local", "cloud", "routed")}
    rates["cloud%"] = f"{sum(r['routed']['route'] == 'cloud' for r in records) / n:.0%}"
    return rates


def run(problems: Sequence[Problem], *, settings: Settings, out: Path, resume: bool,
        max_tokens: int, progress: bool = True,
        log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate ``problems`` into ``out``; return the records of these problems (those done
    before, when resuming, included)."""
    done = {r["task_id"]: r for r in prepare_out(out, resume)}
    wanted = {p.task_id for p in problems}
    records = [r for r in done.values() if r["task_id"] in wanted]
    todo = [p for p in problems if p.task_id not in done]
    if resume and done:
        log(f"resuming: {len(records)} of {len(problems)} problems already in {out}")
    if not todo:
        return records
    with cloud_available(settings, log):
        local = ReplayBackend(build_local(settings), record_streams=True)
        try:
            # Page the weights in first, so the first problem's latency is not the disk's.
            local.inner.generate(GenerationRequest(messages=(Message("user", "hi"),),
                                                   max_tokens=1))
            cloud = ReplayBackend(build_cloud(settings))
            harness = Harness(local, cloud, build_context(settings, local, cloud),
                              build_graph(), settings.policies.for_team(None), max_tokens)
            bar = tqdm(todo, desc="humaneval", unit="problem", disable=not progress,
                       dynamic_ncols=True)
            with out.open("a", encoding="utf-8") as sink:
                for problem in bar:
                    record = evaluate(problem, harness)
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
                    records.append(record)
                    bar.set_postfix(_rates(records))
        finally:
            local.close()
    return records
