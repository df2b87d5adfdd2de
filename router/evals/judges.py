"""Today's judge against the learned one (and sampling agreement), held out, from the records
of ``smallcode eval features`` (no model runs here; the sandbox runs the samples' calls).

Both judges score each recorded local answer with the functions the graph uses:

- ``fixed``: :func:`router.graph.decide.judge_score` over the logprob confidence and the
  checks, failed examples escalating whatever the threshold (no score, as without logprobs);
- ``learned``: :class:`router.graph.judge_model.JudgeModel` over :func:`record_features`.

Routing is simulated (a task sent to the cloud scores the recorded cloud answer); thresholds
are calibrated on the ``calibrate`` half and scored on the ``report`` half, or, for another
problem set, taken from HumanEval's calibration (nothing tuned on the set itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from policies.calibration import Calibration, Outcome, calibrate, sweep
from router.evals import bootstrap
from router.evals.report import apgr, threshold_for_goal
from router.graph import decide, judge_model, signals

Record = dict[str, Any]
Score = Callable[..., float | None]


def record_features(record: Record, *, answer: Mapping[str, Any] | None = None,
                    checks: Mapping[str, Any] | None = None) -> dict[str, float] | None:
    """The learned judge's features of a recorded answer (the greedy one by default), as the
    graph computes them for a live one."""
    answer = answer or record["local"]
    checks = checks or record["checks"]
    logprob = judge_model.logprob_features(answer["lp"], answer["top"])
    return judge_model.features(
        logprob=logprob, syntax_errors=checks["syntax_errors"],
        code_blocks=checks["code_blocks"], examples=checks["examples"],
        repair_rounds=record.get("repair_rounds", 0),
        task_type=record.get("task_type", "complete"), prompt_tokens=answer["tokens"]["prompt"],
        files=0)


def fixed_score(record: Record, *, answer: Mapping[str, Any] | None = None,
                checks: Mapping[str, Any] | None = None) -> float | None:
    """Today's judge (the recorded greedy answer, or ``answer`` with its ``checks``)."""
    answer = answer or record["local"]
    checks = checks or record["checks"]
    examples = checks["examples"]
    if examples and not examples["passed"]:
        return None  # failed checks escalate whatever the threshold (as no evidence does)
    return decide.judge_score(signals.confidence(answer["lp"]),
                              syntax_errors=checks["syntax_errors"],
                              examples_passed=None if examples is None else examples["passed"])


def learned_score(model: judge_model.JudgeModel, *, checks_escalate: bool = False) -> Score:
    """The learned judge's probability; ``checks_escalate``: failed examples escalate
    whatever the threshold (as with the fixed judge, and as the graph does), else the model
    weighs them with everything else."""
    def score(record: Record, *, answer: Mapping[str, Any] | None = None,
              checks: Mapping[str, Any] | None = None) -> float | None:
        checks = checks or record["checks"]
        if checks_escalate and checks["examples"] and not checks["examples"]["passed"]:
            return None
        values = record_features(record, answer=answer, checks=checks)
        return None if values is None else model.probability(values)
    return score


def outcomes(records: Sequence[Record], score: Score) -> list[Outcome]:
    return [Outcome(score(r), bool(r["local"]["passed"]), r.get("cloud_passed")) for r in records]


def simulate(records: Sequence[Record], score: Score, threshold: float) -> dict[str, Any]:
    """Route each record at ``threshold``; latency per route from the recorded times (kept
    local: the local answer and any repair rounds; escalated: those and the cloud's)."""
    passed = cloud = 0
    seconds: dict[str, list[float]] = {"local": [], "cloud": []}
    for record in records:
        value = score(record)
        local_s = (record["local"]["latency_ms"] + record.get("added_ms", 0.0)) / 1000
        if value is None or value < threshold:
            cloud += 1
            passed += bool(record.get("cloud_passed"))
            if record.get("cloud_ms") is not None:
                seconds["cloud"].append(local_s + record["cloud_ms"] / 1000)
        else:
            passed += bool(record["local"]["passed"])
            seconds["local"].append(local_s)
    n = len(records)
    return {"threshold": round(threshold, 4), "n": n, "pass_at_1": passed / n,
            "cloud_share": cloud / n,
            "latency_s": {route: round(sum(v) / len(v), 1) if v else None
                          for route, v in seconds.items()}}


def decisions(records: Sequence[Record], score: Score,
              threshold: float) -> list[bootstrap.Decision]:
    """Per record, what routing at ``threshold`` did (for :func:`router.evals.bootstrap`)."""
    found = []
    for record in records:
        value = score(record)
        cloud = value is None or value < threshold
        cloud_passed = bool(record.get("cloud_passed"))
        found.append(bootstrap.Decision(cloud_passed if cloud else bool(record["local"]["passed"]),
                                        cloud, cloud_passed))
    return found


def at_threshold(records: Sequence[Record], score: Score, threshold: float, *,
                 resamples: int = 0, seed: int = 0) -> dict[str, Any]:
    """:func:`simulate` at ``threshold``, with bootstrap intervals when ``resamples``."""
    point = simulate(records, score, threshold)
    point["minus_cloud"] = point["pass_at_1"] - rates(records)["cloud"]
    if resamples:
        point["ci"] = bootstrap.intervals(decisions(records, score, threshold),
                                          resamples=resamples, seed=seed)
    return point


def threshold_for(records: Sequence[Record], score: Score, goal: str) -> Calibration:
    """``cloud_quality``: the smallest cloud share reaching these records' cloud-only pass@1
    (else the best reachable); ``cloud_share``: 20% of the tasks to the cloud."""
    target = sum(bool(r.get("cloud_passed")) for r in records) / len(records)
    return threshold_for_goal(outcomes(records, score), goal, target)


def rates(records: Sequence[Record]) -> dict[str, float]:
    n = len(records)
    local = sum(bool(r["local"]["passed"]) for r in records) / n
    cloud = sum(bool(r.get("cloud_passed")) for r in records) / n
    oracle = sum(bool(r["local"]["passed"] or r.get("cloud_passed")) for r in records) / n
    return {"n": n, "local": local, "cloud": cloud, "oracle": oracle}


def rate_intervals(records: Sequence[Record], *, resamples: int,
                   seed: int = 0) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the local-only, cloud-only and oracle pass@1."""
    hits = {"local": [bool(r["local"]["passed"]) for r in records],
            "cloud": [bool(r.get("cloud_passed")) for r in records]}
    hits["oracle"] = [a or b for a, b in zip(hits["local"], hits["cloud"], strict=True)]
    return {name: bootstrap.rate_interval(values, resamples=resamples, seed=seed)
            for name, values in hits.items()}


def compare(calibration: Sequence[Record], held: Sequence[Record],
            judges: Mapping[str, Score], *, resamples: int = 0, seed: int = 0) -> dict[str, Any]:
    """Each judge's thresholds calibrated on ``calibration``, scored on ``held``; with
    ``resamples``, bootstrap intervals on every figure (the held problems resampled)."""
    base = rates(held)
    result: dict[str, Any] = {**base, "judges": {}}
    if resamples:
        result["ci"] = rate_intervals(held, resamples=resamples, seed=seed)
    for name, score in judges.items():
        row: dict[str, Any] = {"apgr": apgr(sweep(outcomes(held, score)), base["local"],
                                             base["cloud"])}
        for goal in ("cloud_quality", "cloud_share"):
            point = threshold_for(calibration, score, goal)
            row[f"at_{goal}"] = at_threshold(held, score, point.threshold,
                                             resamples=resamples, seed=seed)
        result["judges"][name] = row
    return result


def format_comparison(title: str, data: Mapping[str, Any]) -> list[str]:
    lines = [f"{title}: {data['n']} problems; local {data['local']:.1%}, cloud "
             f"{data['cloud']:.1%}, oracle {data['oracle']:.1%}"]
    for name, row in data["judges"].items():
        apgr_text = "n/a" if row["apgr"] is None else f"{row['apgr']:.2f}"
        parts = [f"  {name:<22} APGR {apgr_text}"]
        for goal, label in (("cloud_quality", "at cloud-quality t"), ("cloud_share", "at 20% t")):
            point = row[f"at_{goal}"]
            latency = point["latency_s"]
            ci = point.get("ci")
            spread = ("" if ci is None else
                      " [{:.1%}, {:.1%}]".format(*ci["pass_at_1"]))
            parts.append(f"{label}={point['threshold']:.3f}: {point['pass_at_1']:.1%}{spread} "
                         f"pass@1, {point['cloud_share']:.1%} cloud, {latency['local']} s local / "
                         f"{latency['cloud']} s escalated")
        lines.append("; ".join(parts))
    return lines


def prompt_shift(records: Sequence[Record], model: judge_model.JudgeModel,
                 sizes: Sequence[int] = (2500, 4000)) -> dict[int, float]:
    """The share of right local answers the learned judge keeps local when their prompt is
    ``size`` tokens instead (as a client's system prompt makes it): what it does on traffic
    longer than it was fitted on."""
    right = [r for r in records if r["local"]["passed"]]
    shares = {}
    for size in sizes:
        kept = 0
        for record in right:
            local = {**record["local"], "tokens": {**record["local"]["tokens"], "prompt": size}}
            values = record_features({**record, "local": local})
            kept += values is not None and model.probability(values) >= model.threshold
        shares[size] = kept / len(right) if right else 0.0
    return shares


# --- preparing records and fitting -----------------------------------------------------------

def prepare(records: Sequence[Record], *, prompts: Mapping[str, str],
            cloud: Mapping[str, Mapping[str, Any]] | None = None) -> list[Record]:
    """Records with their task type (the router's classifier on the task prompt),
    ``cloud_passed`` and ``cloud_ms`` (the record's own cloud answer, else ``cloud``: task
    id -> ``{"passed", "latency_ms"}``)."""
    prepared = []
    for record in records:
        task = record["task_id"]
        tier = record.get("cloud") or (cloud or {}).get(task) or {}
        prompt = prompts.get(task, "")
        prepared.append({**record, "task_type": signals.classify_task(prompt),
                         "cloud_passed": tier.get("passed"), "cloud_ms": tier.get("latency_ms")})
    return prepared


def fit_model(records: Sequence[Record], *, target_cloud_share: float | None = None,
              target_quality: float | None = None,
              meta: Mapping[str, Any] | None = None) -> tuple[judge_model.JudgeModel, Calibration]:
    """Fit the learned judge on ``records`` and set its threshold for the one target given,
    calibrated on the same records."""
    rows = [(record_features(r), bool(r["local"]["passed"])) for r in records]
    usable = [(values, label) for values, label in rows if values is not None]
    model = judge_model.fit([v for v, _ in usable], [label for _, label in usable],
                            meta=meta)
    return with_threshold(model, outcomes(records, learned_score(model)),
                          target_cloud_share=target_cloud_share, target_quality=target_quality)


def fit_rows(rows: Sequence[tuple[Mapping[str, float], bool]], *,
             target_cloud_share: float | None = None, target_quality: float | None = None,
             meta: Mapping[str, Any] | None = None) -> tuple[judge_model.JudgeModel, Calibration]:
    """Fit the learned judge on (features, local answer right) rows with no cloud outcome
    (clients' feedback labels): the quality target counts the cloud as right, an upper
    bound (:mod:`policies.calibration`)."""
    model = judge_model.fit([v for v, _ in rows], [label for _, label in rows], meta=meta)
    found = [Outcome(model.probability(v), label, None) for v, label in rows]
    return with_threshold(model, found, target_cloud_share=target_cloud_share,
                          target_quality=target_quality)


def with_threshold(model: judge_model.JudgeModel, found: Sequence[Outcome], *,
                   target_cloud_share: float | None, target_quality: float | None,
                   ) -> tuple[judge_model.JudgeModel, Calibration]:
    """``model`` with the threshold that meets the one target on ``found``, and that point."""
    point = calibrate(found, target_cloud_share=target_cloud_share,
                      target_quality=target_quality)
    target = ({"cloud_share": target_cloud_share} if target_cloud_share is not None
              else {"quality": target_quality})
    model = replace(model, threshold=point.threshold,
                    meta={**model.meta, "target": target,
                          "expected_cloud_share": round(point.expected_cloud_share, 4),
                          "expected_quality": round(point.expected_quality, 4)})
    return model, point


def with_repair(records: Sequence[Record], repairs: Mapping[str, Record],
                allowed: int = 2) -> list[Record]:
    """The records as the graph serves them with ``repair_rounds: allowed``: where the
    recorded answer failed its checks and was repaired, the last round's answer (its
    logprobs by teacher forcing, its checks, its hidden-test outcome) replaces it."""
    out = []
    for record in records:
        rounds = (repairs.get(record["task_id"]) or {}).get("rounds", [])[:allowed]
        if not rounds:
            out.append(record)
            continue
        last = rounds[-1]
        out.append({**record, "repair_rounds": len(rounds), "checks": last["checks"],
                    "local": {**record["local"], "lp": last["lp"], "top": last["top"],
                              "passed": last["passed"]},
                    "added_ms": sum(r["ms"] for r in rounds)})
    return out
