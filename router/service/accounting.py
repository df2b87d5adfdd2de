"""What every generating request goes through besides the model: its caller's rate limits and
a place among the process's generating requests first, then, once it has run, one ledger entry
(exactly once, by request id), the metrics and the tokens-per-minute count."""

from __future__ import annotations

import functools
import logging
import time

from fastapi import Request

from agents.base import Generation
from router.run.caller import Caller
from router.run.outcome import RouteRecord, write_ledger
from router.run.ratelimit import RateLimited
from router.service import admission
from router.service.errors import APIError
from router.store.connect import outlasting

log = logging.getLogger("smallcode.api")


async def limit(caller: Caller) -> None:
    """Refuse with 429 and ``Retry-After`` when the caller's key is over a rate limit."""
    try:
        await caller.admit()
    except RateLimited as over:
        raise APIError(429, str(over), type_="rate_limit_error", code="rate_limited",
                       headers={"Retry-After": str(over.retry_after_s)}) from None


async def admit(request: Request, caller: Caller) -> None:
    """Refuse with 429 and ``Retry-After`` when the key is over a rate limit, or when the
    process holds ``server.max_generating`` generating requests already."""
    await limit(caller)
    admission.enter(request)


def request_started(request: Request) -> float:
    """Where a request's latency counts from (``time.perf_counter()``): once its body has come
    in whole, as the access log notes it, so that the router's own work on it (the key, the
    API's shape read into a task, the rate limits) counts too; now, where nothing noted it."""
    received = request.scope.get("state", {}).get("received")
    return float(received) if received is not None else time.perf_counter()


def first_token_ms(generation: Generation | None, started: float) -> float | None:
    """From the request's start (``time.perf_counter()``) to the tier's first token, when the
    tier measured it: the time before the tier started, plus the tier's own."""
    if generation is None or generation.timings.first_token_ms is None:
        return None
    overhead_ms = (time.perf_counter() - started) * 1000 - generation.timings.total_ms
    return max(0.0, overhead_ms) + generation.timings.first_token_ms


async def account(request: Request, caller: Caller, *, request_id: str, source: str,
                  record: RouteRecord, started: float, answered: float | None = None,
                  generation: Generation | None = None) -> None:
    """Write the request's ledger entry once, count it in the metrics (``generation``: the
    tier's, for its time to first token) and the key's tokens. Its latency runs from
    ``started`` to ``answered`` (when the answer was sent; now if not given). A store that
    fails under it is waited out for ``redis.answered_outage_s``, then its error raised."""
    state = request.app.state
    ended = answered if answered is not None else time.perf_counter()
    # An answer is not dropped for a store failing over under it (a primary killed: its
    # replica takes the slots within two cluster node timeouts): the entry's write is waited
    # out for redis.answered_outage_s (a write sent again is written once), then it fails.
    outlast = functools.partial(outlasting, within_s=state.settings.redis.answered_outage_s,
                                stopped=lambda: state.stopping.asked)
    entry = await outlast(lambda: write_ledger(
        state.redis, state.names, request_id=request_id, team=caller.team,
        key_id=caller.key_id, source=source, record=record, latency_ms=(ended - started) * 1000,
        retention_days=state.settings.redis.retention_days), what="writing a ledger entry")
    if entry is not None:
        state.metrics.observe(entry, first_token_ms(generation, started))
    await outlast(lambda: caller.charge(record), what="counting a key's tokens")
