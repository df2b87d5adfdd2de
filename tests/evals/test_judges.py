"""`smallcode eval judges`: today's judge against the learned one, calibrated on one half of
HumanEval and scored on the other, from records alone (no model runs)."""

from __future__ import annotations

import json
from pathlib import Path

from router.evals.humaneval import split_of
from tests.helpers import smallcode


def records(tmp_path: Path) -> tuple[Path, Path]:
    """Answers whose examples fail are wrong; unsure answers are wrong; the cloud is right."""
    features, results = tmp_path / "features.jsonl", tmp_path / "results.jsonl"
    lines, outcomes = [], []
    for i in range(60):
        task = f"HumanEval/{i}"
        failed, unsure = i % 5 == 0, i % 3 == 0
        lp = -1.0 if unsure else -0.02
        lines.append(json.dumps({
            "task_id": task, "set": "humaneval", "split": split_of(task),
            "local": {"answer": "", "passed": not (failed or unsure), "latency_ms": 1000.0,
                      "tokens": {"prompt": 100, "completion": 20}, "lp": [lp] * 20,
                      "top": [[lp, -4.0]] * 20},
            "checks": {"syntax_errors": 0, "code_blocks": 1,
                       "examples": {"passed": not failed, "ran": 2, "failed": int(failed)}}}))
        outcomes.append(json.dumps({"task_id": task, "cloud_passed": True,
                                    "cloud": {"latency_ms": 2000.0}}))
    features.write_text("\n".join(lines) + "\n")
    results.write_text("\n".join(outcomes) + "\n")
    return features, results


def test_judges_are_compared_held_out(tmp_path: Path) -> None:
    features, results = records(tmp_path)
    result = smallcode("eval", "judges", "--humaneval", str(features), "--results", str(results),
                       "--edge", str(tmp_path / "none.jsonl"), "--repairs",
                       str(tmp_path / "none.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["humaneval"]
    report = [i for i in range(60) if split_of(f"HumanEval/{i}") == "report"]
    assert data["n"] == len(report) and data["cloud"] == 1.0
    failed = sum(i % 5 == 0 for i in report) / len(report)
    fixed, learned = data["judges"]["fixed (today)"], data["judges"]["learned"]
    # today's judge sends every answer that fails its examples to the cloud
    assert fixed["at_cloud_share"]["cloud_share"] >= failed - 1e-9
    # the learned judge finds the unsure ones too, from the logprobs, and reaches the cloud
    assert learned["at_cloud_quality"]["pass_at_1"] == 1.0
    assert learned["at_cloud_quality"]["latency_s"] == {"local": 1.0, "cloud": 3.0}


def test_bootstrap_gives_every_figure_an_interval_around_it(tmp_path: Path) -> None:
    features, results = records(tmp_path)
    none = str(tmp_path / "none.jsonl")
    args = ("eval", "judges", "--humaneval", str(features), "--results", str(results),
            "--edge", none, "--repairs", none, "--everyday", none, "--bootstrap", "300", "--json")
    result = smallcode(*args)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["humaneval"]
    assert smallcode(*args).stdout == result.stdout  # seeded: the same intervals again
    low, high = data["ci"]["local"]
    assert low < data["local"] < high
    for row in data["judges"].values():
        for goal in ("at_cloud_quality", "at_cloud_share"):
            point = row[goal]
            for figure in ("pass_at_1", "cloud_share", "minus_cloud"):
                low, high = point["ci"][figure]
                assert low <= point[figure] <= high, (goal, figure)
    bad = smallcode("eval", "judges", "--humaneval", str(features), "--results", str(results),
                    "--bootstrap", "-1")
    assert bad.returncode == 2 and "--bootstrap" in bad.stderr


def test_judges_needs_the_records(tmp_path: Path) -> None:
    result = smallcode("eval", "judges", "--humaneval", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2 and "eval features" in result.stderr
