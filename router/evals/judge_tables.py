"""The judge tables of BENCHMARKS.md, computed from the committed records (no model runs).

:func:`build` reads the records of ``smallcode eval features`` (HumanEval's answers, its
repair rounds on both halves, the edge-case and everyday sets), cross-fits the judges on
HumanEval's halves (:mod:`router.evals.crossfit`), scores the other sets with the shipped
recipe (HumanEval's calibrate half), and gives every figure a seeded bootstrap interval
(:mod:`router.evals.bootstrap`). :func:`markdown` writes the tables' rows as BENCHMARKS.md
holds them; ``tests/evals/test_judge_tables.py`` fails when the two differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.evals import crossfit, edgecases, everyday, features, humaneval, judges

Record = dict[str, Any]
RESAMPLES = 1000
SEED = 0
GOAL_PASS = "routed pass@1 ≥ cloud-only with ≤ 20% cloud"


@dataclass(frozen=True)
class Paths:
    humaneval: Path = Path("docs/humaneval-features.jsonl")
    results: Path = Path("docs/humaneval-results.jsonl")
    repairs: Path = Path("docs/humaneval-repair-features.jsonl")
    edge: Path = Path("docs/edgecases-results.jsonl")
    everyday: Path = Path("docs/everyday-results.jsonl")
    everyday_repairs: Path = Path("docs/everyday-repair-features.jsonl")


def prompts() -> dict[str, str]:
    """Every task prompt of the three sets, by task id."""
    sets = (humaneval.load_problems(), edgecases.load_problems(), everyday.load_problems())
    return {p.task_id: humaneval.task_prompt(p) for problems in sets for p in problems}


def humaneval_records(paths: Paths, texts: Mapping[str, str]) -> list[Record]:
    # deferred on purpose: router.evals.run loads the graph (langgraph)
    from router.evals.run import read_results

    cloud = {r["task_id"]: {"passed": bool(r["cloud_passed"]),
                            "latency_ms": r["cloud"]["latency_ms"]}
             for r in read_results(paths.results)}
    return judges.prepare(list(features.read_records(paths.humaneval).values()),
                          prompts=texts, cloud=cloud)


def build(paths: Paths, *, default_threshold: float, resamples: int = RESAMPLES,
          seed: int = SEED) -> dict[str, Any]:
    """Every figure of the tables; sets whose records are missing are left out."""
    texts = prompts()
    records = humaneval_records(paths, texts)
    repairs = features.read_records(paths.repairs)
    models = crossfit.fit_halves(records)
    options: dict[str, Any] = {"default_threshold": default_threshold, "resamples": resamples,
                               "seed": seed}
    data: dict[str, Any] = {
        "resamples": resamples, "seed": seed, "default_threshold": default_threshold,
        "humaneval": {0: crossfit.cross_fit(records, models=models, **options),
                      2: crossfit.cross_fit(records, repairs=repairs, models=models, **options)},
        "sets": {}}
    calibration = [r for r in records if r["split"] == "calibrate"]
    for name, path, repaired in (("everyday", paths.everyday, paths.everyday_repairs),
                                 ("edge", paths.edge, None)):
        if not path.is_file():
            continue
        held = judges.prepare(list(features.read_records(path).values()), prompts=texts)
        found = {0: crossfit.held_out_set(calibration, held, model=models["calibrate"],
                                          **options)}
        if repaired is not None and repaired.is_file():
            found[2] = crossfit.held_out_set(
                judges.with_repair(calibration, repairs),
                judges.with_repair(held, features.read_records(repaired)),
                model=models["calibrate"], **options)
        data["sets"][name] = found
    return data


# --- markdown ------------------------------------------------------------------------------

def _pct(value: float) -> str:
    return f"{value:.1%}"


def _with_ci(point: Mapping[str, Any], figure: str) -> str:
    value = point[figure]
    ci = point.get("ci", {}).get(figure)
    if figure == "minus_cloud":
        text = f"{value * 100:+.1f}"
        return text if ci is None else f"{text} [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"
    text = _pct(value)
    return text if ci is None else f"{text} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"


def _rate(data: Mapping[str, Any], name: str) -> str:
    ci = data.get("ci", {}).get(name)
    text = _pct(data[name])
    return text if ci is None else f"{text} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"


def _meets(point: Mapping[str, Any]) -> str:
    if point["minus_cloud"] >= -1e-9 and point["cloud_share"] <= 0.2 + 1e-9:
        return "yes"
    misses = []
    if point["minus_cloud"] < -1e-9:
        misses.append(f"{-point['minus_cloud'] * 100:.1f} points under cloud-only")
    if point["cloud_share"] > 0.2 + 1e-9:
        misses.append(f"{(point['cloud_share'] - 0.2) * 100:.1f} points over 20% cloud")
    return "no: " + ", ".join(misses)


def _figures(point: Mapping[str, Any]) -> str:
    return " | ".join(_with_ci(point, f) for f in ("pass_at_1", "cloud_share", "minus_cloud"))


DIRECTIONS = {"calibrate->report": "calibrate → report", "report->calibrate":
              "report → calibrate"}
GOAL_TITLES = {"cloud_quality": "at the threshold reaching cloud-only quality on the fitting "
                                "half",
               "cloud_share": "at the threshold sending 20% to the cloud on the fitting half"}
HEAD = ("| pass@1 [95% CI] | cloud share [95% CI] | routed − cloud-only, points [95% CI] |")
RULE = "| --- | --- | --- |"


def markdown(data: Mapping[str, Any]) -> list[str]:
    """The tables' lines (header and rows), in BENCHMARKS.md's order."""
    lines: list[str] = []
    lines += ["| HumanEval half scored | `repair_rounds` | problems | local only | cloud only "
              "| oracle |", "| --- | --- | --- | --- | --- | --- |"]
    for rounds in (0, 2):
        crossed = data["humaneval"][rounds]
        for key, label in DIRECTIONS.items():
            half = crossed["directions"][key]
            lines.append(f"| {label.split(' → ')[1]} | {rounds} | {half['n']} | "
                         f"{_rate(half, 'local')} | {_rate(half, 'cloud')} | "
                         f"{_rate(half, 'oracle')} |")
        both = crossed["pooled"]
        lines.append(f"| both | {rounds} | {both['n']} | {_rate(both, 'local')} | "
                     f"{_rate(both, 'cloud')} | {_rate(both, 'oracle')} |")
    for goal, title in GOAL_TITLES.items():
        lines += ["", f"HumanEval, cross-fitted, {title}:", "",
                  "| judge | `repair_rounds` | fitted on → scored on | threshold | APGR "
                  + HEAD, "| --- | --- | --- | --- | --- " + RULE]
        for rounds in (0, 2):
            crossed = data["humaneval"][rounds]
            for name in (crossfit.FIXED, crossfit.LEARNED, crossfit.ESCALATE):
                for key, label in DIRECTIONS.items():
                    row = crossed["directions"][key]["judges"][name]
                    point = row[f"at_{goal}"]
                    apgr = "n/a" if row["apgr"] is None else f"{row['apgr']:.2f}"
                    lines.append(f"| {name} | {rounds} | {label} | {point['threshold']:.3f} "
                                 f"| {apgr} | {_figures(point)} |")
                row = crossed["pooled"]["judges"][name]
                apgr = "n/a" if row.get("apgr") is None else f"{row['apgr']:.2f}"
                lines.append(f"| {name} | {rounds} | both halves (mean) | | {apgr} | "
                             f"{_figures(row[f'at_{goal}'])} |")
    lines += ["", f"The shipped default (`judge_model: null`: the fixed judge at "
              f"`confidence_threshold` {data['default_threshold']}, nothing fitted), against "
              f"the goal ({GOAL_PASS}):", "",
              "| problems scored | `repair_rounds` " + HEAD + " meets the goal? |",
              "| --- | --- " + RULE + " --- |"]
    for rounds in (0, 2):
        crossed = data["humaneval"][rounds]
        for key in DIRECTIONS:
            half = key.split("->")[1]
            point = crossed["directions"][key]["default"]
            lines.append(f"| HumanEval {half} half | {rounds} | {_figures(point)} | "
                         f"{_meets(point)} |")
        point = crossed["pooled"]["default"]
        lines.append(f"| HumanEval, all 164 | {rounds} | {_figures(point)} | {_meets(point)} |")
    for name, title in (("everyday", "everyday set (frozen)"), ("edge", "edge-case set")):
        for rounds, found in data["sets"].get(name, {}).items():
            point = found["default"]
            lines.append(f"| {title} | {rounds} | {_figures(point)} | {_meets(point)} |")
    for name, title in (("everyday", "The everyday set (frozen before scoring)"),
                        ("edge", "The edge-case set")):
        for rounds, found in data["sets"].get(name, {}).items():
            lines += _set_table(title, rounds, found)
    return lines


def _set_table(title: str, rounds: int, found: Mapping[str, Any]) -> list[str]:
    lines = ["", f"{title}, `repair_rounds: {rounds}`: {found['n']} problems; local only "
             f"{_rate(found, 'local')}, cloud only {_rate(found, 'cloud')}, oracle "
             f"{_rate(found, 'oracle')}; judges and thresholds from HumanEval's calibrate half:",
             "", "| judge | threshold for | threshold | APGR " + HEAD,
             "| --- | --- | --- | --- " + RULE]
    for judge in (crossfit.FIXED, crossfit.LEARNED, crossfit.ESCALATE):
        row = found["judges"][judge]
        apgr = "n/a" if row["apgr"] is None else f"{row['apgr']:.2f}"
        for goal, label in (("cloud_quality", "cloud-only quality"), ("cloud_share", "20% cloud")):
            point = row[f"at_{goal}"]
            lines.append(f"| {judge} | {label} | {point['threshold']:.3f} | {apgr} | "
                         f"{_figures(point)} |")
    return lines
