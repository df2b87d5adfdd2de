"""Record what the learned judge and sampling agreement need, once, so nobody regenerates.

Per problem of a problem set (HumanEval, or the edge-case set of :mod:`router.evals.edgecases`),
one JSON line:

- ``local``: the local tier's greedy answer to the task prompt (the request the router sends),
  its per-token logprobs and top-k alternatives (rounded, compact), tokens, time, and its
  hidden-test outcome; with ``recorded`` (an ``eval humaneval`` results file), the answer
  recorded there, its logprobs by teacher forcing (one forward pass, no decoding);
- ``checks``: the router's code checks of that answer (syntax, the task's examples);
- ``cloud`` (with ``cloud=True``): the cloud tier's answer to the identical request, scored;
- ``samples`` (with ``samples=n``): n more local answers at ``temperature``, scored, with
  their logprobs, for sampling agreement (k = 1 + n at most).

The learned judge's features are derived from these records
(:func:`router.graph.judge_features.features_from_record`), so a new feature needs no new run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.base import Backend, Generation, GenerationRequest, Message, Timings, Usage
from policies.config import PolicyConfig
from router.checks.answer import check_answer
from router.checks.sandbox import Sandbox
from router.evals.humaneval import Problem, extract_program, score, split_of, task_prompt
from router.graph import repair

Record = dict[str, Any]
DIGITS = 4


def compact_logprobs(generation: Generation) -> dict[str, Any]:
    """The chosen tokens' logprobs and their top-k alternatives' logprobs, rounded."""
    entries = generation.logprobs or ()
    return {"lp": [round(e.logprob, DIGITS) for e in entries],
            "top": [[round(a.logprob, DIGITS) for a in e.top] for e in entries]}


def _answer(problem: Problem, generation: Generation, sandbox: Sandbox) -> Record:
    result = score(problem, extract_program(problem, generation.text), sandbox)
    return {"answer": generation.text, "passed": result.passed, "detail": result.detail[:200],
            "finish_reason": generation.finish_reason,
            "tokens": {"prompt": generation.usage.prompt_tokens,
                       "completion": generation.usage.completion_tokens},
            "latency_ms": round(generation.timings.total_ms, 1),
            "cost_usd": generation.cost_usd}


def checks_of(prompt: str, text: str, rules: PolicyConfig, sandbox: Sandbox) -> Record:
    """The router's checks of an answer, as the judge runs them."""
    checks = check_answer(prompt, [], text, sandbox, enabled=rules.execution_checks,
                          timeout_s=rules.execution_timeout_s)
    execution = checks.get("execution")
    return {"syntax_errors": checks["syntax_errors"], "code_blocks": checks["code_blocks"],
            "examples": None if execution is None else {
                k: execution[k] for k in ("passed", "ran", "failed")}}


def scored(local: Any, request: GenerationRequest, recorded: Record) -> Generation:
    """A recorded local answer with its logprobs by teacher forcing
    (:meth:`agents.local.LocalBackend.score`): greedy decoding's answer, not decoded again."""
    tier = recorded["local"]
    return Generation(text=tier["answer"], model=local.model_name,
                      finish_reason=tier["finish_reason"],
                      usage=Usage(tier["tokens"]["prompt"], tier["tokens"]["completion"]),
                      timings=Timings(total_ms=tier["latency_ms"]),
                      logprobs=local.score(request, tier["answer"]))


def record_problem(problem: Problem, *, local: Backend, cloud: Backend | None,
                   sandbox: Sandbox, rules: PolicyConfig, samples: int, temperature: float,
                   max_tokens: int, set_name: str, recorded: Record | None = None) -> Record:
    prompt = task_prompt(problem)
    request = GenerationRequest(messages=(Message("user", prompt),), max_tokens=max_tokens)
    generation = (scored(local, request, recorded) if recorded is not None
                  else local.generate(request))
    record: Record = {"task_id": problem.task_id, "set": set_name,
                      "teacher_forced": recorded is not None,
                      "split": split_of(problem.task_id),
                      "local": {**_answer(problem, generation, sandbox),
                                **compact_logprobs(generation)},
                      "checks": checks_of(prompt, generation.text, rules, sandbox)}
    if samples:
        sampled = GenerationRequest(messages=request.messages, max_tokens=max_tokens,
                                    temperature=temperature)
        record["samples"] = []
        record["temperature"] = temperature
        for _ in range(samples):
            one = local.generate(sampled)
            record["samples"].append({**_answer(problem, one, sandbox), **compact_logprobs(one)})
    if cloud is not None:
        record["cloud"] = _answer(problem, cloud.generate(request), sandbox)
    return record


def read_records(path: Path) -> dict[str, Record]:
    """Records by task id; a torn last line (a run killed mid-write) is dropped."""
    found: dict[str, Record] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "task_id" in record:
            found[record["task_id"]] = record
    return found


def run(problems: Sequence[Problem], *, local: Backend, cloud: Backend | None,
        sandbox: Sandbox, rules: PolicyConfig, out: Path, samples: int = 0,
        temperature: float = 0.7, max_tokens: int = 512, set_name: str = "humaneval",
        recorded: dict[str, Record] | None = None,
        log: Callable[[str], None] = print) -> list[Record]:
    """Record every problem not yet in ``out`` (resumable: rerun the same command).
    ``recorded``: results of ``eval humaneval`` by task id, whose local answers are scored
    by teacher forcing instead of being decoded again."""
    done = read_records(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in done.values()), encoding="utf-8")
    todo = [p for p in problems if p.task_id not in done]
    log(f"{len(done)} recorded, {len(todo)} to go")
    with out.open("a", encoding="utf-8") as sink:
        for index, problem in enumerate(todo, start=1):
            started = time.perf_counter()
            record = record_problem(problem, local=local, cloud=cloud, sandbox=sandbox,
                                    rules=rules, samples=samples, temperature=temperature,
                                    max_tokens=max_tokens, set_name=set_name,
                                    recorded=(recorded or {}).get(problem.task_id))
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            done[problem.task_id] = record
            log(f"[{index}/{len(todo)}] {problem.task_id} local "
                f"{'pass' if record['local']['passed'] else 'fail'} "
                f"({time.perf_counter() - started:.1f} s)")
    return [done[p.task_id] for p in problems if p.task_id in done]


def score_repairs(problems: Sequence[Problem], repairs: dict[str, Record], *, local: Any,
                  sandbox: Sandbox, rules: PolicyConfig, out: Path, rounds: int = 2,
                  log: Callable[[str], None] = print) -> list[Record]:
    """The logprobs of recorded repair rounds (``eval repair`` records), by teacher forcing:
    each round's request is rebuilt as the graph builds it (the task, and what the previous
    answer's checks found), and its recorded answer scored; its checks run again. One line
    per problem with rounds: ``{"task_id", "split", "rounds": [{"lp", "top", "checks",
    "passed", "tokens"}]}``, up to ``rounds`` rounds."""
    done = read_records(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink:
        for problem in problems:
            recorded = repairs.get(problem.task_id)
            if recorded is None or not recorded["rounds"] or problem.task_id in done:
                continue
            prompt = task_prompt(problem)
            task = [Message("user", prompt)]
            answer = recorded["initial_answer"]
            scored_rounds = []
            for entry in recorded["rounds"][:rounds]:
                checks = check_answer(prompt, [], answer, sandbox, enabled=True,
                                      timeout_s=rules.execution_timeout_s)
                request = GenerationRequest(messages=tuple(repair.messages(task, answer, checks)),
                                            max_tokens=512)
                entries = local.score(request, entry["answer"])
                answer = entry["answer"]
                scored_rounds.append({
                    "lp": [round(e.logprob, DIGITS) for e in entries],
                    "top": [[round(a.logprob, DIGITS) for a in e.top] for e in entries],
                    "checks": checks_of(prompt, answer, rules, sandbox),
                    "passed": bool(entry["tests_passed"]),
                    "tokens": {"prompt": entry["prompt_tokens"],
                               "completion": entry["completion_tokens"]},
                    "ms": entry["ms"],
                    # the rebuilt request ends as the recorded one did: same turn, same answer
                    "request_matches": request.messages[-1].content[-600:] == entry["feedback"]})
            record = {"task_id": problem.task_id, "split": recorded["split"],
                      "rounds": scored_rounds}
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            done[problem.task_id] = record
            log(f"{problem.task_id}: {len(scored_rounds)} round(s) scored")
    return list(done.values())
