"""Calibrate the confidence threshold from recorded outcomes (RouteLLM style).

Routing rule, the one the router applies: a task goes to the cloud when its confidence score
is None (no evidence is not confidence) or below the threshold; otherwise it stays local.

An outcome records a task's score, whether the local answer was right, and, when known,
whether the cloud answer was right. The expected quality of a threshold is the share of
tasks answered right: ``local_correct`` for the tasks it keeps local, ``cloud_correct`` for
those it sends out. Where ``cloud_correct`` is unknown it counts at the cloud pass rate
measured on the outcomes that do record it, and as right (1.0) when none does, which makes
the figure an upper bound; :class:`Calibration` does not hide this, so record cloud outcomes
(benchmark runs do) when the quality figure matters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.errors import CalibrationError, OutcomesError


@dataclass(frozen=True)
class Outcome:
    score: float | None
    local_correct: bool
    cloud_correct: bool | None = None


@dataclass(frozen=True)
class Calibration:
    threshold: float
    expected_cloud_share: float
    expected_quality: float
    n: int


def calibrate(
    outcomes: Sequence[Outcome],
    *,
    target_cloud_share: float | None = None,
    target_quality: float | None = None,
) -> Calibration:
    """The threshold meeting exactly one target.

    ``target_cloud_share``: the quantile of the scores that sends at most that share of the
    tasks to the cloud (ties can make it less); tasks without a score always go, so when they
    alone exceed the target the result sends only them (threshold 0) and says so in
    ``expected_cloud_share``.
    ``target_quality``: the smallest cloud share whose expected quality reaches the target;
    :class:`CalibrationError` when no threshold does.
    """
    if (target_cloud_share is None) == (target_quality is None):
        raise CalibrationError("give exactly one of target_cloud_share and target_quality")
    for name, target in (("target_cloud_share", target_cloud_share),
                         ("target_quality", target_quality)):
        if target is not None and not 0.0 <= target <= 1.0:
            raise CalibrationError(f"{name} must be between 0 and 1, got {target}")
    if not outcomes:
        raise CalibrationError("no outcomes to calibrate from: record some runs first")

    if target_cloud_share is not None:
        n = len(outcomes)
        unscored = sum(o.score is None for o in outcomes)
        scores = sorted(o.score for o in outcomes if o.score is not None)
        extra = math.floor(target_cloud_share * n + 1e-9) - unscored
        if extra <= 0 or not scores:
            threshold = 0.0  # no score is below 0: only the unscored go
        elif extra >= len(scores):
            threshold = 1.0  # every score below 1 goes (a score of exactly 1 stays local)
        else:
            threshold = scores[extra]  # the extra lowest go, fewer where scores tie
        return _evaluate(outcomes, threshold)

    assert target_quality is not None
    curve = sweep(outcomes)
    for point in curve:  # ascending cloud share
        if point.expected_quality >= target_quality - 1e-12:
            return point
    best = max(point.expected_quality for point in curve)
    raise CalibrationError(
        f"target_quality {target_quality} is out of reach: the best expected quality of "
        f"these {len(outcomes)} outcomes is {best:.4f}"
    )


def sweep(outcomes: Sequence[Outcome]) -> list[Calibration]:
    """One point per distinct threshold, in ascending cloud share: each distinct score
    (the lowest keeps every scored task local) and, when every score is below 1, threshold
    1.0 (every task to the cloud). The cost–quality curve."""
    if not outcomes:
        raise CalibrationError("no outcomes to calibrate from: record some runs first")
    scores = sorted({o.score for o in outcomes if o.score is not None})
    thresholds = scores or [0.0]
    if not scores or scores[-1] < 1.0:
        thresholds = [*thresholds, 1.0]
    return [_evaluate(outcomes, threshold) for threshold in thresholds]


def _evaluate(outcomes: Sequence[Outcome], threshold: float) -> Calibration:
    known = [o.cloud_correct for o in outcomes if o.cloud_correct is not None]
    cloud_rate = sum(known) / len(known) if known else 1.0
    cloud = 0
    correct = 0.0
    for outcome in outcomes:
        if outcome.score is None or outcome.score < threshold:
            cloud += 1
            correct += cloud_rate if outcome.cloud_correct is None else outcome.cloud_correct
        else:
            correct += outcome.local_correct
    n = len(outcomes)
    return Calibration(threshold, cloud / n, correct / n, n)


def load_outcomes(path: Path) -> list[Outcome]:
    """Outcomes from JSON lines ``{"confidence": float|null, "local_passed": bool,
    "cloud_passed": bool|null}`` (``cloud_passed`` may be absent; other keys are ignored;
    blank lines are skipped). :class:`OutcomesError` names the file and line of a bad one."""
    outcomes = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutcomesError(f"cannot read outcomes file {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            outcomes.append(_parse(line))
        except ValueError as exc:
            raise OutcomesError(f"{path}:{number}: {exc}") from None
    return outcomes


def _parse(line: str) -> Outcome:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object with confidence and local_passed")
    if "confidence" not in record or "local_passed" not in record:
        raise ValueError("confidence and local_passed are required")
    score = record["confidence"]
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float)
        or not 0.0 <= score <= 1.0
    ):
        raise ValueError(f"confidence must be a number in [0, 1] or null, got {score!r}")
    local = record["local_passed"]
    if not isinstance(local, bool):
        raise ValueError(f"local_passed must be true or false, got {local!r}")
    cloud = record.get("cloud_passed")
    if cloud is not None and not isinstance(cloud, bool):
        raise ValueError(f"cloud_passed must be true, false or null, got {cloud!r}")
    return Outcome(None if score is None else float(score), local, cloud)


def _local_verdicts(tasks: Sequence[dict[str, object]]) -> list[tuple[dict[str, Any], bool]]:
    """Each labelled task served locally, with whether its local answer was right
    (``tests_passed`` when given, else ``accepted``). An escalated task's label is about the
    cloud's answer, so it is left out: the sample is the tasks the judge of the day kept
    local."""
    found = []
    for task in tasks:
        route, feedback = task.get("route"), task.get("feedback")
        if not isinstance(route, dict) or not isinstance(feedback, dict):
            continue
        if route.get("final") != "local":
            continue
        verdict = feedback.get("tests_passed")
        if verdict is None:
            verdict = feedback.get("accepted")
        if isinstance(verdict, bool):
            found.append((route, verdict))
    return found


def outcomes_from_feedback(tasks: Sequence[dict[str, object]]) -> list[Outcome]:
    """Outcomes from tasks that clients labelled (``POST /v1/tasks/{id}/feedback``): the
    fixed judge's confidence and whether the local answer was right (:func:`_local_verdicts`)."""
    outcomes = []
    for route, verdict in _local_verdicts(tasks):
        score = route.get("confidence")
        if score is None or (isinstance(score, int | float) and not isinstance(score, bool)):
            outcomes.append(Outcome(None if score is None else float(score), verdict, None))
    return outcomes


def judge_rows_from_feedback(
    tasks: Sequence[dict[str, object]],
) -> list[tuple[dict[str, float], bool]]:
    """The learned judge's training rows from labelled tasks: the features the route record
    kept (``signals.judge_features``, recorded whichever judge decided) and the verdict.
    Tasks without features (no logprobs) are left out."""
    rows = []
    for route, verdict in _local_verdicts(tasks):
        signals = route.get("signals")
        values = signals.get("judge_features") if isinstance(signals, dict) else None
        if isinstance(values, dict) and values and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
            rows.append(({str(k): float(v) for k, v in values.items()}, verdict))
    return rows
