"""Workers SIGKILLed at random points while 50 accepted tasks are in flight, several times
over: every task ends done exactly once, with one ledger entry (charged once: the team's
ledger spend is the sum of its entries), none lost. Real `smallcode worker` processes (two at
a time, each killed one replaced), SmolLM2 as the local tier, the SmolLM2 stand-in as the
cloud (a third of the tasks attach three files, so they go there and cost something)."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from router.store import ledger, tasks
from router.store.names import Names
from tests.reliability.conftest import LogScan, auth, figure, in_store, running

pytestmark = pytest.mark.reliability  # a few minutes: workers start, die and start again
REPO = Path(__file__).resolve().parents[2]
PREFIX = "rel-kills"
TASKS, KILLS, SEED = 50, 4, 20261202
FILES = [{"path": f"pkg/m{i}.py", "content": f"def f{i}():\n    return {i}\n"} for i in range(3)]


store = functools.partial(in_store, PREFIX)  # in_store(PREFIX, url, call, ...)


def worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli.main", "--config", str(config), "worker",
             "--no-retrieval"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_workers_killed_at_random_points_lose_and_double_no_task(
        smol: Any, smol_standin_url: str, valkey_server: Any, model_cache: Path,
        tmp_path: Path, service_logs: LogScan) -> None:
    rng = random.Random(SEED)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "data_dir": str(tmp_path / "data"),
        "models": {"cache_dir": str(model_cache)},
        "local": {"model": "smollm2-135m", "n_ctx": 2048, "n_threads": 1},
        "cloud": {"api_base": smol_standin_url, "n_ctx": 1024, "num_retries": 0},
        "redis": {"url": valkey_server.url, "prefix": PREFIX},
        "tasks": {"lease_s": 2, "poll_s": 0.05, "heartbeat_s": 1, "max_tries": 10},
    }))
    alive: list[subprocess.Popen[bytes]] = []
    kills: list[dict[str, Any]] = []
    with running(smol, smol_standin_url, valkey_server.url, prefix=PREFIX, proxy=False) as service:
        key = service.key("batch")
        try:
            alive += [worker(config, tmp_path / "w0.log"), worker(config, tmp_path / "w1.log")]
            ids = []
            for i in range(TASKS):
                body: dict[str, Any] = {"prompt": f"Task {i}: say one word.", "max_tokens": 12}
                if i % 3 == 0:
                    body["files"] = FILES  # multi-file: the cloud, which costs something
                reply = httpx.post(f"{service.url}/v1/tasks", json=body, headers=auth(key),
                                   timeout=30)
                assert reply.status_code == 202, reply.text
                ids.append(reply.json()["id"])
            started = time.monotonic()
            for n in range(KILLS):
                # A random point: the next kill once some task is running, after a random wait.
                time.sleep(rng.uniform(0.5, 4.0))
                _wait_running(valkey_server.url, ids)
                victim = rng.choice(alive)
                victim.kill()  # SIGKILL: no clean-up of any kind
                victim.wait()
                alive.remove(victim)
                kills.append({"after_s": round(time.monotonic() - started, 1),
                              "done_by_then": _count_done(valkey_server.url, ids)})
                alive.append(worker(config, tmp_path / f"w{n + 2}.log"))
            final = _wait_all_final(valkey_server.url, ids, timeout_s=420)
        finally:
            for process in alive:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    statuses = [final[i]["status"] for i in ids]
    reruns = sum(1 for i in ids if int(final[i]["attempts"]) > 1)
    entries = store(valkey_server.url, ledger.page_entries, team="batch", start=0,
                    end=time.time() + 60, limit=1000)
    entry_ids = [e["id"] for e in entries]
    cloud = [e for e in entries if e["route"] == "cloud"]
    ledger_usd = sum(e["cost_usd"] for e in entries)
    figure("worker SIGKILL over in-flight tasks", tasks=TASKS, kills=len(kills), seed=SEED,
           kill_points=kills, reruns=reruns, done=statuses.count("done"),
           ledger_entries=len(entry_ids), duplicates=len(entry_ids) - len(set(entry_ids)),
           lost=len(set(ids) - set(entry_ids)), cloud_entries=len(cloud),
           ledger_usd=round(ledger_usd, 6))
    assert statuses == ["done"] * TASKS, {i: final[i] for i in ids if final[i]["status"] != "done"}
    assert sorted(entry_ids) == sorted(ids)  # each accepted task once: none lost, none doubled
    assert reruns >= 1  # the kills did land mid-task
    assert cloud and all(e["cost_usd"] > 0 for e in cloud)


def _tasks(url: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    async def go(redis: Redis, names: Names) -> dict[str, dict[str, Any]]:
        found = {}
        for task_id in ids:
            task = await tasks.get(redis, names, task_id)
            assert task is not None, f"task {task_id} vanished"
            found[task_id] = task
        return found
    result: dict[str, dict[str, Any]] = store(url, go)
    return result


def _count_done(url: str, ids: list[str]) -> int:
    return sum(1 for t in _tasks(url, ids).values() if t["status"] in tasks.FINAL)


def _wait_running(url: str, ids: list[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(t["status"] == "running" for t in _tasks(url, ids).values()):
        assert time.monotonic() < deadline, "no task started running"
        time.sleep(0.05)


def _wait_all_final(url: str, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = _tasks(url, ids)
        if all(t["status"] in tasks.FINAL for t in found.values()):
            return found
        assert time.monotonic() < deadline, {i: t["status"] for i, t in found.items()
                                             if t["status"] not in tasks.FINAL}
        time.sleep(0.2)
