"""Cross-fitting the judges on HumanEval's two halves: every choice made on one half (the
learned judge's fit, its regularisation by cross-validation inside that half, each judge's
thresholds) and scored on the other, then the halves swapped.

What is not chosen here stays as shipped: the repair style (``hint``), the feature list, and
the fixed judge's rule (failed examples escalate). The learned judge is fitted as
``smallcode calibrate --fit`` fits the shipped one (on the fitting half's answers as first
decoded, with the quality target of that half's cloud-only pass@1); with ``repairs`` the
answers are served as ``repair_rounds: 2`` serves them on both halves, and thresholds are
calibrated on the fitting half's served answers.

Each direction gives the figures of :func:`router.evals.judges.compare`; ``pooled`` puts the
two scored halves together (every problem scored by choices made on the other half), which
for two equal halves is the mean of the two directions, with intervals over all problems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from router.evals import bootstrap, judges
from router.graph import judge_model

Record = dict[str, Any]
HALVES = ("calibrate", "report")
GOALS = ("cloud_quality", "cloud_share")
FIXED = "fixed (today)"
LEARNED = "learned"
ESCALATE = "learned, failed checks escalate"


def fit_learned(records: Sequence[Record], where: str) -> judge_model.JudgeModel:
    """The learned judge fitted on ``records`` as the shipped one is fitted."""
    model, _ = judges.fit_model(records, target_quality=judges.rates(records)["cloud"],
                                meta={"fitted_on": where})
    return model


def scores_for(model: judge_model.JudgeModel) -> dict[str, judges.Score]:
    """The three judges of the tables, the learned two from ``model``."""
    return {FIXED: judges.fixed_score, LEARNED: judges.learned_score(model),
            ESCALATE: judges.learned_score(model, checks_escalate=True)}


def fit_halves(records: Sequence[Record]) -> dict[str, judge_model.JudgeModel]:
    """The learned judge fitted on each half."""
    return {half: fit_learned([r for r in records if r["split"] == half],
                              f"HumanEval {half} half") for half in HALVES}


def cross_fit(records: Sequence[Record], *, repairs: Mapping[str, Record] | None = None,
              default_threshold: float, resamples: int = 0, seed: int = 0,
              models: Mapping[str, judge_model.JudgeModel] | None = None) -> dict[str, Any]:
    """Both directions, and the two scored halves pooled. ``default_threshold``: the shipped
    ``confidence_threshold``, at which the fixed judge is also scored (``default``: nothing
    fitted). ``models``: the learned judge fitted on each half (:func:`fit_halves`, by
    default fitted here)."""
    halves = {h: [r for r in records if r["split"] == h] for h in HALVES}
    models = models or fit_halves(records)

    def served(rows: Sequence[Record]) -> list[Record]:
        return judges.with_repair(rows, repairs) if repairs is not None else list(rows)

    result: dict[str, Any] = {"directions": {}}
    pooled: dict[str, dict[str, list[bootstrap.Decision]]] = {}
    pooled_held: list[Record] = []
    apgrs: dict[str, list[float]] = {}
    for fit_half, held_half in (HALVES, HALVES[::-1]):
        fit, held = served(halves[fit_half]), served(halves[held_half])
        scores = scores_for(models[fit_half])
        data = judges.compare(fit, held, scores, resamples=resamples, seed=seed)
        data["default"] = judges.at_threshold(held, judges.fixed_score, default_threshold,
                                              resamples=resamples, seed=seed)
        result["directions"][f"{fit_half}->{held_half}"] = data
        pooled_held += held
        for name, score in scores.items():
            for goal in GOALS:
                threshold = data["judges"][name][f"at_{goal}"]["threshold"]
                pooled.setdefault(name, {}).setdefault(goal, []).extend(
                    judges.decisions(held, score, threshold))
            if data["judges"][name]["apgr"] is not None:
                apgrs.setdefault(name, []).append(data["judges"][name]["apgr"])
        pooled.setdefault("default", {}).setdefault("default", []).extend(
            judges.decisions(held, judges.fixed_score, default_threshold))
    result["pooled"] = pool(pooled, pooled_held, apgrs, resamples=resamples, seed=seed)
    return result


def pool(rows: Mapping[str, Mapping[str, Sequence[bootstrap.Decision]]],
         held: Sequence[Record], apgrs: Mapping[str, Sequence[float]], *, resamples: int,
         seed: int) -> dict[str, Any]:
    """Figures of the decisions of both scored halves together."""
    data: dict[str, Any] = {**judges.rates(held), "judges": {}}
    if resamples:
        data["ci"] = judges.rate_intervals(held, resamples=resamples, seed=seed)
    for name, goals in rows.items():
        row: dict[str, Any] = {}
        for goal, found in goals.items():
            point: dict[str, Any] = bootstrap.figures(found)
            if resamples:
                point["ci"] = bootstrap.intervals(found, resamples=resamples, seed=seed)
            row[f"at_{goal}"] = point
        if name in apgrs:
            row["apgr"] = sum(apgrs[name]) / len(apgrs[name])
        if name == "default":
            data["default"] = row["at_default"]
        else:
            data["judges"][name] = row
    return data


def held_out_set(calibration: Sequence[Record], held: Sequence[Record], *,
                 default_threshold: float, resamples: int = 0, seed: int = 0,
                 model: judge_model.JudgeModel | None = None) -> dict[str, Any]:
    """Another problem set scored with the judges and thresholds of HumanEval's calibrate
    half (the shipped recipe; ``model``: the learned judge fitted there, by default fitted
    here), and the fixed judge at the shipped threshold."""
    scores = scores_for(model or fit_learned(calibration, "HumanEval calibrate half"))
    data = judges.compare(calibration, held, scores, resamples=resamples, seed=seed)
    data["default"] = judges.at_threshold(held, judges.fixed_score, default_threshold,
                                          resamples=resamples, seed=seed)
    return data
