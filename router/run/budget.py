"""The budget gate the graph calls around a cloud call (:class:`router.graph.context.CloudGate`),
backed by the store's atomic reservations.

The graph runs in a worker thread; the Redis client belongs to the event loop. The gate hands
each call to that loop and waits for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.config import CloudConfig
from policies.budget import Period, retry_after_s
from policies.config import PolicyConfig
from router.store import budgets
from router.store.apikeys import ApiKey
from router.store.connect import store_failed
from router.store.names import Names

T = TypeVar("T")
REDIS_WAIT_S = 10.0
RETRY_DELAY_S = 10.0  # the OpenAI SDK waits at most 8 s between its retries


class StoreFailed(RedisConnectionError):
    """The store failed under a budget call made from the graph's run (a cluster primary
    killed, its replica not yet promoted): the cause is chained. A ``RedisError``, so that the
    API answers a chat 503 with Retry-After and a task's worker runs the task again."""


def hold_s(cloud: CloudConfig) -> float:
    """How long one cloud call may hold its budget reservation before it is reaped as left
    by a dead process: litellm makes up to 1 + 2 x ``num_retries`` attempts (its two retry
    layers, RELIABILITY.md), each up to ``timeout_s``, with a pause between them. A call still
    running past it (a stream only times out between chunks) is charged when it settles."""
    return (1 + 2 * cloud.num_retries) * (cloud.timeout_s + RETRY_DELAY_S)


@dataclass(frozen=True)
class Scope:
    """One budget a cloud call draws on: a team's or a key's, its limit and period."""

    name: str
    limit_usd: float
    period: Period


class BudgetGate:
    """One request's gate: reserves the worst case against every budget it draws on (the
    team's and the key's) for the current period, all or none, each for at most ``hold_s``.
    ``settled_usd``: what its calls were charged, so that a run stopped midway records in
    the ledger exactly what its budgets were charged. ``on_hold``: told of each reservation
    as it is taken (a queued task keeps them with the task, so that if its worker is killed
    mid call, the next attempt can settle them at what the dead one ran). ``on_settle``: told
    what a call is charged, and its first reservation's id, before its budgets are (a queued
    task keeps it, so that the next attempt records what a dead one's budgets were charged,
    not an estimate); when it answers False (a later attempt of the task has begun), the
    budgets are not settled here but kept in ``deferred``, for the task's runner to settle
    once its ledger entry is written."""

    def __init__(self, redis: Redis, names: Names, scopes: list[Scope],
                 loop: asyncio.AbstractEventLoop, *, hold_s: float) -> None:
        assert scopes, "a gate is only for a request with a budget"
        self.redis, self.names, self.scopes, self.loop = redis, names, scopes, loop
        self.hold_s = hold_s
        self.settled_usd = 0.0
        self.on_hold: Callable[[list[budgets.Reservation]], Awaitable[None]] | None = None
        self.on_settle: Callable[[float, str], Awaitable[bool]] | None = None
        self.deferred: list[tuple[list[budgets.Reservation], float]] = []
        now = dt.datetime.now(dt.UTC)
        self.retry_after_s = max(retry_after_s(scope.period, now) for scope in scopes)

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; :class:`StoreFailed` when the store
        fails under it (or does not answer within :data:`REDIS_WAIT_S`)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(REDIS_WAIT_S)
        except Exception as exc:
            if not store_failed(exc):  # a timeout is an OSError; our own error is a bug
                raise
            future.cancel()
            raise StoreFailed(f"the store failed under a budget call: "
                              f"{type(exc).__name__}") from exc

    def reserve(self, usd: float) -> object | None:
        return self._wait(self._reserve(usd))

    async def _reserve(self, usd: float) -> list[budgets.Reservation] | None:
        held: list[budgets.Reservation] = []
        for scope in self.scopes:
            reservation = await budgets.reserve(self.redis, self.names, scope=scope.name,
                                                period=scope.period, limit_usd=scope.limit_usd,
                                                amount_usd=usd, hold_s=self.hold_s)
            if reservation is None:
                for taken in held:
                    await budgets.release(self.redis, taken)
                return None
            held.append(reservation)
        if self.on_hold is not None:
            await self.on_hold(held)
        return held

    def settle(self, token: object, usd: float) -> None:
        assert isinstance(token, list)
        self._wait(self._settle(token, usd))
        self.settled_usd += usd

    async def _settle(self, token: list[budgets.Reservation], usd: float) -> None:
        # The amount first: a process that dies after it leaves it with the task.
        if self.on_settle is not None and not await self.on_settle(usd, token[0].id):
            self.deferred.append((token, usd))  # a later attempt began: the runner settles
            return
        for reservation in token:
            await budgets.settle(self.redis, reservation, usd)

    def release(self, token: object) -> None:
        assert isinstance(token, list)
        for reservation in token:
            self._wait(budgets.release(self.redis, reservation))


def gate_for(redis: Redis, names: Names, key: ApiKey | None, team: str,
             policy: PolicyConfig, cloud: CloudConfig) -> BudgetGate | None:
    """The gate for a request of ``team`` made with ``key`` (calls to ``cloud``); None when
    neither has a budget. Call it on the event loop's thread."""
    scopes = []
    if policy.budget_usd is not None:
        scopes.append(Scope(f"team:{team}", policy.budget_usd, policy.budget_period))
    if key is not None and key.budget_usd is not None:
        scopes.append(Scope(f"key:{key.id}", key.budget_usd, key.period))
    if not scopes:
        return None
    return BudgetGate(redis, names, scopes, asyncio.get_running_loop(), hold_s=hold_s(cloud))
