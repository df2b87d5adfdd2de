"""The topology run: load on both APIs for ``load_s`` seconds while one API process, one
worker, one Valkey primary and one local server are SIGKILLed in turn (each killed part but
the primary started again at once, as a supervisor would; the primary's replica takes over),
then the accounting once every accepted task has ended: what the clients got, what the
ledger and the team's budget hold, and how long each part took to come back.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from router.store import budgets, ledger
from router.store.config import RedisSettings
from router.store.connect import client
from tests.reliability.load import percentile
from tests.topology.parts import ADMIN, BUDGET_USD, PREFIX, TEAM, Child, Topology, env, guarded

# When each part dies, as a share of the load's length.
KILL_AT = {"api": 0.2, "worker": 0.35, "valkey_primary": 0.5, "local_server": 0.65}
RECOVER_TIMEOUT_S = 240.0  # past it the part is reported as not recovered
TASKS_TIMEOUT_S = 300.0  # every accepted task ends within it, or the run says which did not
KILLED_API, KILLED_WORKER, KILLED_LOCAL = 1, 0, 0


@dataclass
class Fault:
    part: str
    kill: Callable[[], None]
    back: Callable[[], bool]
    at_s: float
    killed_at: float | None = None  # wall clock
    recovered_s: float | None = None


def _faults(parts: Topology, load_s: float) -> list[Fault]:
    workers_before: set[str] = set()

    def kill_api() -> None:
        parts.apis[KILLED_API].kill()
        parts.restart_api(KILLED_API)

    def kill_worker() -> None:
        workers_before.update(parts.live_workers() or ())
        parts.workers[KILLED_WORKER].kill()
        parts.restart_worker(KILLED_WORKER)

    def kill_local() -> None:
        parts.locals[KILLED_LOCAL].kill()
        parts.restart_local(KILLED_LOCAL)

    return [
        Fault("api", kill_api, lambda: parts.api_back(KILLED_API), KILL_AT["api"] * load_s),
        Fault("worker", kill_worker, lambda: bool((parts.live_workers() or set()) - workers_before),
              KILL_AT["worker"] * load_s),
        Fault("valkey_primary", parts.kill_primary, parts.primary_back,
              KILL_AT["valkey_primary"] * load_s),
        Fault("local_server", kill_local, lambda: parts.local_back(KILLED_LOCAL),
              KILL_AT["local_server"] * load_s),
    ]


def make_key(url: str) -> str:
    response = httpx.post(f"{url}/v1/keys", json={"team": TEAM}, timeout=60,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _inject(parts: Topology, faults: list[Fault], load: Child, started: float) -> None:
    """Kill each part at its time and watch it come back, until all are back (or past
    RECOVER_TIMEOUT_S) and the load has ended. From this (the main) thread: the children
    started again here die with it."""
    while True:
        now = time.time()
        for fault in faults:
            if fault.killed_at is None and now - started >= fault.at_s:
                fault.killed_at = time.time()
                fault.kill()
            elif fault.killed_at is not None and fault.recovered_s is None \
                    and now - fault.killed_at < RECOVER_TIMEOUT_S and fault.back():
                fault.recovered_s = round(time.time() - fault.killed_at, 2)
        pending = [f for f in faults if f.killed_at is None or (
            f.recovered_s is None and time.time() - f.killed_at < RECOVER_TIMEOUT_S)]
        if not pending and not load.alive():
            return
        time.sleep(0.1)


def _final_tasks(url: str, key: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each accepted task as the API reports it, once all have ended (or the timeout)."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + TASKS_TIMEOUT_S
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        while True:
            for task_id in ids:
                if found.get(task_id, {}).get("status") in ("done", "failed", "cancelled"):
                    continue
                response = http.get(f"{url}/v1/tasks/{task_id}")
                found[task_id] = (response.json() if response.status_code == 200
                                  else {"status": f"http {response.status_code}"})
            if all(t["status"] in ("done", "failed", "cancelled") for t in found.values()) \
                    or time.monotonic() > deadline:
                return found
            time.sleep(1.0)


async def _books(redis_url: str, wait_open_s: float) -> tuple[list[dict[str, Any]],
                                                                budgets.BudgetState]:
    """The team's ledger entries and its budget, once no reservation is open (a killed API's
    are reaped past their hold) or ``wait_open_s`` has passed."""
    from router.store.names import Names

    store = client(RedisSettings(url=redis_url, cluster=True))
    names = Names(PREFIX)
    try:
        deadline = time.monotonic() + wait_open_s
        while True:
            state = await budgets.state(store, names, scope=f"team:{TEAM}", period="month",
                                        limit_usd=BUDGET_USD)
            if not state.open_reservations or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        entries = await ledger.page_entries(store, names, team=TEAM, start=0,
                                            end=time.time() + 60, limit=1_000_000)
        return entries, state
    finally:
        await store.aclose()


def _ms(values: list[float], q: float) -> float | None:
    found = percentile(values, q)
    return None if found is None else round(found * 1000, 1)


def figures(sent: list[dict[str, Any]], final: dict[str, dict[str, Any]],
            entries: list[dict[str, Any]], state: budgets.BudgetState,
            faults: list[Fault]) -> dict[str, Any]:
    answered = [s for s in sent if s["status"] in (200, 202)]
    attempts = collections.Counter(str(a) for s in sent for a in s["statuses"])
    task_ids = [s["task_id"] for s in sent if s["task_id"]]
    by_id = collections.Counter(e["id"] for e in entries)
    task_entries = [e for e in entries if e["id"] in final]
    statuses = collections.Counter(t["status"] for t in final.values())
    by_kind: dict[str, Any] = {}
    for kind in sorted({s["kind"] for s in sent}):
        mine = [s for s in sent if s["kind"] == kind]
        latencies = [s["latency_s"] for s in mine if s["status"] in (200, 202)]
        by_kind[kind] = {"sent": len(mine), "answered": len(latencies),
                         "p50_ms": _ms(latencies, 0.5), "p99_ms": _ms(latencies, 0.99)}
    latencies = [s["latency_s"] for s in answered]
    killed = sorted((f.killed_at, f.part) for f in faults if f.killed_at is not None)

    def after(sent_at: float) -> str:  # the part killed last before a request was sent
        return next((part for at, part in reversed(killed) if at <= sent_at), "none")

    return {
        "requests": len(sent), "answered": len(answered),
        "not_answered": collections.Counter(str(s["status"]) for s in sent
                                            if s["status"] not in (200, 202)),
        "not_answered_after_kill_of": dict(collections.Counter(
            after(s["started"]) for s in sent if s["status"] not in (200, 202))),
        "sent_again": sum(1 for s in sent if len(s["statuses"]) > 1),
        "attempts": dict(attempts),
        "p50_ms": _ms(latencies, 0.5), "p99_ms": _ms(latencies, 0.99),
        "max_ms": round(max(latencies, default=0) * 1000, 1), "by_kind": by_kind,
        "tasks_accepted": len(task_ids), "tasks_distinct": len(set(task_ids)),
        "tasks": dict(statuses),
        "tasks_lost": sum(1 for t in final.values() if t["status"] != "done"),
        "tasks_rerun": sum(1 for t in final.values() if int(t.get("attempts") or 1) > 1),
        "task_ledger_entries": len(task_entries),
        "duplicate_entries": sum(n - 1 for n in by_id.values() if n > 1),
        "attempt_entries": sum(1 for e in entries if "#" in e["id"]),
        "chat_ledger_entries": sum(1 for e in entries
                                   if e["id"] not in final and "#" not in e["id"]),
        "chats_answered": sum(1 for s in answered if s["kind"] in ("chat", "stream")),
        "ledger_entries": len(entries),
        "ledger_usd": round(sum(e["cost_usd"] for e in entries), 6),
        "budget_spent_usd": round(state.spent_usd, 6),
        "budget_reserved_usd": round(state.reserved_usd, 6),
        "open_reservations": state.open_reservations, "reaped": state.reaped,
        "kills": [{"part": f.part, "at_s": round(f.at_s, 1), "recovered_s": f.recovered_s}
                  for f in faults],
    }


def run(folder: Path, model_cache: Path, *, load_s: float, clients: int) -> dict[str, Any]:
    """The whole run; its figures (see :func:`figures`). Nothing it started outlives it."""
    with Topology(folder, model_cache) as parts:
        key = make_key(parts.api_urls[0])
        out = folder / "load.json"
        load = Child("load", guarded(sys.executable, "-m", "tests.topology.load",
                                     "--urls", ",".join(parts.api_urls), "--key", key,
                                     "--seconds", str(load_s), "--clients", str(clients),
                                     "--out", str(out)), folder / "load.log", env())
        faults = _faults(parts, load_s)
        started = time.time()
        load.start()
        try:
            _inject(parts, faults, load, started)
        finally:
            load.stop()  # only when the run failed is it still running
        assert load.process is not None and load.process.returncode == 0, f"see {load.log}"
        sent: list[dict[str, Any]] = json.loads(out.read_text())
        ids = sorted({s["task_id"] for s in sent if s["task_id"]})
        final = _final_tasks(parts.api_urls[0], key, ids)
        entries, state = asyncio.run(_books(parts.redis_url, wait_open_s=60.0))
        (folder / "tasks.json").write_text(json.dumps(final))  # to look into a failed run
        (folder / "ledger.json").write_text(json.dumps(entries))
        found = figures(sent, final, entries, state, faults)
        found["killed_primary_held_queue"] = parts.queue_on_victim
        found["load_s"], found["clients"] = load_s, clients
    found["left_running"] = len(parts.pids())
    # The service's own processes log no stack trace, whatever failed (router.logs).
    found["log_lines_with_a_traceback"] = sum(
        line.startswith("Traceback") for log in [*folder.glob("api*.log"),
                                                 *folder.glob("worker*.log")]
        for line in log.read_text(errors="replace").splitlines())
    return found
