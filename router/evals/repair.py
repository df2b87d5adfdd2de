"""What local repair gains: HumanEval problems whose recorded local answer fails its checks
are given back to the local model, round after round, and every round is scored.

Reads a results file of ``smallcode eval humaneval`` (its local answers were decoded greedily,
so they are what the local model answers today) and appends one JSON line per problem:

- ``initial``: the router's checks (every example form, :func:`router.checks.answer.check_answer`)
  on the recorded local answer, its recorded logprob confidence and hidden-test outcome;
- ``rounds``: while the checks find something to fix (:func:`router.graph.repair.trigger`), up
  to ``rounds`` times, the local model's next answer to the repair turn the graph would send
  (:func:`router.graph.repair.messages`), its checks, confidence, tokens, time and hidden-test
  outcome.

Rounds do not depend on how many are allowed, so one run with ``rounds=3`` gives the figures
for ``repair_rounds`` 0 to 3 (:func:`summary`). Routing is simulated on these records with the
router's own rule (:func:`router.graph.decide.judge_score`; failed checks escalate whatever
the threshold), a task sent to the cloud scoring the recorded cloud answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.base import Backend, GenerationRequest, Message
from policies.calibration import Outcome, sweep
from policies.config import PolicyConfig
from router.checks.answer import check_answer
from router.checks.sandbox import Sandbox
from router.evals.humaneval import Problem, extract_program, score, task_prompt
from router.evals.report import apgr, threshold_for_goal
from router.graph import decide, repair, signals

Record = dict[str, Any]


def _checks(problem: Problem, answer: str, rules: PolicyConfig,
            sandbox: Sandbox) -> dict[str, Any]:
    return check_answer(task_prompt(problem), [], answer, sandbox,
                        enabled=rules.execution_checks, timeout_s=rules.execution_timeout_s)


def _verdict(checks: dict[str, Any]) -> dict[str, Any]:
    execution = checks.get("execution")
    return {"trigger": repair.trigger(checks), "syntax_errors": checks["syntax_errors"],
            "examples_passed": None if execution is None else execution["passed"]}


def repair_problem(problem: Problem, recorded: Record, local: Backend, sandbox: Sandbox, *,
                   rules: PolicyConfig, rounds: int, max_tokens: int,
                   style: str = "hint") -> Record:
    """The initial verdict and up to ``rounds`` repair rounds of one problem."""
    answer = recorded["local"]["answer"]
    checks = _checks(problem, answer, rules, sandbox)
    initial = {**_verdict(checks), "confidence": recorded["signals"]["logprob_confidence"],
               "tests_passed": bool(recorded["local_passed"])}
    task = [Message("user", task_prompt(problem))]
    done: list[Record] = []
    while repair.trigger(checks) is not None and len(done) < rounds:
        if done and done[-1]["unchanged"]:
            break  # the same turn again: greedy decoding repeats itself (the graph stops too)
        turn = repair.messages(task, answer, checks, style=style)  # type: ignore[arg-type]
        request = GenerationRequest(messages=tuple(turn), max_tokens=max_tokens)
        started = time.perf_counter()
        generation = local.generate(request)
        ms = (time.perf_counter() - started) * 1000
        unchanged = generation.text.strip() == answer.strip()
        answer = generation.text
        checks = _checks(problem, answer, rules, sandbox)
        tests = score(problem, extract_program(problem, answer), sandbox)
        done.append({
            **_verdict(checks),
            "confidence": signals.confidence([t.logprob for t in generation.logprobs or ()]),
            "tests_passed": tests.passed,
            "prompt_tokens": generation.usage.prompt_tokens,
            "completion_tokens": generation.usage.completion_tokens,
            "ms": round(ms, 1),
            "unchanged": unchanged,
            "feedback": request.messages[-1].content[-600:],
            "answer": answer[:4000],
        })
    return {"task_id": problem.task_id, "split": recorded["split"], "initial": initial,
            "rounds": done, "cloud_passed": bool(recorded["cloud_passed"]),
            "cloud_cost_usd": recorded["cloud"]["cost_usd"],
            "routed_as_recorded": {"passed": bool(recorded["routed_passed"]),
                                   "route": recorded["routed"]["route"]}}


def run(problems: Sequence[Problem], results: Sequence[Record], local: Backend,
        sandbox: Sandbox, *, out: Path, rules: PolicyConfig, rounds: int, max_tokens: int,
        style: str = "hint", log: Callable[[str], None] = print) -> list[Record]:
    """Repair each problem of ``problems`` that has a recorded result and is not in ``out``
    yet; append its line to ``out``; return every line of ``out`` for these problems."""
    by_id = {r["task_id"]: r for r in results}
    done = read_records(out)
    wanted = [p for p in problems if p.task_id in by_id]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink:
        for index, problem in enumerate(wanted, 1):
            if problem.task_id in done:
                continue
            record = repair_problem(problem, by_id[problem.task_id], local, sandbox,
                                    rules=rules, rounds=rounds, max_tokens=max_tokens,
                                    style=style)
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            done[problem.task_id] = record
            log(f"{index}/{len(wanted)} {problem.task_id}: "
                f"{len(record['rounds'])} round(s), tests "
                f"{[record['initial']['tests_passed'], *(r['tests_passed'] for r in record['rounds'])]}")
    return [done[p.task_id] for p in wanted if p.task_id in done]


def from_features(record: Record) -> Record:
    """A record of ``smallcode eval features --cloud`` (another problem set's) in the shape
    of an ``eval humaneval`` result, as :func:`repair_problem` reads it; it was never
    routed (``routed_as_recorded`` says route ``none``)."""
    cloud = record.get("cloud") or {}
    return {"task_id": record["task_id"], "split": record["split"], "local": record["local"],
            "local_passed": bool(record["local"]["passed"]),
            "signals": {"logprob_confidence": signals.confidence(record["local"]["lp"])},
            "cloud_passed": bool(cloud.get("passed")),
            "cloud": {"cost_usd": cloud.get("cost_usd") or 0.0},
            "routed_passed": False, "routed": {"route": "none"}}


def read_records(path: Path) -> dict[str, Record]:
    records: dict[str, Record] = {}
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line: that problem runs again
        records[record["task_id"]] = record
    return records


# --- figures -----------------------------------------------------------------------------------

def final(record: Record, allowed: int) -> Record:
    """The answer served locally with ``allowed`` repair rounds."""
    rounds = record["rounds"][:allowed]
    return rounds[-1] if rounds else record["initial"]


def route_score(state: Record) -> float | None:
    """The router's score for an answer's state: 0.0 when its checks still fail (escalated
    whatever the threshold), else :func:`router.graph.decide.judge_score`."""
    if state["examples_passed"] is False:
        return 0.0
    return decide.judge_score(state["confidence"], syntax_errors=state["syntax_errors"],
                              examples_passed=state["examples_passed"])


def outcomes(records: Sequence[Record], allowed: int) -> list[Outcome]:
    return [Outcome(route_score(final(r, allowed)), final(r, allowed)["tests_passed"],
                    r["cloud_passed"]) for r in records]


def routed(records: Sequence[Record], allowed: int, threshold: float) -> dict[str, Any]:
    passed = cloud = 0
    for record in records:
        state = final(record, allowed)
        value = route_score(state)
        if value is None or value < threshold:
            cloud += 1
            passed += record["cloud_passed"]
        else:
            passed += state["tests_passed"]
    n = len(records) or 1
    return {"threshold": threshold, "pass_at_1": passed / n, "cloud_share": cloud / n}


def _calibrated(records: Sequence[Record], allowed: int, goal: str,
                cloud_quality: float) -> float | None:
    found = outcomes(records, allowed)
    if not found:
        return None
    return threshold_for_goal(found, goal, cloud_quality).threshold


def summary(records: Sequence[Record], *, threshold: float, max_rounds: int) -> dict[str, Any]:
    """Per number of allowed rounds, on the ``report`` half (thresholds calibrated on the
    ``calibrate`` half where it was run): local-only pass@1, routed pass@1 and cloud share at
    ``threshold`` and at the calibrated thresholds, APGR, added local time and tokens."""
    rep = [r for r in records if r["split"] == "report"]
    cal = [r for r in records if r["split"] == "calibrate"]
    n = len(rep)
    result: dict[str, Any] = {"report_n": n, "calibrate_n": len(cal), "threshold": threshold,
                              "by_rounds": {}}
    if not n:
        return result
    cloud = sum(r["cloud_passed"] for r in rep) / n
    result["cloud_only"] = cloud
    result["routed_as_recorded"] = {
        "pass_at_1": sum(r["routed_as_recorded"]["passed"] for r in rep) / n,
        "cloud_share": sum(r["routed_as_recorded"]["route"] == "cloud" for r in rep) / n}
    for allowed in range(max_rounds + 1):
        used = [r["rounds"][:allowed] for r in rep]
        local = sum(final(r, allowed)["tests_passed"] for r in rep) / n
        row: dict[str, Any] = {
            "local_pass_at_1": local,
            "repaired_tasks": sum(1 for u in used if u),
            "rounds_run": sum(len(u) for u in used),
            "added_local_s_mean": sum(a["ms"] for u in used for a in u) / 1000 / n,
            "added_local_tokens_mean": sum(a["prompt_tokens"] + a["completion_tokens"]
                                           for u in used for a in u) / n,
            "fixed": sum(1 for r in rep if not r["initial"]["tests_passed"]
                         and final(r, allowed)["tests_passed"]),
            "broken": sum(1 for r in rep if r["initial"]["tests_passed"]
                          and not final(r, allowed)["tests_passed"]),
            "passes_examples_fails_tests": sum(
                1 for r in rep if final(r, allowed)["examples_passed"]
                and not final(r, allowed)["tests_passed"]),
            "at_threshold": routed(rep, allowed, threshold),
            "apgr": apgr(sweep(outcomes(rep, allowed)), local, cloud),
        }
        if cal:
            cal_cloud = sum(r["cloud_passed"] for r in cal) / len(cal)
            for goal in ("cloud_quality", "cloud_share"):
                t = _calibrated(cal, allowed, goal, cal_cloud)
                row[f"at_{goal}"] = None if t is None else routed(rep, allowed, t)
        result["by_rounds"][allowed] = row
    return result


def format_summary(data: dict[str, Any]) -> list[str]:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    lines = [f"report half: {data['report_n']} problems (calibrate half: {data['calibrate_n']})"]
    if not data["report_n"]:
        return lines
    recorded = data["routed_as_recorded"]
    lines.append(f"  cloud only {pct(data['cloud_only'])}; routed as recorded (old judge) "
                 f"{pct(recorded['pass_at_1'])} at {pct(recorded['cloud_share'])} cloud")
    for allowed, row in data["by_rounds"].items():
        at = row["at_threshold"]
        text = (f"  repair_rounds {allowed}: local {pct(row['local_pass_at_1'])} "
                f"(+{row['fixed']} fixed, -{row['broken']} broken, {row['repaired_tasks']} "
                f"tasks repaired, {row['rounds_run']} rounds, +{row['added_local_s_mean']:.1f} s "
                f"and +{row['added_local_tokens_mean']:.0f} local tokens per task); routed at "
                f"t={at['threshold']:.2f}: {pct(at['pass_at_1'])} at {pct(at['cloud_share'])} "
                f"cloud; APGR {'n/a' if row['apgr'] is None else format(row['apgr'], '.3f')}; "
                f"pass examples but fail tests: {row['passes_examples_fails_tests']}")
        for goal in ("cloud_quality", "cloud_share"):
            point = row.get(f"at_{goal}")
            if point:
                text += (f"; {goal} t={point['threshold']:.3f}: {pct(point['pass_at_1'])} at "
                         f"{pct(point['cloud_share'])} cloud")
        lines.append(text)
    return lines
