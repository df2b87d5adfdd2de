"""`smallcode calibrate --from-feedback`: the labels clients posted on their tasks set the
threshold, from a real Valkey, through the real command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from policies.calibration import outcomes_from_feedback
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


async def _labelled_tasks(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    names = Names(prefix)
    try:
        for i in range(10):
            created = await tasks.create(redis, names, team="payments", key_id=None,
                                         request={"prompt": f"task {i}"}, keep_s=3600)
            task_id = created.task["id"]
            await tasks.start_attempt(redis, names, task_id, worker="w", keep_s=3600)
            await tasks.finish(redis, names, task_id, status="done", keep_s=3600, answer="x",
                               route={"final": "local", "confidence": i / 10})
            # the low-confidence half was wrong, the high half right
            await tasks.set_feedback(redis, names, task_id, accepted=i >= 5,
                                     tests_passed=None, keep_s=3600)
    finally:
        await redis.aclose()


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
