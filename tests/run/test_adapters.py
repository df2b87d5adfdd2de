"""One run layer under every adapter: the same task through the chat route (whole and
streamed), the task queue, and a request naming its tier (``model: local`` / ``model: cloud``,
whole and streamed) is recorded once each, with the same route record and the same budget
charged; and each early end (a client gone mid-stream, a task cancelled, a task past its time)
charges the budget what the ledger records, keeps its record, and writes one entry; so does
a task whose worker process is killed mid cloud call (another worker runs it again).

Real parts throughout: Valkey, uvicorn, an arq worker in the service's process, SmolLM2 as the
local tier and a SmolLM2 stand-in behind llama-cpp-python's server as the cloud, reached
through litellm."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from agents.cloud import CloudBackend
from router.service.app import create_app
from router.settings import Settings
from router.store import budgets, ledger, tasks
from router.store.names import Names
from tests.helpers import serving, worker_process

ADMIN = "admin-run-layer-" + "q" * 16
TEAM = "metered"
POLICIES = {"teams": {TEAM: {"budget_usd": 10.0, "budget_period": "month"}}}
# Three attached files: a multi-file task, so the route is the cloud's whatever the local
# model would say (the same decision on every adapter, made before anything generates).
FILES = [{"path": f"lib/m{i}.py", "content": f"X{i} = {i}\n"} for i in range(3)]
ASK = "Write a Python function that reverses a string."
MESSAGES = [{"role": "user", "content": ASK}]
LONG = "Count from 1 to 500, one number per line."  # an answer longer than tasks.timeout_s
VARIES = ("timings_ms",)  # what may differ between two runs of one task: how long each took
# What the provider counts, and so may differ between a cloud answer asked for whole and one
# streamed from the stand-in (see the test).
PROVIDER_COUNTED = ("tokens", "cost_usd", "counterfactual_cost_usd")


def settings(redis_url: str, cloud_url: str, prefix: str, **tasks_config: Any) -> Settings:
    return Settings(admin_key=ADMIN, redis={"url": redis_url, "prefix": prefix},
                    local={"n_ctx": 2048}, policies=POLICIES,
                    cloud={"api_base": cloud_url, "n_ctx": 1024, "num_retries": 0,
                           "timeout_s": 60},
                    # A long lease: no worker dies here, and a loaded machine's stalled loop
                    # must not let a second attempt of a running task start.
                    tasks={"lease_s": 60, "poll_s": 0.05, "heartbeat_s": 1, **tasks_config})


class Api:
    def __init__(self, url: str, redis_url: str, prefix: str) -> None:
        self.url, self.redis_url, self.names = url, redis_url, Names(prefix)
        response = httpx.post(f"{url}/v1/keys", json={"team": TEAM},
                              headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        assert response.status_code == 201, response.text
        self.headers = {"Authorization": f"Bearer {response.json()['key']}"}

    def store(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        async def go() -> Any:
            client = Redis.from_url(self.redis_url)
            try:
                return await call(client, self.names, *args, **kwargs)
            finally:
                await client.aclose()
        return asyncio.run(go())

    def spent_usd(self) -> float:
        """What the team's budget was charged so far (no reservation may be left open)."""
        deadline = time.monotonic() + 15  # a stopped call settles as its thread stops
        while True:
            state = self.store(budgets.state, scope=f"team:{TEAM}", period="month",
                               limit_usd=10.0)
            if not state.open_reservations or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state.open_reservations == 0 and state.reserved_usd == pytest.approx(0, abs=1e-12)
        return float(state.spent_usd)

    def entries(self) -> list[dict[str, Any]]:
        return list(self.store(ledger.page_entries, team=TEAM, start=0, end=time.time() + 60,
                               limit=100))

    def entry(self, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
        """The request's ledger entry with its stored record (waits for it to be written)."""
        deadline = time.monotonic() + timeout_s
        while (found := self.store(ledger.get_entry, request_id)) is None:
            assert time.monotonic() < deadline, f"no ledger entry for {request_id}"
            time.sleep(0.1)
        return {**found, "record": self.store(ledger.get_record, request_id)}

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/v1/chat/completions", headers=self.headers,
                              json=body, timeout=180)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def chat_streamed(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = []
        with httpx.stream("POST", f"{self.url}/v1/chat/completions", headers=self.headers,
                          json={**body, "stream": True}, timeout=180) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append(json.loads(line[6:]))
        return chunks

    def submit(self, body: dict[str, Any]) -> str:
        response = httpx.post(f"{self.url}/v1/tasks", headers=self.headers, json=body,
                              timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def task(self, task_id: str, *, until: tuple[str, ...] = tasks.FINAL,
             timeout_s: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = httpx.get(f"{self.url}/v1/tasks/{task_id}", headers=self.headers,
                              timeout=30).json()
            if found["status"] in until:
                return dict(found)
            assert time.monotonic() < deadline, f"task still {found['status']}"
            time.sleep(0.1)

    def wait_cloud_tokens(self, task_id: str, count: int, timeout_s: float = 120) -> int:
        """Wait until the task's progress events show ``count`` cloud tokens; how many."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.store(tasks.read_events, task_id, after="0", block_ms=None)
            streamed = sum(json.loads(e.data)["tokens"] for e in found
                           if e.event == "token" and json.loads(e.data)["tier"] == "cloud")
            if streamed >= count:
                return streamed
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} streamed no cloud tokens")


@pytest.fixture(scope="module")
def api(smol: Any, smol_standin_url: str, valkey_server: Any) -> Iterator[Api]:
    prefix = "run-layer"
    config = settings(valkey_server.url, smol_standin_url, prefix)
    app = create_app(config, local=smol, cloud=CloudBackend(config.cloud), with_retrieval=False)
    with serving(app) as url:
        yield Api(url, valkey_server.url, prefix)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VARIES}


def without(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


def charged(api: Api, run: Any) -> tuple[str, float]:
    """Run ``run()`` (it returns the request id); what the team's budget was charged by it."""
    before = api.spent_usd()
    request_id = run()
    return request_id, api.spent_usd() - before


def test_every_adapter_records_the_same_task_once_and_charges_the_same(api: Api) -> None:
    routed = {"model": "auto", "messages": MESSAGES, "files": FILES, "max_tokens": 24}
    runs = {
        "chat": lambda: api.chat(routed)["id"],
        "chat streamed": lambda: api.chat_streamed(routed)[0]["id"],
        "task": lambda: api.task(api.submit({k: v for k, v in routed.items()
                                             if k != "model"}))["id"],
    }
    direct = {"messages": MESSAGES, "max_tokens": 24}
    for model in ("local", "cloud"):
        runs[f"{model} direct"] = lambda m=model: api.chat({**direct, "model": m})["id"]
        runs[f"{model} direct streamed"] = lambda m=model: api.chat_streamed(
            {**direct, "model": m})[0]["id"]
    before = {e["id"] for e in api.entries()}
    results = {name: charged(api, run) for name, run in runs.items()}
    written = [e for e in api.entries() if e["id"] not in before]
    assert sorted(e["id"] for e in written) == sorted(i for i, _ in results.values())  # one each
    entries = {name: api.entry(request_id) for name, (request_id, _) in results.items()}
    for name, entry in entries.items():
        assert entry["record"] is not None, f"{name}: no route record kept"
        assert entry["cost_usd"] == pytest.approx(results[name][1], abs=1e-12), name
        assert entry["route"] == entry["record"]["final"], name
    # The routed adapters: one decision, one record. A streamed and a queued run stream the
    # cloud's answer (its tokens are forwarded, or written as progress); a chat answered whole
    # asks for it whole. The provider counts a whole answer's tokens; a stream's are counted by
    # its usage chunk, which the stand-in (llama-cpp-python's server) does not send, so litellm
    # estimates them: there the two ways may differ in tokens and price, never in anything
    # else, and the budget is charged what the ledger records either way (checked above).
    chat = entries["chat"]
    assert (chat["route"], chat["reason"]) == ("cloud", "multi_file") and chat["cost_usd"] > 0
    streamed, queued = entries["chat streamed"], entries["task"]
    assert comparable(queued["record"]) == comparable(streamed["record"])
    assert queued["cost_usd"] == pytest.approx(streamed["cost_usd"], rel=1e-9)
    assert queued["cost_usd"] > 0
    assert without(comparable(streamed["record"]), PROVIDER_COUNTED) == \
        without(comparable(chat["record"]), PROVIDER_COUNTED)
    assert [entries[n]["source"] for n in ("chat", "chat streamed", "task")] == \
        ["chat", "chat", "task"]
    # The direct adapters: the tier asked for, whole or streamed alike (the cloud's tokens
    # counted as above).
    for model in ("local", "cloud"):
        whole, streamed = entries[f"{model} direct"], entries[f"{model} direct streamed"]
        assert (whole["route"], whole["reason"]) == (model, "requested")
        varies = PROVIDER_COUNTED if model == "cloud" else ()
        assert without(comparable(streamed["record"]), varies) == \
            without(comparable(whole["record"]), varies), model
    assert entries["local direct"]["cost_usd"] == 0
    assert entries["cloud direct"]["cost_usd"] > 0 and entries["cloud direct streamed"]["cost_usd"] > 0


def _hang_up_mid_answer(response: httpx.Response, pieces: int = 3) -> str | None:
    """Read a chat stream until ``pieces`` content chunks came, then stop reading (the
    caller's ``with`` block closes the connection: the client hangs up mid-answer); the
    stream's request id."""
    assert response.status_code == 200
    request_id, seen = None, 0
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[6:])
            request_id = chunk["id"]
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                seen += 1
                if seen == pieces:
                    break
    return request_id


def test_a_client_gone_mid_stream_is_charged_what_the_ledger_records(api: Api) -> None:
    before = api.spent_usd()
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", headers=api.headers,
                      timeout=120, json={"model": "auto", "stream": True, "messages": MESSAGES,
                                         "files": FILES, "max_tokens": 400}) as response:
        request_id = _hang_up_mid_answer(response)  # a multi-file task: the cloud's answer
    assert request_id is not None
    entry = api.entry(request_id)
    assert entry["reason"] == "client_disconnected" and entry["route"] == "cloud", entry
    assert entry["record"]["reason"] == "client_disconnected"
    assert 0 < entry["tokens"]["completion"] < 400
    assert api.spent_usd() - before == pytest.approx(entry["cost_usd"], rel=1e-6)
    assert [e["id"] for e in api.entries()].count(request_id) == 1


def test_a_client_gone_mid_direct_cloud_stream_is_charged_what_the_ledger_records(
        api: Api) -> None:
    """``model: cloud`` streamed goes through the same metered path as the graph's cloud
    call: a client that hangs up leaves no reservation open and the budget charged exactly
    the ledger's figure for the tokens streamed."""
    before = api.spent_usd()
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", headers=api.headers,
                      timeout=120, json={"model": "cloud", "stream": True,
                                         "messages": [{"role": "user", "content": LONG}],
                                         "max_tokens": 400}) as response:
        request_id = _hang_up_mid_answer(response)
    assert request_id is not None
    entry = api.entry(request_id)
    assert (entry["route"], entry["reason"]) == ("cloud", "requested"), entry
    assert entry["record"]["finish_reason"] == "client_disconnected"
    assert entry["cost_usd"] > 0 and 0 < entry["tokens"]["completion"] < 400
    assert api.spent_usd() - before == pytest.approx(entry["cost_usd"], rel=1e-6)
    assert [e["id"] for e in api.entries()].count(request_id) == 1


def test_a_task_cancelled_mid_cloud_call_is_charged_what_the_ledger_records(api: Api) -> None:
    before = api.spent_usd()
    task_id = api.submit({"messages": MESSAGES, "files": FILES, "max_tokens": 400})
    api.wait_cloud_tokens(task_id, 3)
    response = httpx.delete(f"{api.url}/v1/tasks/{task_id}", headers=api.headers, timeout=30)
    assert response.json()["status"] == "cancelled"
    entry = api.entry(task_id)
    assert (entry["status"], entry["reason"], entry["route"]) == ("cancelled", "cancelled",
                                                                  "cloud"), entry
    assert entry["record"] is not None and entry["record"]["reason"] == "cancelled"
    assert entry["cost_usd"] > 0 and 0 < entry["tokens"]["completion"] < 400
    assert api.spent_usd() - before == pytest.approx(entry["cost_usd"], rel=1e-6)
    assert [e["id"] for e in api.entries()].count(task_id) == 1
    assert api.task(task_id)["status"] == "cancelled"


def test_a_task_past_its_time_is_charged_what_the_ledger_records(
        smol: Any, smol_standin_url: str, valkey_server: Any) -> None:
    prefix = "run-layer-timeout"
    # Well under any answer's time: how far it got (the cloud call or not yet) varies with the
    # machine's load; what it was charged and what the ledger says must agree either way.
    config = settings(valkey_server.url, smol_standin_url, prefix, timeout_s=0.3)
    app = create_app(config, local=smol, cloud=CloudBackend(config.cloud), with_retrieval=False)
    with serving(app) as url:
        api = Api(url, valkey_server.url, prefix)
        before = api.spent_usd()
        task_id = api.submit({"messages": [{"role": "user", "content": LONG}], "files": FILES,
                              "max_tokens": 800})
        task = api.task(task_id)
        assert task["status"] == "failed" and task["error"]["type"] == "timeout", task
        entry = api.entry(task_id)
        assert (entry["status"], entry["reason"]) == ("failed", "timeout"), entry
        assert entry["record"] is not None and entry["record"]["reason"] == "timeout"
        assert entry["tokens"]["completion"] < 800
        assert api.spent_usd() - before == pytest.approx(entry["cost_usd"], rel=1e-6)
        assert [e["id"] for e in api.entries()] == [task_id]


def test_a_worker_stopped_mid_cloud_call_records_the_attempt_and_requeues_the_task(
        smol: Any, smol_standin_url: str, valkey_server: Any, tmp_path: Path,
        model_cache: Path) -> None:
    """SIGTERM stops a worker cleanly: its running task stops at its next token, what the
    attempt streamed is settled in the budget and recorded under the attempt's own entry
    (status ``requeued``), the task goes back to the queue, and the next worker runs it to
    the end. Budget = ledger, each attempt once."""
    prefix = "run-layer-sigterm"
    config = settings(valkey_server.url, smol_standin_url, prefix, embedded_worker=False)
    app = create_app(config, local=smol, cloud=CloudBackend(config.cloud), with_retrieval=False)
    workers: list[subprocess.Popen[bytes]] = []
    with serving(app) as url:
        api = Api(url, valkey_server.url, prefix)
        try:
            before = api.spent_usd()
            workers.append(_worker_process(tmp_path, config, model_cache, "stopping"))
            task_id = api.submit({"messages": [{"role": "user", "content": LONG}],
                                  "files": FILES, "max_tokens": 400})
            api.wait_cloud_tokens(task_id, 3)
            workers[0].send_signal(signal.SIGTERM)
            assert workers[0].wait(timeout=60) == 0
            stopped = api.entry(f"{task_id}#1")
            assert (stopped["status"], stopped["reason"], stopped["route"]) == (
                "requeued", "worker_stopped", "cloud"), stopped
            assert 0 < stopped["tokens"]["completion"] < 400 and stopped["cost_usd"] > 0
            assert api.store(lambda r, n: r.zcard(n.queue())) == 1  # back in the queue
            workers.append(_worker_process(tmp_path, config, model_cache, "next"))
            task = api.task(task_id)
            assert task["status"] == "done" and task["attempts"] == 2, task
            entry = api.entry(task_id)
            assert entry["status"] == "done" and entry["cost_usd"] > 0
            assert api.spent_usd() - before == pytest.approx(
                entry["cost_usd"] + stopped["cost_usd"], rel=1e-6)
            assert sorted(e["id"] for e in api.entries()) == sorted([task_id, f"{task_id}#1"])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()


def _worker_process(tmp_path: Path, config: Settings, model_cache: Path,
                    name: str) -> subprocess.Popen[bytes]:
    """``smallcode worker`` in its own process, with the service's cloud, policies and
    store, a 2 s lease (a killed worker's task runs again 2 s later) and SmolLM2 local."""
    return worker_process(tmp_path, {
        "data_dir": str(tmp_path / "data"),
        "models": {"cache_dir": str(model_cache)},
        "local": {"model": "smollm2-135m", "n_ctx": 2048, "n_threads": 1},
        "cloud": config.cloud.model_dump(mode="json", exclude={"api_key"}),
        "policies": POLICIES,
        "redis": {"url": config.redis.url, "prefix": config.redis.prefix},
        "tasks": {"lease_s": 2, "poll_s": 0.05, "heartbeat_s": 1},
    }, name)


def test_a_worker_killed_mid_cloud_call_is_rerun_and_charged_what_the_ledger_records(
        smol: Any, smol_standin_url: str, valkey_server: Any, tmp_path: Path,
        model_cache: Path) -> None:
    """SIGKILL leaves the worker no way to settle: another worker runs the task again, and
    first charges what the dead attempt's progress events show it streamed from the cloud
    (its reservation settled at that, its own ledger entry, status ``lost``); then the task's
    run is charged and recorded under the task's id. Budget = ledger, nothing counted twice."""
    prefix = "run-layer-killed"
    config = settings(valkey_server.url, smol_standin_url, prefix, embedded_worker=False)
    # A short cloud timeout: the dead worker's reservation is held (1 + 0 retries) x
    # (timeout_s + 10 s) = 30 s before it would be reaped; the next attempt settles it first.
    config = config.model_copy(update={"cloud": config.cloud.model_copy(
        update={"timeout_s": 20.0})})
    app = create_app(config, local=smol, cloud=CloudBackend(config.cloud), with_retrieval=False)
    workers: list[subprocess.Popen[bytes]] = []
    with serving(app) as url:
        api = Api(url, valkey_server.url, prefix)
        try:
            before = api.spent_usd()
            workers.append(_worker_process(tmp_path, config, model_cache, "first"))
            task_id = api.submit({"messages": [{"role": "user", "content": LONG}],
                                  "files": FILES, "max_tokens": 400})
            seen = api.wait_cloud_tokens(task_id, 3)
            held = api.store(budgets.state, scope=f"team:{TEAM}", period="month",
                             limit_usd=10.0)
            assert held.open_reservations == 1  # the first worker's, mid call
            workers[0].kill()  # SIGKILL: no clean-up of any kind
            workers[0].wait()
            workers.append(_worker_process(tmp_path, config, model_cache, "second"))
            task = api.task(task_id)
            assert task["status"] == "done" and task["attempts"] == 2, task
            entry = api.entry(task_id)
            assert (entry["status"], entry["route"]) == ("done", "cloud"), entry
            assert entry["record"] is not None and entry["record"]["final"] == "cloud"
            assert entry["cost_usd"] > 0
            lost = api.entry(f"{task_id}#1")
            assert (lost["status"], lost["reason"], lost["route"]) == (
                "lost", "worker_lost", "cloud"), lost
            assert lost["tokens"]["completion"] >= seen  # at least what was seen streaming
            assert lost["cost_usd"] > 0
            state = api.store(budgets.state, scope=f"team:{TEAM}", period="month",
                              limit_usd=10.0)
            assert state.open_reservations == 0 and state.reaped == 0  # settled, not reaped
            assert api.spent_usd() - before == pytest.approx(
                entry["cost_usd"] + lost["cost_usd"], rel=1e-6)
            assert sorted(e["id"] for e in api.entries()) == sorted([task_id, f"{task_id}#1"])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
