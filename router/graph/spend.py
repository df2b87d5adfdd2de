"""Cloud spend, the one way it is held: reserve the worst case on the request's budget gate
before a cloud call, then settle what the call cost, or release the reservation when the call
failed. A call stopped midway (a client that left, a cancelled task) settles what it streamed:
that much was spent, and the ledger records it.

    reserve(gate, worst_usd) -> Hold | None     BudgetExceeded when it does not fit
    Hold.settle(usd) / Hold.release()           once; whichever comes first
    metered(gate, call, priced=..., max_tokens=...)   the three around one call
    metered_stream(gate, stream, priced=..., max_tokens=...)   the same around a stream

The graph's cloud node and a request that names the cloud tier (``model: cloud``) both go
through here. The gate (:class:`router.graph.context.CloudGate`) blocks on the event loop's
Redis client: call these from a thread, never on the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

from agents.base import Generation
from router.graph.context import CloudGate
from router.graph.errors import BudgetExceeded, TaskCancelled

T = TypeVar("T")


class Hold:
    """One reservation on a gate: settled (charged) or released (given back) once."""

    def __init__(self, gate: CloudGate, token: object) -> None:
        self._gate, self._token = gate, token
        self._lock = threading.Lock()
        self._open = True

    def _close(self) -> bool:
        with self._lock:
            was, self._open = self._open, False
        return was

    def settle(self, usd: float) -> None:
        if self._close():
            self._gate.settle(self._token, usd)

    def release(self) -> None:
        if self._close():
            self._gate.release(self._token)


def reserve(gate: CloudGate | None, worst_usd: float) -> Hold | None:
    """Hold ``worst_usd`` on ``gate``; None when there is no budget to hold (no gate).
    Raises :class:`BudgetExceeded` when the reservation does not fit."""
    if gate is None:
        return None
    token = gate.reserve(worst_usd)
    if token is None:
        raise BudgetExceeded(gate.retry_after_s)
    return Hold(gate, token)


def metered(gate: CloudGate | None, call: Callable[[], Generation], *,
            priced: Callable[[int], float], max_tokens: int) -> Generation:
    """``call()`` under a reservation of its worst case (``priced(max_tokens)``: the price
    of an answer of ``max_tokens`` completion tokens): settled at the generation's cost,
    released when the call failed, settled at ``priced(tokens streamed)`` when it was
    stopped midway (:class:`TaskCancelled`)."""
    if gate is None:
        return call()
    hold = reserve(gate, priced(max_tokens))
    assert hold is not None
    try:
        generation = call()
    except TaskCancelled as exc:
        # Stopped mid-call (a client that left): what was streamed is spent, as the ledger
        # records it, so the budget is charged that much rather than given back.
        hold.settle(priced(exc.tokens))
        raise
    except BaseException:
        hold.release()
        raise
    hold.settle(generation.cost_usd or 0.0)
    return generation


def metered_stream(gate: CloudGate | None, stream: Iterator[T | Generation], *,
                   priced: Callable[[int], float],
                   max_tokens: int) -> Generator[T | Generation, None, None]:
    """``stream`` (token events, then its :class:`Generation`) under a reservation of its
    worst case, taken at the first ``next``: settled at the generation's cost; settled at
    ``priced(events passed on)`` when the stream is closed early (a client that left) or
    fails once it has started; released when it fails before its first event. Iterate and
    close it from a thread, like the other two."""
    if gate is None:
        yield from stream
        return
    hold = reserve(gate, priced(max_tokens))
    assert hold is not None
    streamed, started = 0, False
    try:
        for item in stream:
            if isinstance(item, Generation):
                hold.settle(item.cost_usd or 0.0)
            else:
                streamed += 1
            started = True
            yield item
        hold.settle(priced(streamed))  # a stream that ended without its generation
    except GeneratorExit:  # closed early: what was streamed is spent
        hold.settle(priced(streamed))
        raise
    except BaseException:
        if started:
            hold.settle(priced(streamed))
        else:
            hold.release()
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # the backend's stream stops with this one (frees the model at once)
