"""The budget gate the graph calls around a cloud call (:class:`router.graph.context.CloudGate`),
backed by the store's atomic reservations.

The graph runs in a worker thread; the Redis client belongs to the event loop. The gate hands
each call to that loop and waits for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis

from policies.budget import retry_after_s
from router.store import budgets
from router.store.apikeys import ApiKey
from router.store.names import Names

T = TypeVar("T")
REDIS_WAIT_S = 10.0


class BudgetGate:
    """One request's gate: reserves against its key's budget for the current period."""

    def __init__(self, redis: Redis, names: Names, key: ApiKey,
                 loop: asyncio.AbstractEventLoop) -> None:
        assert key.budget_usd is not None, "a gate is only for a key with a budget"
        self.redis, self.names, self.key, self.loop = redis, names, key, loop
        self.retry_after_s = retry_after_s(key.period, dt.datetime.now(dt.UTC))

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(REDIS_WAIT_S)

    def reserve(self, usd: float) -> object | None:
        assert self.key.budget_usd is not None
        return self._wait(budgets.reserve(self.redis, self.names, scope=f"key:{self.key.id}",
                                          period=self.key.period, limit_usd=self.key.budget_usd,
                                          amount_usd=usd))

    def settle(self, token: object, usd: float) -> None:
        assert isinstance(token, budgets.Reservation)
        self._wait(budgets.settle(self.redis, token, usd))

    def release(self, token: object) -> None:
        assert isinstance(token, budgets.Reservation)
        self._wait(budgets.release(self.redis, token))


def gate_for(redis: Redis, names: Names, key: ApiKey | None) -> BudgetGate | None:
    """The gate for a request made with ``key``; None when it has no budget. Call it on the
    event loop's thread."""
    if key is None or key.budget_usd is None:
        return None
    return BudgetGate(redis, names, key, asyncio.get_running_loop())
