"""A command whose reply was lost is sent again, and the store's scripts that add count it once.

redis-py's cluster client re-sends a command when its connection fails before the reply
(``connection_error_retry_attempts``, ``cluster_error_retry_attempts``): through a primary's
failover, a script that ran may run twice. A budget's reservation held twice left the budget
short for the rest of its period (the topology run of 2026-12-08 02:17Z ended with $0.000264
reserved and no reservation open). Here a loopback proxy in front of a real Valkey swallows
the reply to one command and closes the connection; the client, told to retry a lost
connection as the cluster client is, sends the command again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from router.run.outcome import RouteRecord, ledger_entry
from router.store import budgets, ledger, tasks
from router.store.names import Names

NAMES = Names("resent")


class ReplyDropper:
    """A TCP proxy on loopback to ``upstream``; after :meth:`drop_next`, the reply to the next
    script (``EVAL``) is swallowed and the client's connection closed (``dropped`` counts
    them)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.waiting = False  # for the next script to go up
        self.armed = False  # its reply is the next one down
        self.dropped = 0
        self.port = 0

    def drop_next(self) -> None:
        self.waiting = True

    async def _pipe_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.waiting and b"EVAL" in data:
                self.waiting, self.armed = False, True
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        upward = asyncio.create_task(self._pipe_up(reader, up_writer))
        try:
            while data := await up_reader.read(65536):
                if self.armed:  # the command ran on the server; its reply never arrives
                    self.armed = False
                    self.dropped += 1
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await upward
            writer.close()
            up_writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReplyDropper]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


def through_dropper(steps: Callable[[Redis, ReplyDropper], Awaitable[Any]],
                    valkey_url: str) -> Any:
    """``steps(client, dropper)`` with a client that re-sends a command after a lost
    connection, through a :class:`ReplyDropper` in front of the session's Valkey."""
    url = urlparse(valkey_url)
    assert url.hostname is not None and url.port is not None

    async def go() -> Any:
        async with ReplyDropper(url.hostname, url.port).running() as dropper:
            redis = Redis(host="127.0.0.1", port=dropper.port, retry=Retry(NoBackoff(), 2),
                          retry_on_error=[RedisConnectionError])
            try:
                await redis.ping()  # connected
                return await steps(redis, dropper)
            finally:
                await redis.aclose()
    return asyncio.run(go())


def test_a_reservation_sent_again_is_held_once(redis_url: str) -> None:
    args: dict[str, Any] = {"scope": "team:resent", "period": "month", "limit_usd": 1.0}

    async def steps(redis: Redis, dropper: ReplyDropper) -> Any:
        dropper.drop_next()
        held = await budgets.reserve(redis, NAMES, **args, amount_usd=0.25, hold_s=60)
        assert held is not None and dropper.dropped == 1
        during = await budgets.state(redis, NAMES, **args)
        await budgets.settle(redis, held, 0.1)
        return during, await budgets.state(redis, NAMES, **args)

    during, after = through_dropper(steps, redis_url)
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

    async def steps(redis: Redis, dropper: ReplyDropper) -> Any:
        dropper.drop_next()
        written = await ledger.write_entry(redis, NAMES, entry, retention_days=30, claim=claim)
        assert dropper.dropped == 1
        again = await ledger.write_entry(redis, NAMES, {**entry, "latency_ms": 11},
                                         retention_days=30, claim=claim)
        entries = await ledger.page_entries(redis, NAMES, team="resent", start=0,
                                            end=entry["time"] + 60, limit=100)
        spend = await redis.hgetall(NAMES.key_spend("resent", ledger.day_of(entry["time"])[:7]))
        return written, again, entries, spend

    written, again, entries, spend = through_dropper(steps, redis_url)
    # The write's own retry is no refusal: the worker ends its task on it (a refusal means
    # another attempt recorded this one, and the task was left to that one).
    assert written is True and again is False
    assert [e["id"] for e in entries] == ["task-resent"]
    assert {k: float(v) for k, v in spend.items()} == {b"k1": pytest.approx(0.002)}


def test_a_noted_charge_sent_again_is_noted_once(redis_url: str) -> None:
    async def steps(redis: Redis, dropper: ReplyDropper) -> Any:
        created = await tasks.create(redis, NAMES, team="resent", key_id=None,
                                     request={"prompt": "x"}, keep_s=600)
        task_id = created.task["id"]
        await tasks.start_attempt(redis, NAMES, task_id, worker="w1", keep_s=600)
        dropper.drop_next()
        noted = await tasks.note_settled(redis, NAMES, task_id, 0.003, "call-1", attempt=1)
        assert dropper.dropped == 1
        await tasks.note_settled(redis, NAMES, task_id, 0.001, "call-2", attempt=1)
        return noted, await tasks.settled(redis, NAMES, task_id, attempt=1)

    noted, settled = through_dropper(steps, redis_url)
    assert noted is True and settled == pytest.approx(0.004)  # each call once
