"""`smallcode calibrate --from-feedback`: the labels clients posted on their tasks set the
threshold, from a real Valkey, through the real command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from policies.calibration import judge_rows_from_feedback, outcomes_from_feedback
from router.graph import judge_model
from router.store import tasks
from router.store.names import Names

REPO = Path(__file__).resolve().parents[2]


def test_only_locally_served_tasks_label_the_local_answer() -> None:
    labelled = [
        {"route": {"final": "local", "confidence": 0.9}, "feedback": {"accepted": True,
                                                                     "tests_passed": None}},
        {"route": {"final": "local", "confidence": 0.4}, "feedback": {"accepted": True,
                                                                     "tests_passed": False}},
        {"route": {"final": "cloud", "confidence": 0.2}, "feedback": {"accepted": False,
                                                                     "tests_passed": False}},
        {"route": None, "feedback": {"accepted": True, "tests_passed": None}},
    ]
    outcomes = outcomes_from_feedback(labelled)
    assert [(o.score, o.local_correct) for o in outcomes] == [(0.9, True), (0.4, False)]


def test_the_judges_rows_are_the_recorded_features_of_locally_served_tasks() -> None:
    features = {"lp_mean": 0.9, "examples_none": 1.0}
    labelled = [
        {"route": {"final": "local", "signals": {"judge_features": features}},
         "feedback": {"accepted": False, "tests_passed": True}},
        {"route": {"final": "local", "signals": {}}, "feedback": {"accepted": True}},
        {"route": {"final": "cloud", "signals": {"judge_features": features}},
         "feedback": {"accepted": False, "tests_passed": None}},
    ]
    assert judge_rows_from_feedback(labelled) == [(features, True)]


def _features(right: bool, i: int) -> dict[str, float]:
    """What the route record keeps of a local answer: sure and right, or unsure and wrong."""
    probs = [-0.03 - i / 1000] * 40 if right else [-1.0 - i / 100] * 40
    values = judge_model.features(logprob=judge_model.logprob_features(probs), syntax_errors=0,
                                  code_blocks=1, examples=None, repair_rounds=0,
                                  task_type="generate", prompt_tokens=300, files=0)
    assert values is not None
    return {k: round(v, 4) for k, v in values.items()}


async def _labelled(url: str, prefix: str,
                    tasks_: list[tuple[dict[str, object], bool]]) -> None:
    """Finished local tasks in a real Valkey, each with its route record and its label."""
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    names = Names(prefix)
    try:
        for i, (route, accepted) in enumerate(tasks_):
            created = await tasks.create(redis, names, team="payments", key_id=None,
                                         request={"prompt": f"task {i}"}, keep_s=3600)
            task_id = created.task["id"]
            await tasks.start_attempt(redis, names, task_id, worker="w", keep_s=3600)
            await tasks.finish(redis, names, task_id, status="done", keep_s=3600, answer="x",
                               route=route)
            await tasks.set_feedback(redis, names, task_id, accepted=accepted,
                                     tests_passed=None, keep_s=3600)
    finally:
        await redis.aclose()


async def _judged_tasks(url: str, prefix: str) -> None:
    """Right answers were sure, wrong ones unsure; the last task is from a run without
    logprobs: no features to learn from."""
    await _labelled(url, prefix, [
        ({"final": "local", "confidence": 0.7,
          "signals": {"judge_features": _features(i % 2 == 0, i)} if i < 20 else {}},
         i % 2 == 0) for i in range(21)])


def test_calibrate_fit_from_feedback_writes_a_judge_that_learned_the_labels(
        redis_url: str, tmp_path: Path) -> None:
    asyncio.run(_judged_tasks(redis_url, "judged"))
    env = {"SMALLCODE_REDIS__URL": redis_url, "SMALLCODE_REDIS__PREFIX": "judged",
           "SMALLCODE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "team-judge.json"
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "calibrate",
                           "--from-feedback", "--fit", "--target-cloud-share", "0.5",
                           "--model-out", str(out), "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 20 and result["expected_cloud_share"] == 0.5
    assert result["expected_quality"] == 1.0  # exactly the wrong half goes to the cloud
    model = judge_model.load(str(out))
    assert model.meta["fitted_on"] == "feedback"
    assert model.probability(_features(True, 3)) > model.threshold
    assert model.probability(_features(False, 3)) < model.threshold


def test_calibrate_fit_from_feedback_without_labels_says_what_to_do(
        redis_url: str, tmp_path: Path) -> None:
    env = {"SMALLCODE_REDIS__URL": redis_url, "SMALLCODE_REDIS__PREFIX": "nothing-labelled",
           "SMALLCODE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "calibrate",
                           "--from-feedback", "--fit", "--target-cloud-share", "0.2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "/v1/tasks/{id}/feedback" in done.stderr
    assert "Traceback" not in done.stderr


async def _labelled_tasks(url: str, prefix: str) -> None:
    """The low-confidence half was wrong, the high half right."""
    await _labelled(url, prefix, [({"final": "local", "confidence": i / 10}, i >= 5)
                                  for i in range(10)])


def test_calibrate_from_feedback_reads_the_labels(redis_url: str, tmp_path: Path) -> None:
    asyncio.run(_labelled_tasks(redis_url, "feedback"))
    env = {"SMALLCODE_REDIS__URL": redis_url, "SMALLCODE_REDIS__PREFIX": "feedback",
           "SMALLCODE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "router.cli.main", "calibrate",
                           "--from-feedback", "--target-quality", "1.0", "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 10
    # every wrong answer (confidence < 0.5) must go to the cloud to reach a 100% pass rate
    assert 0.4 < result["threshold"] <= 0.5
    assert result["expected_cloud_share"] == 0.5
