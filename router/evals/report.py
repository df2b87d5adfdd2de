"""Figures from a results file: pass@1 per mode, cloud share, cost, savings, APGR, and the
ablation of the routing signals calibrated on one half of the problems and scored on the other.

Two kinds of figures, kept apart in the output:

- **measured**: what each mode did in the run (``routed`` at the configured threshold);
- **simulated**: a routing rule applied to the recorded signals and outcomes (a task sent to
  the cloud scores the recorded cloud answer, one kept local the recorded local answer). This
  is exact for the router's own rule, since decoding is greedy, but no extra run measured it.

APGR follows RouteLLM (``routellm/evals/evaluate.py``): the area under pass@1 over the cloud
share of the threshold sweep, less the local-only area, over the cloud-only area less the
local-only area, on the same x range. 0 is no better than random mixing at the ends, 1 is the
whole gap recovered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from policies.calibration import Calibration, CalibrationError, Outcome, calibrate, sweep

Record = dict[str, Any]
MODES = ("local", "cloud", "routed")
Score = Callable[[Record], float | None]

#: The routing signals of the ablation: each maps a record to a score ("cloud when None or
#: below the threshold").
VARIANTS: dict[str, Score] = {
    "logprob_only": lambda r: r["signals"]["logprob_confidence"],
    "execution_only": lambda r: r["signals"]["examples_score"],
    "both": lambda r: r["confidence"],
}
CLOUD_SHARE_GOAL = 0.2


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def pass_at_1(records: Sequence[Record], mode: str) -> float | None:
    return _mean([float(r[f"{mode}_passed"]) for r in records])


def outcomes(records: Sequence[Record], variant: str = "both") -> list[Outcome]:
    score = VARIANTS[variant]
    return [Outcome(score(r), r["local_passed"], r["cloud_passed"]) for r in records]


def oracle(records: Sequence[Record]) -> dict[str, float | None]:
    """Best of both: the cloud only where the local answer fails and the cloud's passes."""
    return {"pass_at_1": _mean([float(r["local_passed"] or r["cloud_passed"]) for r in records]),
            "cloud_share": _mean([float(not r["local_passed"] and r["cloud_passed"])
                                  for r in records])}


def apgr(points: Sequence[Calibration], weak: float, strong: float) -> float | None:
    """RouteLLM's APGR of a sweep; None when the tiers tie or the sweep has no width."""
    xs_ys = sorted((p.expected_cloud_share, p.expected_quality) for p in points)
    width = xs_ys[-1][0] - xs_ys[0][0] if xs_ys else 0.0
    if strong == weak or width <= 0:
        return None
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(xs_ys))
    return (area - weak * width) / ((strong - weak) * width)


def simulate(records: Sequence[Record], variant: str, threshold: float) -> dict[str, Any]:
    """Route each record by ``variant``'s score at ``threshold`` and total the outcome."""
    score = VARIANTS[variant]
    passed, cloud, cost = 0, 0, 0.0
    for record in records:
        value = score(record)
        if value is None or value < threshold:
            cloud += 1
            passed += record["cloud_passed"]
            cost += record["cloud"]["cost_usd"]
        else:
            passed += record["local_passed"]
    n = len(records)
    cloud_cost = sum(r["cloud"]["cost_usd"] for r in records)
    return {"threshold": threshold, "n": n, "pass_at_1": passed / n if n else None,
            "cloud_share": cloud / n if n else None, "cost_usd": cost,
            "savings_vs_cloud": 1 - cost / cloud_cost if cloud_cost else None}


def _calibrated(records: Sequence[Record], variant: str, goal: str) -> Calibration | None:
    """The threshold for ``goal`` on ``records``: ``cloud_quality`` (the smallest cloud share
    reaching cloud-only pass@1, else the best reachable) or ``cloud_share`` (20%)."""
    found = outcomes(records, variant)
    if not found:
        return None
    return threshold_for_goal(found, goal, pass_at_1(records, "cloud") or 0.0)


def threshold_for_goal(found: Sequence[Outcome], goal: str,
                       cloud_quality: float) -> Calibration:
    """``cloud_share``: the threshold sending 20% of the tasks to the cloud; otherwise the
    smallest cloud share reaching ``cloud_quality`` (cloud-only pass@1), else the best
    quality the sweep reaches."""
    if goal == "cloud_share":
        return calibrate(found, target_cloud_share=CLOUD_SHARE_GOAL)
    try:
        return calibrate(found, target_quality=cloud_quality)
    except CalibrationError:
        curve = sweep(found)
        best = max(p.expected_quality for p in curve)
        return next(p for p in curve if p.expected_quality >= best - 1e-12)


def held_out(records: Sequence[Record]) -> dict[str, Any]:
    """Each variant calibrated on the ``calibrate`` half and scored on the ``report`` half."""
    cal = [r for r in records if r["split"] == "calibrate"]
    rep = [r for r in records if r["split"] == "report"]
    result: dict[str, Any] = {"calibrate_n": len(cal), "report_n": len(rep), "variants": {}}
    if not rep:
        return result
    weak, strong = pass_at_1(rep, "local") or 0.0, pass_at_1(rep, "cloud") or 0.0
    result.update(local=weak, cloud=strong, oracle=oracle(rep),
                  routed_measured=measured(rep))
    for variant in VARIANTS:
        row: dict[str, Any] = {"apgr": apgr(sweep(outcomes(rep, variant)), weak, strong)}
        for goal in ("cloud_quality", "cloud_share"):
            point = _calibrated(cal, variant, goal)
            row[f"at_{goal}"] = None if point is None else simulate(rep, variant, point.threshold)
        result["variants"][variant] = row
    return result


def measured(records: Sequence[Record]) -> dict[str, Any]:
    """What the three modes did in the run."""
    n = len(records)
    cost = {"local": 0.0, "cloud": sum(r["cloud"]["cost_usd"] for r in records),
            "routed": sum(r["routed"]["cost_usd"] for r in records)}
    return {
        "n": n,
        "pass_at_1": {m: pass_at_1(records, m) for m in MODES},
        "cloud_share": _mean([float(r["routed"]["route"] == "cloud") for r in records]),
        "cost_usd": cost,
        "savings_vs_cloud": 1 - cost["routed"] / cost["cloud"] if cost["cloud"] else None,
        "latency_s_mean": {m: _mean([r[m]["latency_ms"] / 1000 for r in records])
                           for m in MODES},
        "threshold": records[0]["routed"]["threshold"] if records else None,
    }


def headline(records: Sequence[Record]) -> dict[str, Any]:
    """The one JSON line ``smallcode eval humaneval`` ends with."""
    summary = measured(records)
    weak, strong = summary["pass_at_1"]["local"], summary["pass_at_1"]["cloud"]
    points = sweep(outcomes(records)) if records else []
    summary["apgr"] = apgr(points, weak, strong) if records else None
    summary["priced_as"] = records[0]["models"]["priced_as"] if records else None
    return summary


def report(records: Sequence[Record]) -> dict[str, Any]:
    return {"all": headline(records), "oracle": oracle(records), "held_out": held_out(records)}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def format_report(data: dict[str, Any]) -> list[str]:
    """The report as text lines."""
    every, held = data["all"], data["held_out"]
    lines = [f"all {every['n']} problems, measured (routed at threshold {every['threshold']}); "
             f"costs priced as {every['priced_as']}:"]
    for mode in MODES:
        lines.append(f"  {mode:<7} pass@1 {_pct(every['pass_at_1'][mode]):>6}  "
                     f"cost ${every['cost_usd'][mode]:.4f}  "
                     f"mean latency {every['latency_s_mean'][mode] or 0:.1f} s")
    lines.append(f"  routed cloud share {_pct(every['cloud_share'])}, savings vs cloud-only "
                 f"{_pct(every['savings_vs_cloud'])}, APGR (both signals) "
                 f"{every['apgr'] if every['apgr'] is None else round(every['apgr'], 3)}")
    lines.append(f"  oracle (best of both): pass@1 {_pct(data['oracle']['pass_at_1'])} at cloud "
                 f"share {_pct(data['oracle']['cloud_share'])}")
    lines.append(f"held-out: thresholds calibrated on {held['calibrate_n']} problems, scored on "
                 f"{held['report_n']} (simulated from the recorded answers):")
    if held["report_n"]:
        lines.append(f"  local {_pct(held['local'])}, cloud {_pct(held['cloud'])}, oracle "
                     f"{_pct(held['oracle']['pass_at_1'])}; routed as run "
                     f"{_pct(held['routed_measured']['pass_at_1']['routed'])} at cloud share "
                     f"{_pct(held['routed_measured']['cloud_share'])}")
    for variant, row in held["variants"].items():
        apgr_text = "n/a" if row["apgr"] is None else f"{row['apgr']:.3f}"
        parts = [f"  {variant:<15} APGR {apgr_text}"]
        for goal, label in (("cloud_quality", "cloud-quality target"),
                            ("cloud_share", "20% cloud target")):
            point = row[f"at_{goal}"]
            if point:
                parts.append(f"{label}: t={point['threshold']:.3f} pass@1 "
                             f"{_pct(point['pass_at_1'])} cloud {_pct(point['cloud_share'])} "
                             f"savings {_pct(point['savings_vs_cloud'])}")
        lines.append("; ".join(parts))
    return lines
