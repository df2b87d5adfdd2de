"""`smallcode eval` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.evals.humaneval import load_problems, select
from router.evals.run import EvalError, prepare_out, run
from router.settings import load_settings
from tests.evals.records import record
from tests.helpers import REPO, smallcode


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def sample(n: int = 12) -> list[dict]:
    records = []
    for i in range(n):
        score = (i + 0.5) / n
        local = i >= n // 3  # the low scores fail locally
        records.append(record(f"HumanEval/{i}", score, local, i % 5 != 0,
                              split="calibrate" if i % 2 else "report",
                              routed="cloud" if score < 0.55 else "local"))
    return records


def test_curve_writes_a_png_and_finds_the_threshold(tmp_path: Path) -> None:
    results = write(tmp_path / "results.jsonl", sample())
    png = tmp_path / "docs" / "curve.png"
    done = smallcode("eval", "curve", str(results), "--png", str(png), "--json")
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(done.stdout)
    point = summary["threshold_at_cloud_quality"]
    # cloud-only pass@1 is 9/12; sending the 2 lowest scores (one the cloud gets right,
    # one it gets wrong) already reaches it
    assert summary["pass_at_1"]["cloud"] == 0.75
    assert point["pass_at_1"] >= 0.75 and point["cloud_share"] == pytest.approx(2 / 12)


def test_report_and_calibrate_read_the_results_file(tmp_path: Path) -> None:
    results = write(tmp_path / "results.jsonl", sample())
    done = smallcode("eval", "report", str(results), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["held_out"]["report_n"] == 6 and "both" in report["held_out"]["variants"]
    calibrated = smallcode("calibrate", str(results), "--target-quality", "0.75", "--json")
    assert calibrated.returncode == 0, calibrated.stderr
    assert json.loads(calibrated.stdout)["n"] == 12


def test_empty_results_say_what_to_do(tmp_path: Path) -> None:
    done = smallcode("eval", "curve", str(tmp_path / "none.jsonl"))
    assert done.returncode == 2 and "smallcode eval humaneval" in done.stderr


def test_resume_skips_done_problems_without_loading_models(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    done = [record("HumanEval/0", 0.9, True, True), record("HumanEval/1", 0.2, False, True)]
    out.write_text("".join(json.dumps(r) + "\n" for r in done) + '{"task_id": "HumanEv')
    settings = load_settings(None, models={"cache_dir": tmp_path / "no-models"})
    records = run(select(load_problems(), limit=2), settings=settings, out=out, resume=True,
                  max_tokens=16, progress=False, log=lambda line: None)
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1"]
    assert len(out.read_text().splitlines()) == 2  # the torn line is gone
    with pytest.raises(EvalError, match="--resume"):
        prepare_out(out, resume=False)


def smallcode_long(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`smallcode` with room for two problems on three tiers on a busy 2-core machine."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLCODE_")}
    return subprocess.run([sys.executable, "-m", "router.cli.main", *args], cwd=REPO,
                          env={**full_env, **env}, capture_output=True, text=True, timeout=560,
                          check=False)


@pytest.mark.slow
def test_humaneval_two_problems_then_resume(tmp_path: Path, standin_url: str,
                                            model_cache: Path) -> None:
    out = tmp_path / "results.jsonl"
    env = {"SMALLCODE_CLOUD__API_BASE": standin_url}
    done = smallcode_long("eval", "humaneval", "--limit", "2", "--max-tokens", "192", "--out",
                          str(out), "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary["pass_at_1"]) == {"local", "cloud", "routed"}
    assert 0.0 <= summary["cloud_share"] <= 1.0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in lines] == ["HumanEval/0", "HumanEval/1"]
    for r in lines:
        assert {"confidence", "local_passed", "cloud_passed"} <= r.keys()
        assert r["local"]["answer"] and r["cloud"]["answer"] and r["cloud"]["cost_usd"] > 0
        assert r["routed"]["route"] in ("local", "cloud") and r["routed"]["reason"]
        # the graph's generations were replayed from the single-tier runs
        assert r["routed"]["same_as"] == r["routed"]["route"]
    assert summary["pass_at_1"]["cloud"] == sum(r["cloud_passed"] for r in lines) / 2
    again = smallcode("eval", "humaneval", "--limit", "2", "--out", str(out), "--resume",
                      env=env)
    assert again.returncode == 0, again.stderr
    assert "resuming: 2 of 2" in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["pass_at_1"] == summary["pass_at_1"]
    assert len(out.read_text().splitlines()) == 2
