"""A process that starts while its store fails over waits it out (router.store.connect
.outlasting): the step is tried again while the store fails under it, for a bounded time;
an error of our own is not retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.exceptions

from router.store import connect


def _failing(times: int, error: BaseException) -> tuple[list[float], Callable[[], Awaitable[str]]]:
    calls: list[float] = []

    async def step() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "done"

    return calls, step


def test_a_step_the_store_fails_a_few_times_is_done_once_it_answers() -> None:
    calls, step = _failing(3, redis.exceptions.ConnectionError("connection refused"))
    assert asyncio.run(connect.outlasting(step, within_s=30, what="a step")) == "done"
    assert len(calls) == 4
    assert calls[-1] - calls[0] >= 0.25 + 0.5 + 1.0 - 0.05  # it waited between tries


def test_a_store_that_stays_down_past_the_bound_is_its_error() -> None:
    calls, step = _failing(100, redis.exceptions.ClusterDownError("CLUSTERDOWN"))
    with pytest.raises(redis.exceptions.ClusterDownError):
        asyncio.run(connect.outlasting(step, within_s=1, what="a step"))
    assert 2 <= len(calls) <= 4


def test_an_error_of_our_own_is_not_tried_again() -> None:
    calls, step = _failing(1, KeyError("ours"))
    with pytest.raises(KeyError):
        asyncio.run(connect.outlasting(step, within_s=30, what="a step"))
    assert len(calls) == 1


def test_a_process_asked_to_stop_stops_waiting() -> None:
    _, step = _failing(100, redis.exceptions.ConnectionError("connection refused"))
    asked: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, lambda: asked.append(time.monotonic()))  # SIGTERM, a second in
        await connect.outlasting(step, within_s=120, what="a step", stopped=lambda: bool(asked))

    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(main())
    assert time.monotonic() - asked[0] < 0.5  # not the 120 s of retries
