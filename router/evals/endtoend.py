"""The routed rows run end to end: the whole graph, with the policy under test, on a HumanEval
half, beside the figure BENCHMARKS.md simulates from the records for the same policy.

Per problem the graph runs the task prompt as a client's task would run (intake, policy,
local generation, the judge and its sandboxed checks, repair rounds, the cloud through
litellm), and the answer it serves is scored with the problem's hidden tests. Generations
come from one of two places:

- ``live``: every generation is decoded now (the local model in-process, the cloud stand-in
  over HTTP); latency is the graph's wall time;
- ``replay``: a generation whose request is identical to a recorded one is replayed from the
  committed records (:mod:`router.evals.recorded`), any other runs live; latency is the
  graph's wall time plus the recorded time of what it replayed (recorded on a busy machine).

The simulated figure applies the policy's rule to the same records
(:func:`router.evals.judges.with_repair`, the fixed or learned score at the policy's
threshold), so a problem whose route or outcome differs between the two is a place where the
simulation does not describe the graph (or, live, where decoding did not give the recorded
answer); :func:`summary` lists each one.

One JSON line per problem; a run resumes where ``--out`` stops, and refuses a file written
with another policy or mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agents.base import GenerationRequest, Message
from policies.config import PolicyConfig
from router.backends import build_cloud, build_local
from router.checks.sandbox import open_sandbox
from router.evals import bootstrap, features, judge_tables, judges, recorded
from router.evals.humaneval import Problem, extract_program, score, split_of, task_prompt
from router.evals.replay import ReplayBackend
from router.evals.run import EvalError, read_results
from router.graph import judge_model
from router.graph.graph import build_graph, run_task
from router.runtime import build_context
from router.settings import Settings
from router.standin_demand import cloud_available

Record = dict[str, Any]
Mode = Literal["live", "replay"]
ANSWER_CHARS = 4000


# --- the policy under test and its simulation ----------------------------------------------

def policy_key(rules: PolicyConfig, mode: Mode) -> dict[str, Any]:
    """What a results line is a result of (a resumed run must match it)."""
    learned = rules.judge_model is not None
    threshold = rules.confidence_threshold
    if rules.judge_model is not None:
        threshold = (judge_model.load(rules.judge_model).threshold
                     if rules.judge_threshold is None else rules.judge_threshold)
    return {"judge": "learned" if learned else "fixed", "judge_model": rules.judge_model,
            "threshold": round(float(threshold), 4), "repair_rounds": rules.repair_rounds,
            "mode": mode}


def simulated(rules: PolicyConfig, paths: judge_tables.Paths | None = None) -> dict[str, Record]:
    """Per HumanEval problem, the route and outcome BENCHMARKS.md's simulation gives this
    policy: the recorded answer, repaired as the records allow up to ``repair_rounds``, scored
    by the policy's judge at its threshold; escalated: the recorded cloud answer."""
    paths = paths or judge_tables.Paths()
    records = judge_tables.humaneval_records(paths, judge_tables.prompts())
    if rules.repair_rounds:
        records = judges.with_repair(records, features.read_records(paths.repairs),
                                     allowed=rules.repair_rounds)
    if rules.judge_model is None:
        score_of: judges.Score = judges.fixed_score
        threshold = rules.confidence_threshold
    else:
        model = judge_model.load(rules.judge_model)
        score_of = judges.learned_score(model)
        threshold = model.threshold if rules.judge_threshold is None else rules.judge_threshold
    found = {}
    for record in records:
        value = score_of(record)
        cloud = value is None or value < threshold
        found[record["task_id"]] = {
            "route": "cloud" if cloud else "local",
            "passed": bool(record["cloud_passed"] if cloud else record["local"]["passed"]),
            "cloud_passed": bool(record["cloud_passed"]),
            "repair_rounds": record.get("repair_rounds", 0), "score": value}
    return found


# --- one problem -----------------------------------------------------------------------------

@dataclass
class Harness:
    local: ReplayBackend
    cloud: ReplayBackend
    context: Any
    graph: Any
    max_tokens: int


def evaluate(problem: Problem, harness: Harness, expected: Record | None,
             key: Mapping[str, Any]) -> Record:
    """Run the problem through the graph; score what it serves."""
    harness.local.forget()
    harness.cloud.forget()
    started = time.perf_counter()
    answer = run_task(harness.graph, {"prompt": task_prompt(problem),
                                      "max_tokens": harness.max_tokens}, harness.context)
    graph_ms = (time.perf_counter() - started) * 1000
    replayed_ms = harness.local.replayed_ms + harness.cloud.replayed_ms
    sandbox = harness.context.sandbox
    if sandbox is None:
        raise EvalError("the tests cannot run isolated here: install bubblewrap")
    result = score(problem, extract_program(problem, answer.text), sandbox)
    record = answer.record
    attempts = record.get("local_attempts") or []
    return {
        "task_id": problem.task_id, "split": split_of(problem.task_id), "policy": dict(key),
        "route": record["final"], "reason": record["reason"], "passed": result.passed,
        "detail": result.detail[:300], "confidence": record["confidence"],
        "threshold": record["threshold"], "repair_rounds": len(attempts),
        "repair_ms": [a["ms"] for a in attempts],
        "latency_ms": round(graph_ms + replayed_ms, 1), "graph_ms": round(graph_ms, 1),
        "replayed_ms": round(replayed_ms, 1),
        "generations": {"local": {"replayed": harness.local.replays, "live": harness.local.live},
                        "cloud": {"replayed": harness.cloud.replays, "live": harness.cloud.live}},
        "timings_ms": record["timings_ms"], "tokens": record["tokens"],
        "cost_usd": record["cost_usd"], "finish_reason": record["finish_reason"],
        "execution": (record["signals"].get("checks") or {}).get("execution"),
        "simulated": expected,
        "answer": answer.text[:ANSWER_CHARS],
        # live local answers (the first, then each repair round's): where one differs from
        # the recorded answer to the same request, decoding did not reproduce the record
        "local_generated": [g.text[:ANSWER_CHARS] for g in harness.local.generated()],
    }


# --- the run -----------------------------------------------------------------------------------

def _resume(out: Path, key: Mapping[str, Any]) -> dict[str, Record]:
    done = {r["task_id"]: r for r in read_results(out)}
    other = [t for t, r in done.items() if r.get("policy") != dict(key)]
    if other:
        raise EvalError(f"{out} holds results of another policy or mode ({other[0]}: "
                        f"{done[other[0]].get('policy')}); choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in done.values()), encoding="utf-8")
    return done


def run(problems: Sequence[Problem], *, settings: Settings, out: Path, mode: Mode,
        limit: int | None = None, max_tokens: int = 512,
        paths: recorded.Paths | None = None,
        log: Callable[[str], None] = print) -> list[Record]:
    """Run the problems not yet in ``out`` (at most ``limit`` of them this call, so a long run
    goes in chunks); return every record of ``problems`` in ``out``."""
    rules = settings.policies.for_team(None)
    key = policy_key(rules, mode)
    done = _resume(out, key)
    todo = [p for p in problems if p.task_id not in done]
    todo = todo[:limit] if limit is not None else todo
    log(f"{len(problems) - len([p for p in problems if p.task_id not in done])} of "
        f"{len(problems)} done, {len(todo)} to run now ({mode}; {key})")
    if todo:
        expected = simulated(rules)
        sandbox = open_sandbox(settings.checks)
        if sandbox is None:
            raise EvalError("the tests cannot run isolated here: install bubblewrap")
        found = recorded.Recordings()
        if mode == "replay":
            found = recorded.load(todo, paths=paths or recorded.Paths(), sandbox=sandbox, rules=rules,
                                  max_tokens=max_tokens)
            for gap in found.missing:
                log(f"not in the records, runs live: {gap}")
        with cloud_available(settings, log):
            inner = build_local(settings)
            try:
                local = ReplayBackend(inner, record_streams=True, recorded=found.local)
                cloud = ReplayBackend(build_cloud(settings), recorded=found.cloud)
                context = build_context(settings, local, cloud)
                # Page the weights in first, so the first problem's latency is not the disk's.
                inner.generate(GenerationRequest(messages=(Message("user", "hi"),),
                                                 max_tokens=1))
                harness = Harness(local, cloud, context, build_graph(), max_tokens)
                with out.open("a", encoding="utf-8") as sink:
                    for index, problem in enumerate(todo, start=1):
                        line = evaluate(problem, harness, expected.get(problem.task_id), key)
                        sink.write(json.dumps(line) + "\n")
                        sink.flush()
                        done[problem.task_id] = line
                        log(f"[{index}/{len(todo)}] {problem.task_id} {line['route']} "
                            f"({line['reason']}) {'pass' if line['passed'] else 'fail'} "
                            f"{line['latency_ms'] / 1000:.1f} s")
            finally:
                inner.close()
    return [done[p.task_id] for p in problems if p.task_id in done]


# --- the figures -----------------------------------------------------------------------------

def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p90": None}
    return {"n": len(ordered), "p50": round(bootstrap.percentile(ordered, 0.5) / 1000, 1),
            "p90": round(bootstrap.percentile(ordered, 0.9) / 1000, 1)}


def summary(records: Sequence[Record], *, resamples: int = judge_tables.RESAMPLES,
            seed: int = judge_tables.SEED) -> dict[str, Any]:
    """Routed pass@1, cloud share and routed minus cloud-only (recorded cloud answers), with
    bootstrap intervals; the simulated figures on the same problems; the problems where the
    two differ; latency per route (p50, p90, seconds)."""
    if not records:
        raise ValueError("no records")
    sim = [r["simulated"] for r in records]
    real = [bootstrap.Decision(bool(r["passed"]), r["route"] == "cloud",
                               bool(s["cloud_passed"])) for r, s in zip(records, sim, strict=True)]
    simulated_rows = [bootstrap.Decision(bool(s["passed"]), s["route"] == "cloud",
                                         bool(s["cloud_passed"])) for s in sim]
    data: dict[str, Any] = {
        "n": len(records), "policy": records[0]["policy"],
        "end_to_end": {**bootstrap.figures(real),
                       "ci": bootstrap.intervals(real, resamples=resamples, seed=seed)},
        "simulated": {**bootstrap.figures(simulated_rows),
                      "ci": bootstrap.intervals(simulated_rows, resamples=resamples,
                                                seed=seed)},
        "differ": [{"task_id": r["task_id"], "simulated": f"{s['route']} "
                    f"{'pass' if s['passed'] else 'fail'} ({s['repair_rounds']} repair)",
                    "end_to_end": f"{r['route']} {'pass' if r['passed'] else 'fail'} "
                    f"({r['repair_rounds']} repair, {r['reason']})"}
                   for r, s in zip(records, sim, strict=True)
                   if (r["route"], bool(r["passed"])) != (s["route"], bool(s["passed"]))],
        "generations": {tier: {kind: sum(r["generations"][tier][kind] for r in records)
                               for kind in ("replayed", "live")} for tier in ("local", "cloud")},
        "latency_s": {route: _quantiles([r["latency_ms"] for r in records
                                         if r["route"] == route])
                      for route in ("local", "cloud")},
        "graph_s": {route: _quantiles([r["graph_ms"] for r in records if r["route"] == route])
                    for route in ("local", "cloud")},
    }
    return data


def format_summary(data: Mapping[str, Any]) -> list[str]:
    def row(name: str, point: Mapping[str, Any]) -> str:
        ci = point["ci"]
        return (f"{name}: pass@1 {point['pass_at_1']:.1%} [{ci['pass_at_1'][0]:.1%}, "
                f"{ci['pass_at_1'][1]:.1%}], cloud {point['cloud_share']:.1%} "
                f"[{ci['cloud_share'][0]:.1%}, {ci['cloud_share'][1]:.1%}], routed - cloud-only "
                f"{point['minus_cloud'] * 100:+.1f} points [{ci['minus_cloud'][0] * 100:+.1f}, "
                f"{ci['minus_cloud'][1] * 100:+.1f}]")
    lines = [f"{data['n']} problems, policy {data['policy']}",
             row("end to end", data["end_to_end"]), row("simulated ", data["simulated"]),
             f"problems that differ: {len(data['differ'])}"]
    lines += [f"  {d['task_id']}: simulated {d['simulated']}, end to end {d['end_to_end']}"
              for d in data["differ"]]
    generations = data["generations"]
    lines.append("generations: " + ", ".join(
        f"{tier} {g['replayed']} replayed / {g['live']} live" for tier, g in generations.items()))
    for name, key in (("latency", "latency_s"), ("graph time", "graph_s")):
        lines.append(f"{name} per route (s): " + "; ".join(
            f"{route} n={q['n']} p50 {q['p50']} p90 {q['p90']}"
            for route, q in data[key].items()))
    return lines


# --- BENCHMARKS.md -----------------------------------------------------------------------------

#: The committed end-to-end runs BENCHMARKS.md's table is made from (tests check it).
RUNS = (Path("docs/humaneval-routed-default-live.jsonl"),
        Path("docs/humaneval-routed-default-replay.jsonl"),
        Path("docs/humaneval-routed-learned-replay.jsonl"),
        Path("docs/humaneval-routed-learned-live.jsonl"))


def _ci(point: Mapping[str, Any], figure: str, points: bool = False) -> str:
    low, high = point["ci"][figure]
    if points:
        return f"{point[figure] * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"
    return f"{point[figure]:.1%} [{low * 100:.1f}, {high * 100:.1f}]"


def markdown(runs: Sequence[Sequence[Record]]) -> list[str]:
    """BENCHMARKS.md's end-to-end table: one row per run."""
    lines = ["| policy | generations | problems | pass@1 end to end [95% CI] | simulated | "
             "cloud share end to end [95% CI] | simulated | routed − cloud-only, points | "
             "problems that differ | latency local p50 / p90 | latency cloud p50 / p90 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for records in runs:
        data = summary(records)
        policy, real, sim = data["policy"], data["end_to_end"], data["simulated"]
        judge = ("fixed at 0.55" if policy["judge"] == "fixed"
                 else f"learned ({policy['judge_model']}) at {policy['threshold']:.3f}")
        generated = data["generations"]
        made = (f"{generated['local']['live']} local + {generated['cloud']['live']} cloud live, "
                f"{generated['local']['replayed']} + {generated['cloud']['replayed']} replayed")
        latency = data["latency_s"]
        lines.append(
            f"| {judge}, `repair_rounds: {policy['repair_rounds']}` ({policy['mode']}) | "
            f"{made} | {data['n']} | {_ci(real, 'pass_at_1')} | {sim['pass_at_1']:.1%} | "
            f"{_ci(real, 'cloud_share')} | {sim['cloud_share']:.1%} | "
            f"{_ci(real, 'minus_cloud', points=True)} | {len(data['differ'])} | "
            + " | ".join(f"{q['p50']} / {q['p90']} s (n={q['n']})"
                         for q in (latency["local"], latency["cloud"])) + " |")
    return lines
