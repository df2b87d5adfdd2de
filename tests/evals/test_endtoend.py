"""The routed row end to end: the graph replays the committed records and serves what the
simulation says it serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.evals import endtoend, recorded
from router.evals.humaneval import load_problems, select
from router.evals.run import EvalError
from router.graph import signals
from router.settings import DEFAULT_CONFIG, load_settings

# HumanEval/9: the local answer fails its example, two repair rounds fail too, the cloud's
# answer passes; HumanEval/4: the local answer is kept and passes.
TASKS = ["9", "4"]


def test_records_carry_what_the_judge_reads(sandbox) -> None:
    settings = load_settings(DEFAULT_CONFIG)
    problems = select(load_problems(), TASKS)
    found = recorded.load(problems, paths=recorded.Paths(), sandbox=sandbox,
                          rules=settings.policies.for_team(None), max_tokens=512)
    assert found.missing == []
    assert len(found.cloud) == 2 and all(g.logprobs is None for g in found.cloud.values())
    assert len(found.local) == 4  # two first answers, HumanEval/9's two repair rounds
    first = next(g for r, g in found.local.items() if len(r.messages[0].content) < 1200
                 and "rolling_max" in r.messages[0].content and "Careful" not in
                 r.messages[0].content)
    features = json.loads(next(line for line in Path("docs/humaneval-features.jsonl")
                               .read_text().splitlines() if '"HumanEval/9"' in line))
    assert signals.confidence([t.logprob for t in first.logprobs or ()]) == \
        signals.confidence(features["local"]["lp"])


def test_replayed_run_serves_what_the_simulation_says(tmp_path: Path, smol_standin_url: str,
                                                      model_cache: Path) -> None:
    settings = load_settings(DEFAULT_CONFIG, cloud={"api_base": smol_standin_url},
                             models={"cache_dir": model_cache})
    out = tmp_path / "routed.jsonl"
    problems = select(load_problems(), TASKS)
    lines = endtoend.run(problems, settings=settings, out=out, mode="replay",
                         log=lambda line: None)
    by_task = {r["task_id"]: r for r in lines}
    repaired, kept = by_task["HumanEval/9"], by_task["HumanEval/4"]
    assert (repaired["route"], repaired["reason"], repaired["repair_rounds"]) == (
        "cloud", "failed_checks", 2)
    assert kept["route"] == "local" and kept["repair_rounds"] == 0
    for line in lines:
        assert (line["route"], line["passed"]) == (line["simulated"]["route"],
                                                   line["simulated"]["passed"])
        # nothing was generated: every request the graph made was a recorded one
        assert line["generations"]["local"]["live"] == 0
        assert line["generations"]["cloud"]["live"] == 0
    assert repaired["generations"]["local"]["replayed"] == 3
    data = endtoend.summary(lines, resamples=50)
    assert data["differ"] == [] and data["end_to_end"]["cloud_share"] == 0.5
    learned = load_settings(DEFAULT_CONFIG, policies={"default": {"judge_model": "builtin"}})
    with pytest.raises(EvalError, match="another policy"):
        endtoend.run(problems, settings=learned, out=out, mode="replay", log=lambda line: None)


def test_benchmarks_end_to_end_table_matches_the_records() -> None:
    from router.evals.run import read_results

    text = Path("BENCHMARKS.md").read_text(encoding="utf-8")
    begin, end = "<!-- routed-end-to-end:begin -->\n", "<!-- routed-end-to-end:end -->"
    table = text[text.index(begin) + len(begin):text.index(end)].strip().splitlines()
    runs = [read_results(path) for path in endtoend.RUNS]
    assert all(runs), "every committed end-to-end run has records"
    assert table == endtoend.markdown(runs)
