"""A command whose reply was lost is sent again, and the store's scripts that add count it once.

redis-py's cluster client re-sends a command when its connection fails before the reply
(``connection_error_retry_attempts``, ``cluster_error_retry_attempts``): through a primary's
failover, a script that ran may run twice. A budget's reservation held twice left the budget
short for the rest of its period (the topology run of 2026-12-08 02:17Z ended with $0.000264
reserved and no reservation open). Here a loopback proxy in front of a real Valkey swallows
the reply to one script and closes the connection (:class:`tests.store_proxy.StoreProxy`);
the client, told to retry a lost connection as the cluster client is, sends it again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from router.run.outcome import RouteRecord, ledger_entry
from router.store import budgets, ledger, tasks
from router.store.names import Names
from tests.store_proxy import StoreProxy

NAMES = Names("resent")


def through_proxy(steps: Callable[[Redis, StoreProxy], Awaitable[Any]], valkey_url: str) -> Any:
    """``steps(client, proxy)`` with a client that sends a command again after a lost
    connection (as the cluster client does), through a :class:`StoreProxy` in front of the
    session's Valkey."""
    async def go(proxy: StoreProxy) -> Any:
        redis = Redis.from_url(proxy.url, retry=Retry(NoBackoff(), 2),
                               retry_on_error=[RedisConnectionError])
        try:
            await redis.ping()  # connected
            return await steps(redis, proxy)
        finally:
            await redis.aclose()

    with StoreProxy(valkey_url).running() as proxy:
        return asyncio.run(go(proxy))


def test_a_reservation_sent_again_is_held_once(redis_url: str) -> None:
    args: dict[str, Any] = {"scope": "team:resent", "period": "month", "limit_usd": 1.0}

    async def steps(redis: Redis, proxy: StoreProxy) -> Any:
        proxy.drop_reply_to_next()
        held = await budgets.reserve(redis, NAMES, **args, amount_usd=0.25, hold_s=60)
        assert held is not None and proxy.dropped == 1
        during = await budgets.state(redis, NAMES, **args)
        await budgets.settle(redis, held, 0.1)
        return during, await budgets.state(redis, NAMES, **args)

    during, after = through_proxy(steps, redis_url)
    assert during.reserved_usd == pytest.approx(0.25) and during.open_reservations == 1
    # Settled: nothing left held for the rest of the period.
    assert after.reserved_usd == pytest.approx(0, abs=1e-12) and after.open_reservations == 0
    assert after.spent_usd == pytest.approx(0.1)


def test_a_ledger_entry_sent_again_is_written_and_counted_once(redis_url: str) -> None:
    record = {"final": "cloud", "reason": "low_confidence", "escalated": True,
              "tokens": {"prompt": 10, "completion": 5, "local_completion": 3},
              "cost_usd": 0.002, "counterfactual_cost_usd": 0.002, "timings_ms": {}}
    entry = ledger_entry(request_id="task-resent", team="resent", key_id="k1", source="task",
                         record=RouteRecord.routed(record), latency_ms=10, status="done")
    claim = ledger.Claim("task-resent", 1, "self")

    async def steps(redis: Redis, proxy: StoreProxy) -> Any:
        proxy.drop_reply_to_next()
        written = await ledger.write_entry(redis, NAMES, entry, retention_days=30, claim=claim)
        assert proxy.dropped == 1
        again = await ledger.write_entry(redis, NAMES, {**entry, "latency_ms": 11},
                                         retention_days=30, claim=claim)
        entries = await ledger.page_entries(redis, NAMES, team="resent", start=0,
                                            end=entry["time"] + 60, limit=100)
        spend = await redis.hgetall(NAMES.key_spend("resent", ledger.day_of(entry["time"])[:7]))
        return written, again, entries, spend

    written, again, entries, spend = through_proxy(steps, redis_url)
    # The write's own retry is no refusal: the worker ends its task on it (a refusal means
    # another attempt recorded this one, and the task was left to that one).
    assert written is True and again is False
    assert [e["id"] for e in entries] == ["task-resent"]
    assert {k: float(v) for k, v in spend.items()} == {b"k1": pytest.approx(0.002)}


def test_a_noted_charge_sent_again_is_noted_once(redis_url: str) -> None:
    async def steps(redis: Redis, proxy: StoreProxy) -> Any:
        created = await tasks.create(redis, NAMES, team="resent", key_id=None,
                                     request={"prompt": "x"}, keep_s=600)
        task_id = created.task["id"]
        await tasks.start_attempt(redis, NAMES, task_id, worker="w1", keep_s=600)
        proxy.drop_reply_to_next()
        noted = await tasks.note_settled(redis, NAMES, task_id, 0.003, "call-1", attempt=1)
        assert proxy.dropped == 1
        await tasks.note_settled(redis, NAMES, task_id, 0.001, "call-2", attempt=1)
        return noted, await tasks.settled(redis, NAMES, task_id, attempt=1)

    noted, settled = through_proxy(steps, redis_url)
    assert noted is True and settled == pytest.approx(0.004)  # each call once
