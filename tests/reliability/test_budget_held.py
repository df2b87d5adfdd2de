"""A team's budget and its ledger agree when a task stops in the middle of a cloud call: a
worker SIGKILLed mid call leaves its reservation open, and the rerun settles it at what the
dead attempt's events show it streamed (its own ledger entry), then charges its own run once; a task cancelled
(DELETE) mid call is in the ledger with what its budget was charged. Real `smallcode worker`
processes, real Valkey, the SmolLM2 stand-in as the cloud behind a proxy that streams slowly
(so the test can act mid call)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.config import CloudConfig
from router.run.budget import hold_s
from router.store import budgets, ledger, tasks
from tests.recording_proxy import paced_proxy
from tests.reliability.conftest import LogScan, Service, auth, figure, in_store, running

REPO = Path(__file__).resolve().parents[2]
PREFIX = "rel-budget-held"
TEAMS = ("killed", "cancelled")
POLICIES = {"teams": {team: {"budget_usd": 10.0, "budget_period": "month"} for team in TEAMS}}
CLOUD = {"n_ctx": 1024, "num_retries": 0, "timeout_s": 2}
FILES = [{"path": f"pkg/m{i}.py", "content": f"def f{i}():\n    return {i}\n"} for i in range(3)]
BODY = {"prompt": "Write a long story about a cat.", "files": FILES, "max_tokens": 40}
PACE_S = 0.25  # between the cloud's streamed tokens: a 40-token answer takes 10 s


store = functools.partial(in_store, PREFIX)  # in_store(PREFIX, url, call, ...)


def budget(url: str, team: str) -> budgets.BudgetState:
    state: budgets.BudgetState = store(url, budgets.state, scope=f"team:{team}", period="month",
                                       limit_usd=10.0)
    return state


@pytest.fixture(scope="module")
def setup(smol: Any, smol_standin_url: str, valkey_server: Any, model_cache: Path,
          tmp_path_factory: pytest.TempPathFactory,
          service_logs: LogScan) -> Iterator[tuple[Service, Path]]:
    with paced_proxy(smol_standin_url, PACE_S) as slow, \
            running(smol, slow, valkey_server.url, prefix=PREFIX, proxy=False,
                    policies=POLICIES, cloud=CLOUD) as service:
        folder = tmp_path_factory.mktemp("budget-held")
        config = folder / "config.yaml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "data_dir": str(folder / "data"),
            "models": {"cache_dir": str(model_cache)},
            "local": {"model": "smollm2-135m", "n_ctx": 2048, "n_threads": 1},
            "cloud": {"api_base": slow, **CLOUD},
            "policies": POLICIES,
            "redis": {"url": valkey_server.url, "prefix": PREFIX},
            "tasks": {"lease_s": 2, "poll_s": 0.05, "heartbeat_s": 1},
        }))
        yield service, config


def worker(config: Path, name: str) -> subprocess.Popen[bytes]:
    with (config.parent / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli.main", "--config", str(config), "worker",
             "--no-retrieval"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def wait_cloud_tokens(url: str, task_id: str, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = store(url, tasks.read_events, task_id, after="0", block_ms=None)
        text = "".join(json.loads(e.data)["text"] for e in found if e.event == "token"
                       and json.loads(e.data)["tier"] == "cloud")
        if len(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the cloud streamed no {count} characters within {timeout_s} s")


def wait_status(url: str, task_id: str, statuses: set[str], timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := store(url, tasks.status, task_id)) not in statuses:
        assert time.monotonic() < deadline, f"task still {status}"
        time.sleep(0.1)
    return str(status)


def test_a_worker_killed_mid_cloud_call_leaves_no_reservation_and_charges_once(
        setup: tuple[Service, Path], valkey_server: Any) -> None:
    service, config = setup
    url = valkey_server.url
    key = service.key("killed")
    first, second = worker(config, "first"), None
    try:
        reply = httpx.post(f"{service.url}/v1/tasks", json=BODY, headers=auth(key), timeout=30)
        task_id = reply.json()["id"]
        wait_cloud_tokens(url, task_id, 3)
        left_open = budget(url, "killed")
        assert left_open.open_reservations == 1  # the call in flight holds its worst case
        first.kill()  # SIGKILL mid cloud call: nothing settles or releases it
        first.wait()
        killed_at = time.monotonic()
        second = worker(config, "second")
        assert wait_status(url, task_id, tasks.FINAL) == "done"
        rerun_done_s = time.monotonic() - killed_at
        before_hold = budget(url, "killed")
        hold = hold_s(CloudConfig(**CLOUD))
        deadline = time.monotonic() + hold + 15
        while (state := budget(url, "killed")).open_reservations and time.monotonic() < deadline:
            time.sleep(0.5)
        reaped_s = time.monotonic() - killed_at
    finally:
        stop(first, second)
    entries = store(url, ledger.page_entries, team="killed", start=0, end=time.time() + 60,
                    limit=10)
    figure("worker SIGKILLed mid cloud call (budget)", hold_s=hold,
           rerun_done_s=round(rerun_done_s, 1), open_before_hold=before_hold.open_reservations,
           reaped=state.reaped, reaped_after_s=round(reaped_s, 1),
           ledger_entries=len(entries), ledger_usd=entries[0]["cost_usd"] if entries else None,
           budget_spent_usd=state.spent_usd, reserved_usd=state.reserved_usd)
    by_id = {e["id"]: e for e in entries}
    # The rerun charged the dead attempt what its events show it streamed (settling its
    # reservation before it was reaped), under its own entry, then its own run, once.
    assert sorted(by_id) == sorted([task_id, f"{task_id}#1"])
    assert by_id[task_id]["route"] == "cloud" and by_id[task_id]["cost_usd"] > 0
    assert by_id[f"{task_id}#1"]["status"] == "lost" and by_id[f"{task_id}#1"]["cost_usd"] > 0
    assert state.open_reservations == 0 and state.reaped == 0
    assert state.reserved_usd == pytest.approx(0, abs=1e-9)
    assert state.spent_usd == pytest.approx(sum(e["cost_usd"] for e in entries), rel=1e-6)


def test_a_task_cancelled_mid_cloud_call_is_in_the_ledger_with_its_spend(
        setup: tuple[Service, Path], valkey_server: Any) -> None:
    service, config = setup
    url = valkey_server.url
    key = service.key("cancelled")
    running_worker = worker(config, "canceller")
    try:
        reply = httpx.post(f"{service.url}/v1/tasks", json=BODY, headers=auth(key), timeout=30)
        task_id = reply.json()["id"]
        wait_cloud_tokens(url, task_id, 3)
        cancelled = httpx.delete(f"{service.url}/v1/tasks/{task_id}", headers=auth(key),
                                 timeout=30)
        assert cancelled.json()["status"] == "cancelled"
        deadline = time.monotonic() + 30
        while (entry := store(url, ledger.get_entry, task_id)) is None:
            assert time.monotonic() < deadline, "the cancelled task was not recorded"
            time.sleep(0.2)
        deadline = time.monotonic() + 15
        while (state := budget(url, "cancelled")).open_reservations and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(running_worker)
    figure("task cancelled mid cloud call (budget)", ledger_usd=entry["cost_usd"],
           completion_tokens=entry["tokens"]["completion"], budget_spent_usd=state.spent_usd,
           open_reservations=state.open_reservations)
    assert entry["status"] == "cancelled" and entry["reason"] == "cancelled", entry
    assert entry["route"] == "cloud" and entry["cost_usd"] > 0
    assert 0 < entry["tokens"]["completion"] < BODY["max_tokens"]  # stopped midway
    assert state.open_reservations == 0
    assert state.spent_usd == pytest.approx(entry["cost_usd"], rel=1e-6)
    assert store(url, tasks.status, task_id) == "cancelled"
