"""One attempt of a task, in the ledger once: an attempt that records itself and a later
attempt that records it as lost hold the same claim, and whichever writes first wins (on one
Valkey server and on the three-primary cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.cluster import key_slot

from router.run.outcome import RouteRecord, ledger_entry
from router.store import ledger, tasks
from router.store.names import Names
from tests.conftest import Store

NAMES = Names("claims-test")
TASK = "task-" + "ab" * 16
TEAM = "payments"


def entry(request_id: str, cost: float, status: str) -> dict[str, Any]:
    record = {"final": "cloud", "reason": "low_confidence", "escalated": True,
              "tokens": {"prompt": 10, "completion": 5, "local_completion": 3},
              "cost_usd": cost, "counterfactual_cost_usd": cost, "timings_ms": {}}
    return ledger_entry(request_id=request_id, team=TEAM, key_id="k1", source="task",
                        record=RouteRecord.routed(record), latency_ms=10, status=status)


def run(store: Store, steps: Any) -> Any:
    async def go() -> Any:
        redis = store.client()
        try:
            return await steps(redis)
        finally:
            await redis.aclose()
    return asyncio.run(go())


async def write(redis: Any, request_id: str, cost: float, status: str, by: str) -> bool:
    return await ledger.write_entry(redis, NAMES, entry(request_id, cost, status),
                                    retention_days=1,
                                    claim=ledger.Claim(TASK, 1, by))  # type: ignore[arg-type]


async def total(redis: Any) -> tuple[list[str], float]:
    found = await ledger.page_entries(redis, NAMES, team=TEAM, start=0, end=1e12, limit=10)
    return sorted(e["id"] for e in found), round(sum(e["cost_usd"] for e in found), 9)


def test_the_claim_sits_on_the_teams_ledger_slot() -> None:
    claim = NAMES.attempt_claim(TEAM, TASK, 1)
    assert key_slot(claim.encode()) == key_slot(NAMES.entry(TEAM, TASK).encode())


def test_an_attempt_that_recorded_itself_is_not_recorded_again_as_lost(store: Store) -> None:
    async def steps(redis: Any) -> Any:
        assert await write(redis, TASK, 0.002, "done", "self")
        claimed = await ledger.claim_lost(redis, NAMES, TEAM, TASK, 1, retention_days=1)
        lost = await write(redis, f"{TASK}#1", 0.002, "lost", "lost")
        return claimed, lost, await total(redis)

    claimed, lost, (ids, usd) = run(store, steps)
    assert (claimed, lost) == (False, False)
    assert ids == [TASK] and usd == 0.002


def test_an_attempt_recorded_as_lost_does_not_record_itself_after(store: Store) -> None:
    async def steps(redis: Any) -> Any:
        assert await ledger.claim_lost(redis, NAMES, TEAM, TASK, 1, retention_days=1)
        assert await write(redis, f"{TASK}#1", 0.002, "lost", "lost")
        # The attempt itself, still running, answers: under the task's id, then its own.
        own = await write(redis, TASK, 0.002, "done", "self")
        attempt = await write(redis, f"{TASK}#1", 0.002, "done", "self")
        return own, attempt, await total(redis)

    own, attempt, (ids, usd) = run(store, steps)
    assert (own, attempt) == (False, False)
    assert ids == [f"{TASK}#1"] and usd == 0.002


def test_a_second_lost_recorder_finishes_what_a_killed_first_began(store: Store) -> None:
    async def steps(redis: Any) -> Any:
        first = await ledger.claim_lost(redis, NAMES, TEAM, TASK, 1, retention_days=1)
        # ... its worker died here, before it wrote the entry; the next attempt's recorder:
        second = await ledger.claim_lost(redis, NAMES, TEAM, TASK, 1, retention_days=1)
        written = await write(redis, f"{TASK}#1", 0.002, "lost", "lost")
        again = await write(redis, f"{TASK}#1", 0.002, "lost", "lost")
        return first, second, written, again, await total(redis)

    first, second, written, again, (ids, usd) = run(store, steps)
    assert (first, second, written, again) == (True, True, True, False)
    assert ids == [f"{TASK}#1"] and usd == 0.002


def test_a_later_attempt_stops_an_earlier_one_from_noting_its_charge(store: Store) -> None:
    async def steps(redis: Any) -> Any:
        created = await tasks.create(redis, NAMES, team=TEAM, key_id=None,
                                     request={"prompt": "x"}, keep_s=600)
        task_id = created.task["id"]
        await tasks.start_attempt(redis, NAMES, task_id, worker="w1", keep_s=600)
        noted_while_latest = await tasks.note_settled(redis, NAMES, task_id, 0.001, "call-1",
                                                     attempt=1)
        await tasks.start_attempt(redis, NAMES, task_id, worker="w2", keep_s=600)
        noted_after = await tasks.note_settled(redis, NAMES, task_id, 0.005, "call-2",
                                              attempt=1)
        return noted_while_latest, noted_after, await tasks.settled(redis, NAMES, task_id,
                                                                    attempt=1)

    noted_while_latest, noted_after, settled = run(store, steps)
    assert (noted_while_latest, noted_after, settled) == (True, False, 0.001)
