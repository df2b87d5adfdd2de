"""Async tasks on a real Valkey, a real uvicorn and real arq workers (in-process and
`smallcode worker` processes), with SmolLM2 as the local model and a local-only policy, so the
dead cloud URL is never called. Each test that takes ``store`` runs twice: on one Valkey server
and on a three-primary Valkey cluster (``redis.cluster: true``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from policies.config import PoliciesConfig
from router.service.app import create_app
from router.settings import Settings
from router.store import apikeys, budgets, connect, ledger, queue, tasks
from router.store.names import Names
from router.store.server import EmbeddedRedis
from router.worker import _close, build_worker
from tests.conftest import Store, free_port
from tests.helpers import serving, worker_process

PREFIX = "tasks-test"
NAMES = Names(PREFIX)
DEAD_CLOUD = "http://127.0.0.1:9/v1"  # nothing listens: a cloud call would fail loudly
SHORT = "Write a Python function that adds two numbers."
LONG = "Count from 1 to 500, one number per line."
GRAPH_NODES = ["intake", "policy", "retrieve", "local_generate", "judge", "record"]


def make_settings(store: Store, **tasks_config: Any) -> Settings:
    return Settings(redis=store.redis(prefix=PREFIX), local={"n_ctx": 2048},
                    cloud={"api_base": DEAD_CLOUD, "num_retries": 0},
                    policies={"default": {"local_only": True}},
                    tasks={"lease_s": 2, "poll_s": 0.05, "heartbeat_s": 1, **tasks_config})


def run_store(store: Store, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one store function against ``store`` (a client made as the service makes its own)."""
    async def go() -> Any:
        client = store.client()
        try:
            return await call(client, NAMES, *args, **kwargs)
        finally:
            await client.aclose()
    return asyncio.run(go())


def new_key(store: Store, team: str) -> dict[str, str]:
    _, secret = run_store(store, apikeys.create_key, team=team)
    return {"Authorization": f"Bearer {secret}"}


@contextlib.contextmanager
def service(settings: Settings, local: Any) -> Iterator[str]:
    """The API with the task queue (and, when tasks.embedded_worker, one worker sharing its
    models), as `smallcode serve` runs it; yields the base URL."""
    cloud = CloudBackend(CloudConfig(api_base=DEAD_CLOUD, num_retries=0))
    with serving(create_app(settings, local=local, cloud=cloud, with_retrieval=False)) as url:
        yield url


def submit(base: str, key: dict[str, str], body: dict[str, Any],
           idempotency: str | None = None) -> httpx.Response:
    headers = {**key, **({"Idempotency-Key": idempotency} if idempotency else {})}
    return httpx.post(f"{base}/v1/tasks", json=body, headers=headers, timeout=30)


def wait_for(base: str, key: dict[str, str], task_id: str, *, timeout_s: float = 120,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    done = until or (lambda task: task["status"] in tasks.FINAL)
    deadline = time.monotonic() + timeout_s
    while True:
        task = httpx.get(f"{base}/v1/tasks/{task_id}", headers=key, timeout=30).json()
        if done(task):
            return task
        assert time.monotonic() < deadline, f"task still {task['status']}"
        time.sleep(0.1)


def events(base: str, key: dict[str, str], task_id: str,
           last_event_id: str | None = None) -> list[dict[str, Any]]:
    """The task's server-sent events until the stream ends, each as {id, event, data}."""
    headers = {**key, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", headers=headers,
                      timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    found.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return found


@pytest.fixture
def api(store: Store, smol: Any) -> Iterator[str]:
    with service(make_settings(store), smol) as url:
        yield url


@pytest.fixture
def queue_only(store: Store, smol: Any) -> Iterator[str]:
    """The API with no worker: tasks stay queued."""
    with service(make_settings(store, embedded_worker=False), smol) as url:
        yield url


def test_a_task_runs_to_done_with_its_answer_route_and_one_ledger_entry(
        api: str, store: Store) -> None:
    key = new_key(store, "payments")
    response = submit(api, key, {"prompt": SHORT, "max_tokens": 24})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["team"] == "payments"
    task = wait_for(api, key, accepted["id"])
    assert task["status"] == "done", task
    assert task["answer"] and task["attempts"] == 1
    assert task["route"]["final"] == "local"  # local-only: the dead cloud is never tried
    entries = run_store(store, ledger.page_entries, team="payments", start=0,
                    end=time.time() + 60, limit=10)
    assert [e["id"] for e in entries] == [accepted["id"]]
    assert entries[0]["source"] == "task" and entries[0]["route"] == "local"
    assert entries[0]["tokens"]["completion"] == task["route"]["tokens"]["completion"]


def test_messages_work_as_in_a_chat_request_and_bad_bodies_name_the_field(
        queue_only: str, store: Store) -> None:
    key = new_key(store, "payments")
    chat = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": SHORT}], "max_tokens": 8}
    assert submit(queue_only, key, chat).status_code == 202
    for body, param in (({"max_tokens": 8}, None), ({"prompt": SHORT, "max_tokens": 0},
                                                    "max_tokens"),
                        ({"prompt": SHORT, "messages": chat["messages"]}, None)):
        response = submit(queue_only, key, body)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert param is None or error["param"] == param
    wrong_team = submit(queue_only, key, {"prompt": SHORT, "team": "search"})
    assert wrong_team.status_code == 403


def test_the_same_idempotency_key_returns_the_same_task(queue_only: str, store: Store) -> None:
    payments, search = new_key(store, "payments"), new_key(store, "search")
    body = {"prompt": SHORT, "max_tokens": 16}
    first = submit(queue_only, payments, body, idempotency="ci-run-42")
    again = submit(queue_only, payments, body, idempotency="ci-run-42")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    other_team = submit(queue_only, search, body, idempotency="ci-run-42")
    assert other_team.status_code == 202 and other_team.json()["id"] != first.json()["id"]
    changed = submit(queue_only, payments, {**body, "max_tokens": 17}, idempotency="ci-run-42")
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    plain = [submit(queue_only, payments, body).json()["id"] for _ in range(2)]
    assert len(set(plain)) == 2  # no key, no deduplication
    queued = run_store(store, lambda r, n: r.zcard(n.queue()))
    assert queued == 4  # one job per task, however often it was asked for


def test_a_keys_requests_per_minute_hold_for_tasks_too(queue_only: str, store: Store) -> None:
    """/v1/tasks is no way around a key's rate limits: the caller that admits a chat admits
    a task."""
    _, secret = run_store(store, apikeys.create_key, team="payments", rpm=2)
    key = {"Authorization": f"Bearer {secret}"}
    codes = [submit(queue_only, key, {"prompt": SHORT, "max_tokens": 4}) for _ in range(3)]
    assert [c.status_code for c in codes] == [202, 202, 429]
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 60
    assert codes[2].json()["error"]["code"] == "rate_limited"
    assert run_store(store, lambda r, n: r.zcard(n.queue())) == 2  # the refused one never queued


def test_the_tokens_a_task_ran_count_against_its_keys_tokens_per_minute(
        api: str, store: Store) -> None:
    """The worker charges a task's tokens to its key as a chat request is charged: once a
    task has used the key's tokens per minute, the next request is refused."""
    _, secret = run_store(store, apikeys.create_key, team="payments", tpm=30)
    key = {"Authorization": f"Bearer {secret}"}
    accepted = submit(api, key, {"prompt": SHORT, "max_tokens": 8})
    assert accepted.status_code == 202
    task = wait_for(api, key, accepted.json()["id"])
    assert task["status"] == "done", task
    used = task["route"]["tokens"]
    assert used["prompt"] + used["completion"] >= 30  # more than the key's minute allows
    refused = submit(api, key, {"prompt": SHORT, "max_tokens": 8})
    assert refused.status_code == 429
    assert "tokens per minute" in refused.json()["error"]["message"]


def test_another_teams_task_is_a_404(queue_only: str, store: Store) -> None:
    payments, search = new_key(store, "payments"), new_key(store, "search")
    task_id = submit(queue_only, payments, {"prompt": SHORT}).json()["id"]
    assert httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=payments).status_code == 200
    for method, path, body in (("GET", "", None), ("GET", "/events", None),
                               ("DELETE", "", None),
                               ("POST", "/feedback", {"accepted": True})):
        response = httpx.request(method, f"{queue_only}/v1/tasks/{task_id}{path}",
                                 headers=search, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "task_not_found"
    unknown = httpx.get(f"{queue_only}/v1/tasks/task-nothere", headers=payments)
    assert unknown.status_code == 404
    assert httpx.get(f"{queue_only}/v1/tasks/{task_id}").status_code == 401
    assert httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=payments).json()[
        "status"] == "queued"  # search's DELETE did nothing


def test_events_stream_in_order_as_the_task_runs_and_resume_with_last_event_id(
        api: str, store: Store) -> None:
    key = new_key(store, "payments")
    task_id = submit(api, key, {"prompt": SHORT, "max_tokens": 32}).json()["id"]
    live = events(api, key, task_id)  # opened while queued: follows it to the end
    kinds = [e["event"] for e in live]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "done"
    assert [e["data"]["node"] for e in live if e["event"] == "node"] == GRAPH_NODES
    ids = [tuple(map(int, e["id"].split("-"))) for e in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    tokens = "".join(e["data"]["text"] for e in live if e["event"] == "token")
    task = httpx.get(f"{api}/v1/tasks/{task_id}", headers=key).json()
    assert tokens == task["answer"] == live[-1]["data"]["answer"]
    # Tokens arrive while local_generate runs: before its node event, after retrieve's.
    first_token = kinds.index("token")
    node_at = {e["data"]["node"]: i for i, e in enumerate(live) if e["event"] == "node"}
    assert node_at["retrieve"] < first_token < node_at["local_generate"]
    assert events(api, key, task_id) == live  # replayed whole
    resumed = events(api, key, task_id, last_event_id=live[2]["id"])
    assert resumed == live[3:]
    assert events(api, key, task_id, last_event_id=live[-1]["id"]) == []
    bad = httpx.get(f"{api}/v1/tasks/{task_id}/events",
                    headers={**key, "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"


def test_feedback_labels_a_done_task(api: str, store: Store) -> None:
    key = new_key(store, "payments")
    task_id = submit(api, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    wait_for(api, key, task_id)
    url = f"{api}/v1/tasks/{task_id}/feedback"
    response = httpx.post(url, headers=key, json={"accepted": True, "tests_passed": False})
    assert response.status_code == 200, response.text
    task = httpx.get(f"{api}/v1/tasks/{task_id}", headers=key).json()
    assert task["feedback"]["accepted"] is True and task["feedback"]["tests_passed"] is False
    assert httpx.post(url, headers=key, json={"accepted": "maybe"}).status_code == 400
    labelled = run_store(store, lambda r, n: r.zrange(n.task_feedback(), 0, -1))
    assert labelled == [task_id.encode()]


def test_a_cancelled_queued_task_never_runs(queue_only: str, store: Store, smol: Any) -> None:
    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    cancelled = httpx.delete(f"{queue_only}/v1/tasks/{task_id}", headers=key)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    ran = asyncio.run(_burst(make_settings(store), smol))  # a worker empties the queue
    assert ran == 1
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "cancelled" and task["attempts"] == 0 and task["answer"] is None
    assert [e["event"] for e in events(queue_only, key, task_id)] == ["queued", "cancelled"]
    assert run_store(store, ledger.get_entry, task_id) is None
    again = httpx.delete(f"{queue_only}/v1/tasks/{task_id}", headers=key)
    assert again.json()["status"] == "cancelled"


async def _burst(settings: Settings, local: Any,
                 store_as: Callable[[Any], Any] = lambda store: store) -> int:
    """Run a worker until the queue is empty; returns the jobs it took. ``store_as``: what
    the worker's jobs see of its store client."""
    from router.graph.graph import build_graph
    from router.runtime import build_context

    cloud = CloudBackend(settings.cloud)
    store = connect.client(settings.redis)
    try:
        worker = build_worker(settings, NAMES, store=store_as(store), graph=build_graph(),
                              queue_url=await queue.queue_url(settings.redis, NAMES, cluster=store),
                              context=build_context(settings, local, cloud),
                              handle_signals=False, burst=True)
        await worker.async_run()
        await _close(worker)
    finally:
        await store.aclose()
    return worker.jobs_complete + worker.jobs_failed


class _WriteCutUnder:
    """The worker's store, whose first ``cuts`` scripts meet a connection closed under their
    write, as redis-py's asyncio cluster client raises it during a primary's failover: an
    ``AttributeError``, not a ``RedisError`` (redis/redis-py#4287; what lost a task in
    ``make topology``). Everything else goes to the real client."""

    def __init__(self, store: Any, cuts: int) -> None:
        self.store, self.cuts = store, cuts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def eval(self, *args: Any) -> Any:
        if self.cuts > 0:
            self.cuts -= 1
            raise AttributeError("'NoneType' object has no attribute 'writelines'")
        return await self.store.eval(*args)


def test_a_try_cut_short_by_a_client_error_runs_again_and_the_task_is_not_lost(
        queue_only: str, store: Store, smol: Any) -> None:
    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    asyncio.run(_burst(make_settings(store), smol,
                       store_as=lambda client: _WriteCutUnder(client, cuts=1)))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "done" and task["attempts"] == 1 and task["answer"], task
    assert run_store(store, ledger.get_entry, task_id)["status"] == "done"


def test_a_task_whose_store_fails_longer_than_its_outage_bound_ends_failed_not_queued(
        queue_only: str, store: Store, smol: Any) -> None:
    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    # store_outage_s 1: one try waits it out (1 s), then the last try ends the task.
    asyncio.run(_burst(make_settings(store, max_tries=1, store_outage_s=1), smol,
                       store_as=lambda client: _WriteCutUnder(client, cuts=2)))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "failed" and task["attempts"] == 0, task
    assert task["error"]["type"] == "worker_lost"
    assert "store_outage_s" in task["error"]["message"]
    assert [e["event"] for e in events(queue_only, key, task_id)] == ["queued", "failed"]


def test_a_store_outage_does_not_use_up_a_tasks_tries(
        queue_only: str, store: Store, smol: Any) -> None:
    """The store fails under a task three tries in a row (7 s, as a cluster's failover may):
    the task still runs, once, though ``max_tries`` is 1 (it used to fail at the second try)."""
    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    asyncio.run(_burst(make_settings(store, max_tries=1, store_outage_s=10), smol,
                       store_as=lambda client: _WriteCutUnder(client, cuts=3)))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "done" and task["attempts"] == 1 and task["answer"], task


def test_a_task_whose_runs_all_died_ends_failed_after_max_tries(
        queue_only: str, store: Store, smol: Any) -> None:
    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    # Its first run began on a worker that died (nothing more of it is left).
    run_store(store, tasks.start_attempt, task_id, worker="dead-worker", keep_s=600)
    asyncio.run(_burst(make_settings(store, max_tries=1), smol))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "failed" and task["attempts"] == 2, task
    assert task["error"]["type"] == "worker_lost"
    assert "tasks.max_tries" in task["error"]["message"]


class _BudgetCutUnder:
    """The worker's store, whose first budget script (the budget gate's, inside the graph's
    run) meets a connection closed under its write: it goes into redis-py's own write on a
    closed connection, which raises what its asyncio cluster client raises during a primary's
    failover (``AttributeError: 'NoneType' object has no attribute 'writelines'``,
    redis/redis-py#4287). Everything else goes to the real client."""

    def __init__(self, store: Any) -> None:
        self.store, self.cuts = store, 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def eval(self, *args: Any) -> Any:
        if self.cuts > 0 and str(args[2]).startswith(f"{PREFIX}:budget:"):
            self.cuts -= 1
            from redis.asyncio.connection import Connection

            closed = Connection()  # never connected: no writer, as one closed under a write
            await closed._send_packed_command([b"EVALSHA"])
            raise AssertionError("redis-py wrote on a closed connection: no failure to test")
        return await self.store.eval(*args)


BUDGET_USD = 10.0


def cloud_task(api: str, store: Store, cloud_url: str) -> tuple[dict[str, str], str, Settings]:
    """A task routed to the cloud for team payments, whose monthly budget is BUDGET_USD, and
    the settings of a worker whose cloud is ``cloud_url``: (key, task id, settings)."""
    key = new_key(store, "payments")
    task_id = submit(api, key, {"prompt": SHORT, "max_tokens": 4,
                                "route": "cloud"}).json()["id"]
    settings = make_settings(store).model_copy(update={
        "cloud": CloudConfig(api_base=cloud_url, num_retries=0, timeout_s=30),
        "policies": PoliciesConfig(teams={"payments": {
            "budget_usd": BUDGET_USD, "budget_period": "month"}})})
    return key, task_id, settings


def payments_spend(store: Store) -> tuple[list[dict[str, Any]], budgets.BudgetState]:
    """Team payments' ledger entries and its month's budget."""
    entries = run_store(store, ledger.page_entries, team="payments", start=0,
                        end=time.time() + 60, limit=10)
    return entries, run_store(store, budgets.state, scope="team:payments", period="month",
                              limit_usd=BUDGET_USD)


def test_a_store_failure_in_the_budget_gate_runs_the_task_again_and_charges_it_once(
        queue_only: str, store: Store, smol: Any, smol_standin_url: str) -> None:
    """The store fails under the cloud call's budget reservation, inside the graph's run (a
    primary's failover): the task is not failed for it; it runs again, ends done with its
    answer, and its budget is charged once, what its one ledger entry says."""
    key, task_id, settings = cloud_task(queue_only, store, smol_standin_url)
    asyncio.run(_burst(settings, smol, store_as=_BudgetCutUnder))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "done" and task["answer"], task
    assert task["route"]["final"] == "cloud" and task["attempts"] == 2, task
    entries, spent = payments_spend(store)
    assert [e["id"] for e in entries] == [task_id]
    assert entries[0]["cost_usd"] > 0
    assert spent.spent_usd == pytest.approx(entries[0]["cost_usd"])
    assert spent.reserved_usd == pytest.approx(0) and spent.open_reservations == 0


class _FinishCutUnder:
    """The worker's store, whose first move of a task to ``done`` fails (after the run's
    ledger entry was written): the store lost under the task's last step."""

    def __init__(self, store: Any) -> None:
        self.store, self.cuts = store, 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def eval(self, script: str, *args: Any) -> Any:
        if script == tasks._MOVE and args[5] == "done" and self.cuts > 0:
            self.cuts -= 1
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("the store went away")
        return await self.store.eval(script, *args)


def test_a_task_run_again_after_its_entry_was_written_records_its_second_call_too(
        queue_only: str, store: Store, smol: Any, smol_standin_url: str) -> None:
    """The store fails as a task that was answered and recorded is marked done: it runs
    again, and its second cloud call, charged to its budget, is in the ledger too (under
    the attempt's id, the task's own being taken)."""
    key, task_id, settings = cloud_task(queue_only, store, smol_standin_url)
    asyncio.run(_burst(settings, smol, store_as=_FinishCutUnder))
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "done" and task["attempts"] == 2, task
    entries, spent = payments_spend(store)
    assert sorted(e["id"] for e in entries) == [task_id, f"{task_id}#2"], entries
    assert spent.spent_usd == pytest.approx(sum(e["cost_usd"] for e in entries))
    assert spent.open_reservations == 0


class _AnswerHeld:
    """Attempt 1's store: says when the attempt has noted its cloud call's charge, and holds
    the write of its answer to the ledger until ``until`` is set."""

    def __init__(self, store: Any, task_id: str, noted: asyncio.Event,
                 until: asyncio.Event) -> None:
        self.store, self.task_id, self.noted, self.until = store, task_id, noted, until

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def eval(self, script: str, *args: Any) -> Any:
        if args[1] == NAMES.entry("payments", self.task_id):
            await self.until.wait()
        found = await self.store.eval(script, *args)
        if script == tasks._NOTE_SETTLED:
            self.noted.set()
        return found


class _LostRecorded:
    """Attempt 2's store: says when it has recorded attempt 1 as lost."""

    def __init__(self, store: Any, task_id: str, recorded: asyncio.Event) -> None:
        self.store, self.task_id, self.recorded = store, task_id, recorded

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def eval(self, script: str, *args: Any) -> Any:
        found = await self.store.eval(script, *args)
        if args[1] == NAMES.entry("payments", f"{self.task_id}#1"):
            self.recorded.set()
        return found


def test_an_attempt_that_outlives_its_claim_and_the_next_one_charge_each_call_once(
        queue_only: str, store: Store, smol: Any, smol_standin_url: str) -> None:
    """A worker's claim on a task lapses while it runs it (its store away past the lease, as
    in ``make topology``'s Valkey failover), so another worker starts the task again and
    records the first attempt as lost, at what it had been charged; the first one then
    answers. Its answer must not be recorded a second time: the ledger holds each cloud call
    once and the budget equals it (it used to hold the first call twice)."""
    from router.graph.graph import build_graph
    from router.runtime import build_context
    from router.worker import TaskRunner

    key, task_id, settings = cloud_task(queue_only, store, smol_standin_url)

    async def two_attempts() -> list[str]:
        client = connect.client(settings.redis)
        context = build_context(settings, smol, CloudBackend(settings.cloud))
        noted, recorded = asyncio.Event(), asyncio.Event()
        try:
            first = TaskRunner(settings, NAMES, build_graph(), context, "worker-1")
            second = TaskRunner(settings, NAMES, build_graph(), context, "worker-2")
            held: Any = _AnswerHeld(client, task_id, noted, recorded)
            running = asyncio.create_task(first.run(held, task_id, job_try=1))
            await asyncio.wait_for(noted.wait(), 120)
            told: Any = _LostRecorded(client, task_id, recorded)
            again = await second.run(told, task_id, job_try=1)
            return [await running, again]
        finally:
            await client.aclose()

    statuses = asyncio.run(two_attempts())
    assert statuses[1] == "done", statuses
    task = httpx.get(f"{queue_only}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "done" and task["attempts"] == 2 and task["answer"], task
    entries, spent = payments_spend(store)
    assert sorted(e["id"] for e in entries) == [task_id, f"{task_id}#1"], entries
    assert all(e["cost_usd"] > 0 for e in entries)
    assert spent.spent_usd == pytest.approx(sum(e["cost_usd"] for e in entries))
    assert spent.reserved_usd == pytest.approx(0) and spent.open_reservations == 0


def test_a_running_task_whose_claim_the_store_lost_is_not_run_twice(
        api: str, store: Store) -> None:
    """The store loses a running task's claim (away for longer than the lease: the key
    expired), so arq hands its job out again, here to the worker running it: the task is not
    started a second time; its one run ends it, with one ledger entry, and its worker holds
    the claim again."""
    from arq.constants import in_progress_key_prefix

    key = new_key(store, "payments")
    task_id = submit(api, key, {"prompt": LONG, "max_tokens": 300}).json()["id"]
    _wait_for_event(store, task_id, "token")
    claim = in_progress_key_prefix + NAMES.job_id(task_id)

    async def lose_it() -> tuple[int, bool]:
        client = store.client()
        try:
            removed = await client.delete(claim)
            await asyncio.sleep(2)  # lease_s: arq polls every 0.05 s meanwhile
            return removed, bool(await client.exists(claim))
        finally:
            await client.aclose()

    removed, _ = asyncio.run(lose_it())
    task = wait_for(api, key, task_id)
    assert removed == 1
    assert task["status"] == "done" and task["attempts"] == 1, task
    assert [e["event"] for e in events(api, key, task_id)].count("started") == 1
    assert run_store(store, ledger.get_entry, f"{task_id}#1") is None


def test_cancelling_a_running_task_stops_it_and_frees_the_worker(
        api: str, store: Store) -> None:
    key = new_key(store, "payments")
    task_id = submit(api, key, {"prompt": LONG, "max_tokens": 1500}).json()["id"]
    _wait_for_event(store, task_id, "token")
    response = httpx.delete(f"{api}/v1/tasks/{task_id}", headers=key)
    assert response.json()["status"] == "cancelled"
    stream = events(api, key, task_id)
    assert stream[-1]["event"] == "cancelled"
    after = submit(api, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
    assert wait_for(api, key, after, timeout_s=60)["status"] == "done"  # the model is free
    task = httpx.get(f"{api}/v1/tasks/{task_id}", headers=key).json()
    assert task["status"] == "cancelled" and task["answer"] is None
    generated = "".join(e["data"]["text"] for e in stream if e["event"] == "token")
    assert len(generated) < 1500  # stopped well before its max_tokens
    entry = run_store(store, ledger.get_entry, task_id)  # what ran is recorded, once
    assert entry["status"] == "cancelled" and entry["reason"] == "cancelled", entry
    assert entry["route"] == "local" and entry["cost_usd"] == 0
    assert 0 < entry["tokens"]["local_completion"] < 1500


def _wait_for_event(store: Store, task_id: str, kind: str, *, after: int = 0,
                    timeout_s: float = 120) -> list[tasks.Event]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = run_store(store, tasks.read_events, task_id, after="0", block_ms=None)
        if sum(e.event == kind for e in found) > after:
            return list(found)
        time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event within {timeout_s} s")


def test_redis_unreachable_on_submit_is_a_503_never_an_accepted_task(
        tmp_path: Path, smol: Any) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = make_settings(Store(server.url, cluster=False), embedded_worker=False)
        settings = settings.model_copy(update={"auth": settings.auth.model_copy(
            update={"enabled": False})})
        with service(settings, smol) as url:
            assert submit(url, {}, {"prompt": SHORT}).status_code == 202
            server.kill()
            response = submit(url, {}, {"prompt": SHORT})
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["type"] == "service_unavailable" and error["message"]


def _worker_process(tmp_path: Path, store: Store, model_cache: Path,
                    name: str, **tasks_config: Any) -> subprocess.Popen[bytes]:
    return worker_process(tmp_path, {
        "data_dir": str(tmp_path / "data"),
        "models": {"cache_dir": str(model_cache)},
        "local": {"model": "smollm2-135m", "n_ctx": 2048, "n_threads": 1},
        "cloud": {"api_base": DEAD_CLOUD, "num_retries": 0},
        "policies": {"default": {"local_only": True}},
        "redis": store.redis(prefix=PREFIX),
        "tasks": {"lease_s": 2, "poll_s": 0.05, "heartbeat_s": 1, **tasks_config},
    }, name)


def test_a_worker_killed_mid_task_is_rerun_by_another_and_charged_once(
        queue_only: str, store: Store, tmp_path: Path, model_cache: Path) -> None:
    key = new_key(store, "payments")
    first = _worker_process(tmp_path, store, model_cache, "first")
    second = None
    try:
        task_id = submit(queue_only, key, {"prompt": LONG, "max_tokens": 400}).json()["id"]
        seen = _wait_for_event(store, task_id, "token")
        workers = run_store(store, tasks.live_workers)
        assert [w["pid"] for w in workers] == [first.pid]
        started = [json.loads(e.data)["worker"] for e in seen if e.event == "started"]
        assert len(started) == 1 and f":{first.pid}:" in started[0]
        first.kill()  # SIGKILL: no clean-up of any kind
        first.wait()
        second = _worker_process(tmp_path, store, model_cache, "second")
        task = wait_for(queue_only, key, task_id, timeout_s=180)
        assert task["status"] == "done" and task["answer"], task
        assert task["attempts"] == 2
        stream = events(queue_only, key, task_id)
        takers = [e["data"]["worker"] for e in stream if e["event"] == "started"]
        assert len(takers) == 2 and f":{second.pid}:" in takers[1]
        entries = run_store(store, ledger.page_entries, team="payments", start=0,
                        end=time.time() + 60, limit=10)
        assert [e["id"] for e in entries] == [task_id]  # charged once
        second.send_signal(signal.SIGTERM)  # stops cleanly, and says it has gone
        assert second.wait(timeout=30) == 0
        assert run_store(store, tasks.live_workers) == []
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def _requests_counted(url: str, team: str) -> float:
    """The sum of ``smallcode_requests`` of ``team`` in a /metrics page."""
    text = httpx.get(url, timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "smallcode_requests_total" and sample.labels["team"] == team)


def test_each_worker_process_counts_the_tasks_it_ran_and_their_sum_is_the_ledger(
        queue_only: str, store: Store, tmp_path: Path, model_cache: Path) -> None:
    """Two `smallcode worker` processes, each serving its own /metrics (tasks.metrics_port):
    summed over the processes, as the Grafana dashboard sums its targets, the tasks counted
    are the ledger's entries, none counted twice; the API process, which ran none, counts
    none, and says both workers are alive."""
    key = new_key(store, "payments")
    ports = [free_port(), free_port()]
    workers = [_worker_process(tmp_path, store, model_cache, f"counted-{n}", metrics_port=port)
               for n, port in enumerate(ports)]
    try:
        ids = [submit(queue_only, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
               for _ in range(4)]
        for task_id in ids:
            assert wait_for(queue_only, key, task_id, timeout_s=180)["status"] == "done"
        counted = [_requests_counted(f"http://127.0.0.1:{port}/metrics", "payments")
                   for port in ports]
        entries = run_store(store, ledger.page_entries, team="payments", start=0,
                            end=time.time() + 60, limit=10)
        assert sorted(e["id"] for e in entries) == sorted(ids)
        assert sum(counted) == len(entries) == 4, counted
        assert _requests_counted(f"{queue_only}/metrics", "payments") == 0
        alive = [f for f in text_string_to_metric_families(
            httpx.get(f"{queue_only}/metrics").text) if f.name == "smallcode_workers_alive"]
        assert alive[0].samples[0].value == 2
    finally:
        for process in workers:
            process.kill()
            process.wait()


def test_smallcode_worker_refuses_to_start_without_a_redis_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from router.cli.main import main

    monkeypatch.chdir(tmp_path)  # no config.yaml here
    assert main(["worker"]) == 2
    assert "redis.url" in capsys.readouterr().err


def test_a_quiet_task_keeps_its_event_stream_open_until_it_ends(
        queue_only: str, store: Store) -> None:
    """A queued task says nothing for longer than the Redis client's socket timeout (5 s):
    the stream stays open (keep-alives), then ends with the task."""
    from concurrent.futures import ThreadPoolExecutor

    key = new_key(store, "payments")
    task_id = submit(queue_only, key, {"prompt": SHORT}).json()["id"]
    with ThreadPoolExecutor(1) as pool:
        following = pool.submit(events, queue_only, key, task_id)
        time.sleep(7)
        assert not following.done()
        httpx.delete(f"{queue_only}/v1/tasks/{task_id}", headers=key)
        assert [e["event"] for e in following.result(timeout=30)] == ["queued", "cancelled"]


def _task_when(base: str, key: dict[str, str], task_id: str, status: str,
               timeout_s: float) -> dict[str, Any]:
    """Poll until the task has ``status``; a 503 (the store between primaries) is waited out."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{base}/v1/tasks/{task_id}", headers=key, timeout=30)
        if response.status_code == 200 and response.json()["status"] == status:
            return dict(response.json())
        assert response.status_code in (200, 503), response.text
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)


def test_when_the_queues_primary_dies_its_replica_takes_the_queue_over(
        tmp_path: Path, smol: Any) -> None:
    """A cluster with a replica per primary. The primary that holds the queue's slot is
    SIGKILLed and its replica promoted: a task submitted after that is accepted (the API finds
    the queue's new primary) and run to done by the embedded worker (started again there); the
    task done before is still there."""
    import redis

    from router.store.cluster import EmbeddedCluster

    with EmbeddedCluster(tmp_path / "cluster", replicas=1, node_timeout_ms=1000) as cluster:
        with redis.RedisCluster.from_url(cluster.url) as probe:
            owner = probe.get_node_from_key(NAMES.queue()).port
            primaries = [node.port for node in probe.get_primaries()]
        # redis.url names a node that lives on, as a deployment's name for the cluster would.
        store = Store(f"redis://127.0.0.1:{next(p for p in primaries if p != owner)}",
                      cluster=True)
        with service(make_settings(store), smol) as api:
            key = new_key(store, "payments")
            before = submit(api, key, {"prompt": SHORT, "max_tokens": 8}).json()["id"]
            assert wait_for(api, key, before)["status"] == "done"
            for port in primaries:  # what was written has reached the replicas
                with redis.Redis(port=port) as primary:
                    assert primary.execute_command("WAIT", 1, 5000) == 1
            cluster.node_at(owner).kill()
            deadline = time.monotonic() + 60
            while True:  # the replica is promoted once the others see the primary gone
                with redis.RedisCluster.from_url(store.url) as probe:
                    if probe.get_node_from_key(NAMES.queue()).port != owner:
                        break
                assert time.monotonic() < deadline, "no replica took the queue's slot over"
                time.sleep(0.2)
            cluster.wait_ok(timeout_s=60)
            accepted = submit(api, key, {"prompt": SHORT, "max_tokens": 8})
            assert accepted.status_code == 202, accepted.text
            after = _task_when(api, key, accepted.json()["id"], "done", timeout_s=120)
            assert after["answer"] and after["attempts"] == 1
            assert _task_when(api, key, before, "done", timeout_s=30)["answer"]


class _CancelComesOutAsAnError:
    """The store as a cluster's failover can leave it: a call in flight that is cancelled comes
    out of the client as its TimeoutError, not as the cancellation. The first claim write
    hangs until cancelled (a primary that stopped answering); later ones reach the store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import TimeoutError as StoreTimeout

        if self.lost:
            return await self.store.set(*args, **kwargs)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.lost = True
            raise StoreTimeout("a write cancelled under a failover") from None


def test_an_ended_attempt_stops_renewing_its_claim_even_when_its_cancel_is_lost(
        store: Store) -> None:
    """An attempt that ends (as when the store fails under it) stops its claim's renewal, even
    when the cancel reaches the renewal inside a store call and comes out as an ordinary
    error. Before, the renewal went on for ever, so arq never ran the task's job again: in
    `make test`'s topology run a task stayed ``running`` with its claim renewed each 0.67 s."""
    import threading

    from arq.constants import in_progress_key_prefix

    from router.worker import TaskRunner

    settings = make_settings(store)
    task_id = "task-claim-renewal"

    async def guard_after_the_end() -> bool:
        client = connect.client(settings.redis)
        try:
            await client.hset(NAMES.task(task_id), mapping={"status": "running"})
            runner = TaskRunner(settings, NAMES, None, None, "worker-1")  # type: ignore[arg-type]
            ended = asyncio.Event()
            guard = asyncio.create_task(runner._guard(
                _CancelComesOutAsAnError(client), task_id, threading.Event(), ended))
            await asyncio.sleep(0.2)  # its first claim write hangs
            ended.set()  # as the attempt's end does, with the cancel
            guard.cancel()
            done, _ = await asyncio.wait([guard], timeout=3 * settings.tasks.lease_s)
            renewed = await client.get(in_progress_key_prefix + NAMES.job_id(task_id))
            guard.cancel()  # a renewal that went on: this cancel reaches it whole
            await asyncio.wait([guard], timeout=5)
            assert renewed is None, "the ended attempt's claim was renewed"
            return bool(done)
        finally:
            await client.delete(NAMES.task(task_id))
            await client.aclose()

    assert asyncio.run(guard_after_the_end()), "the claim's renewal outlived its attempt"


class _BeatCancelComesOutAsAnError:
    """The store as a failover can leave it, for a worker's heartbeat: the first beat's write
    hangs until cancelled, and the cancel comes out as the client's TimeoutError; later beats
    reach the store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        inner = self.store.pipeline(*args, **kwargs)
        if self.lost:
            return inner
        wrapper = self

        class _Hanging:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            async def __aenter__(self) -> Any:
                await inner.__aenter__()
                return self

            async def __aexit__(self, *exc: Any) -> Any:
                return await inner.__aexit__(*exc)

            async def execute(self) -> Any:
                from redis.exceptions import TimeoutError as StoreTimeout

                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    wrapper.lost = True
                    raise StoreTimeout("a beat cancelled under a failover") from None

        return _Hanging()


def test_a_stopping_worker_ends_its_heartbeat_even_when_its_cancel_is_lost(
        store: Store) -> None:
    """A worker's stop ends its heartbeat even when the cancel reaches a beat inside a store
    call and comes out as an ordinary error; before, the stop waited on the heartbeat, which
    went on beating, for ever (a worker retired after losing its store stops this way)."""
    settings = make_settings(store)

    async def stop_after_a_lost_cancel() -> bool:
        client = connect.client(settings.redis)
        try:
            url = await queue.queue_url(settings.redis, NAMES, cluster=client)
            worker = build_worker(settings, NAMES, queue_url=url, store=client, graph=None,
                                  context=None, handle_signals=False)  # type: ignore[arg-type]
            ctx = {"redis": _BeatCancelComesOutAsAnError(client)}
            assert worker.on_startup is not None and worker.on_shutdown is not None
            await worker.on_startup(ctx)
            await asyncio.sleep(0.2)  # its first beat hangs
            stopping = asyncio.create_task(worker.on_shutdown(ctx))
            done, _ = await asyncio.wait([stopping], timeout=4 * settings.tasks.heartbeat_s)
            stopping.cancel()  # a stop still waiting: cancelling it cancels the heartbeat too
            await asyncio.wait([stopping], timeout=5)
            return bool(done)
        finally:
            await client.aclose()

    assert asyncio.run(stop_after_a_lost_cancel()), "the worker's stop waited on its heartbeat"
